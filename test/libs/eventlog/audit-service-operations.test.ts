import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EventLog, replayVersion, serviceHistory } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG, type WatchEvent } from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { main } from '../../../services/cli/main.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

// probe11 K4: a rollback to content from before a Service's deletion serves it again on every
// node, but `audit service` listed only its events, ending with "DELETED, acked by every node".
// Versions a pin/rollback/unpin made that change the service now appear in its history.

const tmp = tempDir();
const file = tmp.file('service-operations.db');

const service = (name: string, type: WatchEvent['type'], rv: number): WatchEvent => ({
  kind: 'Service',
  type,
  origin: 'watch',
  namespace: 'p11',
  name,
  uid: `u-${name}`,
  resourceVersion: String(rv),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'p11', uid: `u-${name}`, resourceVersion: String(rv) },
    spec: { clusterIP: `10.100.11.${name === 's1' ? 1 : 2}`, ports: [{ port: 80, protocol: 'TCP' }] },
  },
});

function ack(log: EventLog, node: string, version: number, revision: number): void {
  const v = replayVersion(log, version);
  log.recordAck({
    type: 'ACK',
    node,
    version,
    configRevision: revision,
    dataHash: v.hash,
    nodeStateHash: nodeStateHash(renderNodeState(v.state.data, node, DEFAULT_PROXY_CONFIG)),
    mode: 'ipvs',
    kernelWrites: 1,
    timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
    at: new Date().toISOString(),
  });
}

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  try {
    return { code: await main(args), out };
  } finally {
    o.mockRestore();
  }
}

beforeAll(async () => {
  const log = await openLog(file, steppingClock());
  try {
    const rev = log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' }).revision;
    const axis = DataAxis.restore(log);
    axis.ingest([service('s1', 'ADDED', 1)]);
    axis.sync(); // v1: s1
    axis.ingest([service('s2', 'ADDED', 2)]);
    axis.sync(); // v2: s1, s2
    axis.ingest([service('s2', 'DELETED', 3)]);
    axis.sync(); // v3: s1 (s2 deleted)
    for (const n of ['node-a', 'node-b']) ack(log, n, 3, rev);
    axis.holdAt(2, 'rollback', { actor: 'alice', reason: 'rb to 2 (has s2)' }); // v4: v2's content, held
    for (const n of ['node-a', 'node-b']) ack(log, n, 4, rev);
    expect(log.versions().map((v) => [v.version, v.contentOf ?? null])).toEqual([
      [1, null],
      [2, null],
      [3, null],
      [4, 2],
    ]);
  } finally {
    log.close();
  }
});
afterAll(() => tmp.cleanup());

describe('audit service shows versions an operation made that change the service (probe11 K4)', () => {
  it('library: the rollback serving a deleted Service again follows its DELETED event; now says it is served', async () => {
    const log = await EventLog.open({ file, migrate: false });
    try {
      const h = serviceHistory(log, 'p11', 's2');
      expect(h.map((e) => [e.event.type, e.version])).toEqual([
        ['ADDED', 2],
        ['DELETED', 3],
      ]);
      const last = h[1]!;
      expect(last.after).toHaveLength(1);
      expect(last.after![0]).toMatchObject({
        version: 4,
        contentOf: 2,
        operation: { kind: 'rollback', actor: 'alice', reason: 'rb to 2 (has s2)' },
        service: 'present',
        latest: true,
        ackedBy: [
          { node: 'node-a', version: 4 },
          { node: 'node-b', version: 4 },
        ],
      });
      expect(last.after![0]!.change).toMatch(/^Service present again/);
      expect(last.now).toEqual({ version: 4, contentOf: 2, service: 'present', held: true });
      expect(h[0]!).not.toHaveProperty('after');
      expect(h[0]!).not.toHaveProperty('now');
      // s1 is the same in versions 3 and 4: no operation row for it
      const s1 = serviceHistory(log, 'p11', 's1');
      expect(s1.flatMap((e) => e.after ?? [])).toEqual([]);
      expect(s1.at(-1)!.now).toMatchObject({ version: 4, service: 'present', held: true });
    } finally {
      log.close();
    }
  });

  it('CLI: a row where the version falls, a sentence naming the rollback, and what the latest version serves', async () => {
    const t = await cli('audit', '--db', file, 'service', 'p11/s2');
    expect(t.code).toBe(0);
    const lines = t.out.trim().split('\n');
    expect(lines[0]).toMatch(/^SEQ\s+RECEIVED\s+KIND\s+TYPE\s+NAME\s+RV\s+VERSION\s+ACKED BY$/);
    expect(lines[2]).toMatch(/\sDELETED\s+s2\s+3\s+3\s+node-a@3,node-b@3$/);
    expect(lines[3]).toMatch(/^-\s+\S+\s+operation\s+ROLLBACK\s+Service present again.*\s4\s+node-a@4,node-b@4$/);
    expect(t.out).toContain(
      'v4 rollback to 2 by alice ("rb to 2 (has s2)"): Service present again (RV 2) (held: the latest version); acked by node-a@4,node-b@4\n',
    );
    expect(lines.at(-1)).toBe("now: version 4 (version 2's content, held by a pin/rollback): Service p11/s2 present");
  });

  it('an unpin that takes the Service away again is shown too', async () => {
    const log = await openLog(file, steppingClock(Date.parse('2025-01-02T00:00:00Z')));
    try {
      DataAxis.restore(log).release({ actor: 'bob', reason: 'done' }); // v5: the live data, s2 deleted
      const h = serviceHistory(log, 'p11', 's2');
      expect(h.at(-1)!.after!.map((v) => [v.version, v.operation.kind, v.service, v.latest])).toEqual([
        [4, 'rollback', 'present', false],
        [5, 'unpin', 'absent', true],
      ]);
      expect(h.at(-1)!.after![1]!.change).toBe('Service deleted again');
      expect(h.at(-1)!.now).toEqual({ version: 5, service: 'absent', held: false });
    } finally {
      log.close();
    }
  });
});
