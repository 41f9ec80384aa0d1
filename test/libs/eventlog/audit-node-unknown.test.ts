import { afterAll, describe, expect, it, vi } from 'vitest';
import { compactLog, type EventLog, nodeAt, replayVersion } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG, type Ack, type WatchEvent } from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { main } from '../../../services/cli/main.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// probe8 C2: `audit node NAME --at T` said "had acknowledged nothing" (a status) when the log holds
// no data for T: before the log's first row, or after the node's earlier reports were compacted.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const T0 = '2026-01-01T10:00:00.000Z';
const plus = (ms: number) => new Date(Date.parse(T0) + ms).toISOString();

const web = (clusterIP: string, rv: number): WatchEvent => ({
  kind: 'Service',
  type: rv === 1 ? 'ADDED' : 'MODIFIED',
  origin: 'watch',
  namespace: 'default',
  name: 'web',
  uid: 'u-web',
  resourceVersion: String(rv),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default', uid: 'u-web', resourceVersion: String(rv) },
    spec: { clusterIP, ports: [{ port: 80, protocol: 'TCP' }] },
  },
});

function ackOf(log: EventLog, node: string, version: number, at: string): Ack {
  const v = replayVersion(log, version);
  return {
    type: 'ACK',
    node,
    version,
    configRevision: 1,
    dataHash: v.hash,
    nodeStateHash: nodeStateHash(renderNodeState(v.state.data, node, DEFAULT_PROXY_CONFIG)),
    mode: 'ipvs',
    kernelWrites: 1,
    timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
    at,
  };
}

async function auditNode(file: string, node: string, at: string): Promise<string> {
  let out = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  try {
    expect(await main(['audit', '--db', file, 'node', node, '--at', at])).toBe(0);
  } finally {
    o.mockRestore();
  }
  return out;
}

describe('audit node --at with no data for that time (probe8 C2)', () => {
  it('before the log begins, and after the node’s reports were compacted: unknown, with why', async () => {
    let t = Date.parse(T0);
    const file = tmp.file('c2.db');
    const log = await openLog(file, () => new Date(t));
    log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' });
    const axis = DataAxis.restore(log);
    axis.ingest([web('10.96.0.10', 1)]);
    axis.sync();
    t += 60_000;
    log.recordAck(ackOf(log, 'n1', 1, plus(60_000))); // n1 runs v1 from T0 + 1 min
    t += 60_000;
    axis.ingest([web('10.96.0.99', 2)]);
    axis.sync();
    t += 60_000;
    log.recordAck(ackOf(log, 'n2', 2, plus(180_000)));

    // before the log's first row: the log did not exist (before: "had acknowledged nothing")
    expect(nodeAt(log, 'n1', plus(-3_600_000)).unknown).toBe(`the log begins at ${T0}, after ${plus(-3_600_000)}`);
    // within the log, before the node's first ACK: a real "nothing"
    expect(nodeAt(log, 'n1', plus(30_000))).not.toHaveProperty('unknown');
    expect(nodeAt(log, 'n1', plus(90_000)).ack?.version).toBe(1);

    compactLog(log, 2); // removes the acks before the first report of v2: n1's ACK of v1 (n1 is no Node of the cluster)
    const r = nodeAt(log, 'n1', plus(90_000));
    expect(r.ack).toBeUndefined();
    expect(r.unknown).toMatch(
      /^the reports up to row 1 were compacted \(db compact, retention\): n1's ACKs from before/,
    );
    expect(nodeAt(log, 'n2', plus(200_000))).toMatchObject({ ack: { version: 2 } }); // kept: answered as before
    expect(nodeAt(log, 'n2', plus(200_000))).not.toHaveProperty('unknown');
    log.close();

    expect(await auditNode(file, 'n1', plus(90_000))).toBe(
      `node n1 at ${plus(90_000)}: unknown: the reports up to row 1 were compacted (db compact, retention): n1's ACKs from before may be what it ran\nNode object: no event of this name in the log up to ${plus(90_000)}\n`,
    );
    expect(await auditNode(file, 'n2', plus(200_000))).toMatch(/^node n2 at .*: version 2 /);
  });
});
