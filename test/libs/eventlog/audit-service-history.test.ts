import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { contentSource, EventLog, rowToEvent, serviceHistory, type EventRow } from '../../../libs/eventlog/index.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// Review3 A4: serviceHistory ran one window query over every later ACK per event (232 s for 1000
// events × 100 nodes). The one-pass query must give exactly what the old one gave: checked here
// against the old query, kept verbatim below, on generated histories (events of two services,
// versions made from events, pins and pins of pins, ACKs of any version, of none, repeated).

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** The query as it was before review3 A4 (per event: v, the pins that hold it, a window over ACKs). */
function oldServiceHistory(log: EventLog, ns: string, name: string) {
  const db = databaseOf(log);
  const rows = db
    .prepare(
      `SELECT * FROM events WHERE namespace = ? AND service = ? AND kind IN ('Service','EndpointSlice') ORDER BY seq`,
    )
    .all(ns, name) as EventRow[];
  const versionOf = db.prepare('SELECT min(version) AS v FROM versions WHERE seq_to >= ? AND content_of IS NULL');
  const pinRows = db
    .prepare('SELECT version, content_of AS c FROM versions WHERE content_of IS NOT NULL ORDER BY version')
    .all() as { version: number; c: number }[];
  const pins = new Map<number, { version: number; seqTo: number }>();
  for (const { version, c } of pinRows) {
    const src = pins.get(c) ?? contentSource(log, c);
    pins.set(version, { version: src.version, seqTo: src.seqTo });
  }
  const acks = db.prepare(
    `SELECT node, version, at FROM (
       SELECT a.node, a.version, a.at, row_number() OVER (PARTITION BY a.node ORDER BY a.version, a.id) AS n
       FROM acks a JOIN versions w ON w.version = a.version
       WHERE a.type = 'ACK' AND a.version >= ?
         AND (w.content_of IS NULL OR a.version IN (SELECT value FROM json_each(?))))
     WHERE n = 1 ORDER BY node`,
  );
  return rows.map((r) => {
    const v = (versionOf.get(r.seq) as { v: number | null }).v ?? undefined;
    if (v === undefined) return { event: rowToEvent(r), version: v, ackedBy: [] };
    const held = [...pins].filter(([w, src]) => w >= v && src.seqTo >= r.seq).map(([w]) => w);
    const ackedBy = (acks.all(v, JSON.stringify(held)) as { node: string; version: number; at: string }[]).map((a) => {
      const src = pins.get(a.version);
      return src ? { ...a, contentOf: src.version } : a;
    });
    return { event: rowToEvent(r), version: v, ackedBy };
  });
}

const svcEvent = (service: 'a' | 'b', i: number): WatchEvent => ({
  kind: 'Service',
  type: 'MODIFIED',
  origin: 'watch',
  namespace: 'default',
  name: service,
  uid: `u-${service}`,
  resourceVersion: String(i + 1),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: service, namespace: 'default', uid: `u-${service}`, resourceVersion: String(i + 1) },
    spec: { clusterIP: `10.96.0.${(i % 250) + 1}`, ports: [{ port: 80, protocol: 'TCP' }] },
  },
});

/** One step of a generated history. */
type Step =
  | { t: 'events'; services: ('a' | 'b')[] }
  | { t: 'version' }
  | { t: 'pin'; of: number }
  | { t: 'ack'; type: 'ACK' | 'NACK'; node: number; version: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('events' as const),
      services: fc.array(fc.constantFrom('a' as const, 'b' as const), { minLength: 1, maxLength: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('version' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('pin' as const), of: fc.nat(8) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('ack' as const),
      type: fc.constantFrom('ACK' as const, 'ACK' as const, 'ACK' as const, 'NACK' as const),
      node: fc.nat(2),
      version: fc.nat(12),
    }),
  },
);

let n = 0;
async function build(steps: Step[]): Promise<EventLog> {
  const log = await openLog(tmp.file(`h-${++n}.db`));
  const raw = new Database(log.file);
  const ins = raw.prepare(
    'INSERT INTO acks (type, node, version, config_revision, at, body, row_hash, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  let seq = 0;
  let made = 0;
  let acked = 0;
  for (const s of steps) {
    if (s.t === 'events') seq = log.appendEvents(s.services.map((x) => svcEvent(x, seq))).at(-1)!;
    else if (s.t === 'version' && seq > 0) {
      log.recordVersion({ hash: (++made).toString(16).padStart(64, '0'), reason: 'v', seqTo: seq });
    } else if (s.t === 'pin' && log.latestVersion()) {
      const of = (s.of % log.latestVersion()!.version) + 1;
      log.recordVersion({ hash: log.version(of)!.hash, reason: 'pin', seqTo: seq, contentOf: of });
    } else if (s.t === 'ack') {
      // raw rows: the query reads node, version, type, id and at only (any version, existing or not)
      const at = new Date(Date.UTC(2026, 0, 1) + ++acked * 1000).toISOString(); // tells rows apart
      ins.run(s.type, `node-${s.node}`, s.version, 1, at, '{}', 'f'.repeat(64), at);
    }
  }
  raw.close();
  return log;
}

/** The fields the old query gave (probe11 K4 added `after` and `now`, checked in audit-service-operations). */
const eventsOnly = (h: ReturnType<typeof serviceHistory>) => h.map(({ after: _a, now: _n, ...e }) => e);

describe('serviceHistory (review3 A4)', () => {
  it('gives exactly what the old per-event window query gave, on generated histories (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 20, maxLength: 60 }), async (steps) => {
        const log = await build(steps);
        try {
          for (const svc of ['a', 'b']) {
            const old = oldServiceHistory(log, 'default', svc);
            expect(eventsOnly(serviceHistory(log, 'default', svc))).toEqual(old);
            // `last`: the newest entries only, the same as the whole history's tail
            expect(eventsOnly(serviceHistory(log, 'default', svc, { last: 3 }))).toEqual(old.slice(-3));
          }
        } finally {
          log.close();
        }
      }),
      { numRuns: 25 },
    );
  });
});
