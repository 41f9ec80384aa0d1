import { afterAll, describe, expect, it } from 'vitest';
import {
  Compaction,
  EMPTY_POSITION,
  readingRevisionAtSeq,
  rebuildAtSeq,
  replayVersion,
  verifyLog,
  type EventLog,
} from '../../../libs/eventlog/index.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { exportRows, importRows } from '../../../libs/eventlog/log-rows.ts';
import type { ClusterDataIndex } from '../../../libs/planner/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { openLog, steppingClock, tempDir } from '../eventlog/support/temp-log.ts';

// The reading revision (libs/model/reading-revision.ts): versions made under revision 1 replay bit
// for bit after the planner reads with revision 2 (now 4: the latest); the upgrade is a version of its own that says
// so; a restarted upgraded planner stays on revision 2. The events are probe6 P9, P10 and P11.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

let rv = 0;
const event = (kind: WatchEvent['kind'], name: string, object: Record<string, unknown>): WatchEvent => ({
  kind,
  type: 'ADDED',
  origin: 'watch',
  namespace: 'default',
  name,
  uid: `u-${name}`,
  resourceVersion: String(++rv),
  object: { kind, ...object, metadata: { name, namespace: 'default', ...(object.metadata as object) } },
});
const service = (name: string, clusterIP: string, ports: object[]) =>
  event('Service', name, { apiVersion: 'v1', spec: { clusterIP, ports } });
const slice = (name: string, svc: string, ports: object[], endpoints: object[]) =>
  event('EndpointSlice', name, {
    apiVersion: 'discovery.k8s.io/v1',
    metadata: { labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports,
    endpoints,
  });

const HISTORY: WatchEvent[][] = [
  [
    // P9: the only endpoint is terminating, serving omitted
    service('p9', '10.96.0.43', [{ name: 'http', port: 80 }]),
    slice(
      'p9-1',
      'p9',
      [{ name: 'http', port: 8080 }],
      [{ addresses: ['10.50.1.43'], conditions: { ready: false, terminating: true } }],
    ),
  ],
  [
    // P10: port b has no number
    service('p10', '10.96.0.50', [
      { name: 'a', port: 80 },
      { name: 'b', port: 81 },
    ]),
    slice('p10-1', 'p10', [{ name: 'a', port: 8080 }, { name: 'b' }], [{ addresses: ['10.50.1.73'] }]),
  ],
  [
    // P11: an old serving-terminating copy and a new not-ready pod with the same IP
    service('p11', '10.96.0.30', [{ name: 'http', port: 80 }]),
    slice(
      'p11-old',
      'p11',
      [{ name: 'http', port: 8080 }],
      [{ addresses: ['10.50.1.30'], conditions: { ready: false, serving: true, terminating: true } }],
    ),
    slice(
      'p11-new',
      'p11',
      [{ name: 'http', port: 8080 }],
      [{ addresses: ['10.50.1.30'], conditions: { ready: false, serving: false, terminating: false } }],
    ),
  ],
];

/** What each probe6 case reads to: [ready, serving, terminating] of each endpoint, per service port. */
function readings(data: ClusterDataIndex) {
  const of = (svc: string) =>
    Object.fromEntries(
      data
        .service(`default/${svc}`)!
        .ports.map((p) => [p.name, p.endpoints.map((e) => [e.ip, e.ready, e.serving, e.terminating])]),
    );
  return { p9: of('p9'), p10: of('p10'), p11: of('p11') };
}
const REVISION_1 = {
  p9: { http: [['10.50.1.43', false, false, true]] },
  p10: { a: [], b: [] }, // the whole slice refused
  p11: { http: [['10.50.1.30', false, true, true]] },
};
const REVISION_2 = {
  p9: { http: [['10.50.1.43', false, true, true]] },
  p10: { a: [['10.50.1.73', true, true, false]], b: [] },
  p11: { http: [['10.50.1.30', false, false, false]] },
};

/** A log written by a planner of the previous release (reading revision 1), with a checkpoint. */
async function previousReleaseLog(): Promise<{ log: EventLog; made: { version: number; hash: string }[] }> {
  const log = await openLog(tmp.file(), steppingClock());
  const old = DataAxis.restore(log, { readingRevision: 1 });
  const made: { version: number; hash: string }[] = [];
  for (const batch of HISTORY) {
    old.ingest(batch);
    const v = old.sync();
    if (v) made.push({ version: v.record.version, hash: v.record.hash });
    old.checkpointIfDue(5);
  }
  expect(readings(old.publishedData())).toEqual(REVISION_1);
  expect(log.checkpoints().map((c) => c.readingRevision)).toEqual([1]);
  return { log, made };
}

describe('reading revisions', () => {
  it('versions made under revision 1 replay bit for bit after the upgrade, which makes one version saying so', async () => {
    const { log, made } = await previousReleaseLog();
    try {
      expect(made.map((m) => log.version(m.version)!.readingRevision)).toEqual([1, 1, 1]);
      const upgraded = DataAxis.restore(log); // this release: revision 2
      expect(upgraded.readingRevision).toBe(4);
      expect(upgraded.publishedHash()).toBe(made.at(-1)!.hash); // still serving what was published
      const v = upgraded.sync();
      expect(v?.record.reason).toMatch(
        /^0 events; reading revision 4 \(was 1\): kube-proxy parity.*; API server validation/,
      );
      expect(v?.record.readingRevision).toBe(4);
      expect(readings(upgraded.publishedData())).toEqual(REVISION_2);
      for (const m of made) {
        const r = replayVersion(log, m.version);
        expect(r.hash, `version ${m.version}`).toBe(m.hash);
      }
      expect(readings(replayVersion(log, made.at(-1)!.version).state.data)).toEqual(REVISION_1);
      expect(replayVersion(log, v!.record.version).hash).toBe(v!.record.hash);
      expect(verifyLog(log, { deep: true }).ok).toBe(true);
    } finally {
      log.close();
    }
  });

  it('replay --to-seq reads a seq with the revision of the version that covers it (revision 1 before the upgrade, 2 after)', async () => {
    const { log, made } = await previousReleaseLog();
    try {
      const upgraded = DataAxis.restore(log);
      upgraded.sync();
      upgraded.ingest([service('after', '10.96.0.99', [{ name: 'http', port: 80 }])]);
      const after = upgraded.sync()!;
      for (const m of made) {
        const seq = log.version(m.version)!.seqTo;
        expect(readingRevisionAtSeq(log, seq), `seq ${seq}`).toBe(1);
        // the state after the version's last event is the version: bit for bit under its revision
        expect(rebuildAtSeq(log, seq, { readingRevision: readingRevisionAtSeq(log, seq) }).hash).toBe(m.hash);
      }
      // the latest rules read the revision-1 stretch differently (P9/P10/P11), so the choice matters
      const lastOld = log.version(made.at(-1)!.version)!.seqTo;
      expect(rebuildAtSeq(log, lastOld).hash).not.toBe(made.at(-1)!.hash);
      expect(readingRevisionAtSeq(log, after.record.seqTo)).toBe(4);
      expect(readingRevisionAtSeq(log, log.lastSeq() + 1)).toBe(4); // not covered yet: the latest
    } finally {
      log.close();
    }
  });

  it('a restart of the upgraded planner keeps revision 2: no second upgrade version, its checkpoints are of revision 2', async () => {
    const { log, made } = await previousReleaseLog();
    try {
      const upgraded = DataAxis.restore(log);
      const up = upgraded.sync()!.record;
      upgraded.checkpointIfDue(5); // not over revision 1's at this seq: old versions replay from it
      expect(log.checkpoints().map((c) => c.readingRevision)).toEqual([1]);
      upgraded.ingest([service('later', '10.96.0.60', [{ name: 'http', port: 80 }])]);
      const later = upgraded.sync()!.record;
      upgraded.checkpointIfDue(5); // 8 events since none of revision 2: due, though revision 1's is 1 event old
      expect(log.checkpoints().map((c) => [c.seq, c.readingRevision])).toEqual([
        [7, 1],
        [8, 4],
      ]);

      const restarted = DataAxis.restore(log);
      expect(restarted.publishedHash()).toBe(later.hash);
      expect(restarted.sync()).toBeUndefined(); // nothing changed, nothing to say
      restarted.ingest([service('later', '10.96.0.61', [{ name: 'http', port: 80 }])]);
      const next = restarted.sync()!.record;
      expect(next.reason).toBe('1 event');
      expect(next.readingRevision).toBe(4);
      expect(readings(restarted.publishedData())).toEqual(REVISION_2);
      for (const m of [...made, up, later, next])
        expect(replayVersion(log, m.version).hash, `version ${m.version}`).toBe(m.hash);
    } finally {
      log.close();
    }
  });

  it('an upgrade of a log compacted under revision 1 starts from its revision-1 checkpoint: objects keep their reading until their next event', async () => {
    const { log, made } = await previousReleaseLog();
    try {
      const c = Compaction.plan(log, made.at(-1)!.version); // cut at the revision-1 checkpoint: events up to it go
      while (c.step()) {
        // one small transaction per step
      }
      expect(log.events()).toHaveLength(0); // no event left to read again with revision 2
      const upgraded = DataAxis.restore(log);
      const up = upgraded.sync()!.record;
      expect(up.reason).toMatch(/reading revision 4 \(was 1\)/);
      // P9 and P10 were read (and checkpointed) under revision 1; the entry builder's P11 rule applies to all
      expect(readings(upgraded.publishedData())).toEqual({ ...REVISION_1, p11: REVISION_2.p11 });
      expect(replayVersion(log, up.version).hash).toBe(up.hash);
      expect(replayVersion(log, made.at(-1)!.version).hash).toBe(made.at(-1)!.hash);
      // the next event of an object reads it with revision 2 (a relist resends it)
      upgraded.ingest([HISTORY[0]![1]!, HISTORY[1]![1]!].map((e) => ({ ...e, resourceVersion: String(++rv) })));
      const next = upgraded.sync()!.record;
      expect(readings(upgraded.publishedData())).toEqual(REVISION_2);
      expect(DataAxis.restore(log).publishedHash()).toBe(next.hash);
      for (const m of [up, next]) expect(replayVersion(log, m.version).hash, `version ${m.version}`).toBe(m.hash);
    } finally {
      log.close();
    }
  });

  it('a replica and a compaction keep both revisions: revision-1 rows ship as before, replay as recorded', async () => {
    const { log, made } = await previousReleaseLog();
    const replica = await openLog(tmp.file(), steppingClock());
    try {
      const b = exportRows(databaseOf(log), EMPTY_POSITION, { whole: true });
      expect(b.checkpoints.map((r) => r.length)).toEqual([8]); // revision 1: the previous release's 8 cells
      expect(b.rows.versions.map((r) => r.length)).toEqual([10, 10, 10]); // revision 1: the 9 columns of before + row_hash
      const upgraded = DataAxis.restore(log);
      const up = upgraded.sync()!.record;
      upgraded.checkpointIfDue(5);
      importRows(databaseOf(replica), exportRows(databaseOf(log), EMPTY_POSITION, { whole: true }));
      for (const m of [...made, up])
        expect(replayVersion(replica, m.version).hash, `replica, version ${m.version}`).toBe(m.hash);
      // compacting up to the upgrade version: its content (revision 2) still replays
      const c = Compaction.plan(log, up.version);
      while (c.step()) {
        // one small transaction per step
      }
      expect(replayVersion(log, up.version).hash).toBe(up.hash);
      expect(DataAxis.restore(log).publishedHash()).toBe(up.hash);
    } finally {
      log.close();
      replica.close();
    }
  });
});
