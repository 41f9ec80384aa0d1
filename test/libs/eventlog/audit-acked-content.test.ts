import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { EventLog, replayVersion, serviceHistory } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG, type WatchEvent } from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { main } from '../../../services/cli/main.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// Review 2, R2: `audit service` listed a node as having ACKed a change when the version it ACKed
// was a rollback/pin whose content predates the change. An ACK of version w counts for an event
// only when w's content (followed through content_of, pins of pins included) holds the event.

const tmp = tempDir();
const file = tmp.file('acked-content.db');

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
const nodeEvent: WatchEvent = {
  kind: 'Node',
  type: 'ADDED',
  origin: 'watch',
  namespace: '',
  name: 'n1',
  uid: 'u-n1',
  resourceVersion: '2',
  object: {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'n1' },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.1.1' }] },
  },
};

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
  const log = await openLog(file);
  const rev = log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' }).revision;
  const axis = DataAxis.restore(log);
  const who = { actor: 'op', reason: 'incident' };
  axis.ingest([web('10.96.0.10', 1), nodeEvent]);
  axis.sync(); // v1: web at .10 (seq 1)
  axis.ingest([web('10.96.0.99', 3)]);
  axis.sync(); // v2: web moved to .99 (seq 3)
  axis.holdAt(1, 'rollback', who); // v3: v1's content
  axis.holdAt(2, 'pin', who); // v4: v2's content
  axis.holdAt(3, 'pin', who); // v5: v3's content, i.e. v1's (a pin of a rollback)
  expect(log.versions().map((v) => [v.version, v.contentOf ?? null])).toEqual([
    [1, null],
    [2, null],
    [3, 1],
    [4, 2],
    [5, 3],
  ]);
  ack(log, 'n1', 3, rev); // runs v1's content only
  ack(log, 'n2', 2, rev); // ran the change, then the rollback
  ack(log, 'n2', 3, rev);
  ack(log, 'n3', 4, rev); // runs the change through a pin
  ack(log, 'n4', 5, rev); // runs v1's content through a pin of the rollback
  log.close();
});
afterAll(() => tmp.cleanup());

describe('audit service: ACKs count only for versions whose content holds the event', () => {
  it('library: a rollback or pin to older content does not ACK the change; a pin to newer content does', async () => {
    const log = await EventLog.open({ file, migrate: false });
    try {
      const h = serviceHistory(log, 'default', 'web');
      const by = (rv: string) => h.find((e) => e.event.resourceVersion === rv)!;
      const acked = (rv: string) => by(rv).ackedBy.map((a) => [a.node, a.version, a.contentOf ?? null]);
      expect(by('3').version).toBe(2);
      expect(acked('3')).toEqual([
        ['n2', 2, null],
        ['n3', 4, 2],
      ]);
      expect(by('1').version).toBe(1);
      expect(acked('1')).toEqual([
        ['n1', 3, 1],
        ['n2', 2, null],
        ['n3', 4, 2],
        ['n4', 5, 1],
      ]);
    } finally {
      log.close();
    }
  });

  it('CLI: the table names the content source of a pinned ACK; JSON keeps its fields and adds contentOf', async () => {
    const t = await cli('audit', '--db', file, 'service', 'default/web');
    expect(t.code).toBe(0);
    const lines = t.out.trim().split('\n');
    expect(lines[0]).toMatch(/^SEQ\s+RECEIVED\s+KIND\s+TYPE\s+NAME\s+RV\s+VERSION\s+ACKED BY$/);
    expect(lines[1]).toMatch(/\s1\s+1\s+n1@3\(=v1\),n2@2,n3@4\(=v2\),n4@5\(=v1\)$/);
    expect(lines[2]).toMatch(/\s3\s+2\s+n2@2,n3@4\(=v2\)$/);
    const json = JSON.parse((await cli('audit', '--db', file, 'service', 'default/web', '--json')).out) as {
      version: number;
      ackedBy: Record<string, unknown>[];
    }[];
    expect(Object.keys(json[1]!.ackedBy[1]!).sort()).toEqual(['at', 'contentOf', 'node', 'version']);
    expect(json[1]!.ackedBy[0]).toMatchObject({ node: 'n2', version: 2 });
    expect(json[1]!.ackedBy[0]).not.toHaveProperty('contentOf');
  });
});

describe('an ACK of a version the log never produced (probe10 H3)', () => {
  it('audit node --at says what the node ran is unknown instead of failing; audit service still answers', async () => {
    const log = await EventLog.open({ file, migrate: false });
    try {
      log.recordAck({
        type: 'ACK',
        node: 'n5',
        version: 99,
        configRevision: 1,
        dataHash: 'f'.repeat(64),
        nodeStateHash: 'e'.repeat(64),
        mode: 'ipvs',
        kernelWrites: 1,
        timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
        at: new Date().toISOString(),
      });
    } finally {
      log.close();
    }
    // (now, after the ACK was recorded: a time to come is refused, as churn's --since is)
    const r = await cli('audit', '--db', file, 'node', 'n5', '--at', new Date().toISOString());
    expect(r.code).toBe(0);
    expect(r.out).toContain('node n5 at ');
    expect(r.out).toContain('unknown: node n5 acked version 99, which the log never produced (newest 5)');
    const json = await cli('audit', '--db', file, 'node', 'n5', '-o', 'json');
    expect(JSON.parse(json.out)).toMatchObject({
      services: [],
      unknown: expect.stringContaining('version 99, which the log never produced'),
    });
    expect((await cli('audit', '--db', file, 'service', 'default/web')).code).toBe(0);
  });
});
