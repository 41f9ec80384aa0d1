// probe13 R1/R2: a planner started on a restored or fresh log makes versions of its own under
// numbers the nodes already ran with other content. A node holding the old content of version N
// was shown SYNCED on the planner's N from its heartbeat's numbers alone (R2), and when that
// planner published its N (the stream made again, the way out of its refusal) the node compared
// numbers only and kept the old content for good (R1). Meanwhile operations were answered as if
// they moved nodes, and the deleted stream went unnoticed until a restart (R5).
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ApplierSession } from '../../../libs/applier/index.ts';
import { nodeTargetKey, TargetStore, VersionReader } from '../../../libs/bus/index.ts';
import { parseWaves } from '../../../libs/control/index.ts';
import { DryRunDataplane } from '../../../libs/dataplane/index.ts';
import {
  nodeYaml,
  plannerEnv,
  sliceYaml,
  startBarePlanner,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const svc = (eps: string[]) => svcYaml('s0', '10.96.0.1') + '---\n' + sliceYaml('s0', eps);

async function start(db: string) {
  const p = await startBarePlanner(env, db);
  stops.push(p.stop);
  return p;
}

const who = { actor: 'op', reason: 'test' };

/** Planner A on a.db, the cluster node-1 and service s0 (one endpoint, 10.0.0.1). */
async function startFirst() {
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('s0.yaml', svc(['10.0.0.1']));
  return start('a.db');
}

/** Config revision 2 (scheduler wrr), rolled out to every node in one wave. */
async function rollOutWrr(p: Awaited<ReturnType<typeof start>>) {
  await p.planner.configChange({ scheduler: 'wrr' }, who, 'config', { waves: parseWaves('100%'), pauseOnError: false });
}

/** A node on its own connection, stopped after the test. */
async function startNode(node: string, opts: { heartbeatMs: number; retryMs?: number }) {
  const nc = await connect({ servers: env.nats.url });
  const session = await ApplierSession.start({ nc, node, dataplane: new DryRunDataplane(), ...opts });
  stops.push(async () => {
    await session.stop();
    await nc.close();
  });
  return session;
}

/** Reads one key of the targets bucket as its JSON (undefined when absent). */
async function targetsEntry() {
  const kv = await new Kvm(env.nc).open('sb_targets');
  return async (key: string) => (await kv.get(key))?.json<Record<string, unknown>>();
}

it('a node holding another planner’s version N is not SYNCED on this planner’s N, and loads this N once it is published', async () => {
  const a = await startFirst();
  env.write('s0.yaml', svc(['10.0.0.2']));
  await until(() => a.bus.lastPublishedVersion() === 2, 5000, 'A published v2');
  const session = await startNode('node-1', { heartbeatMs: 100, retryMs: 200 });
  const aHash = a.log.version(2)!.hash;
  await until(() => session.status().applied?.dataHash === aHash, 10_000, 'node-1 runs A’s version 2');
  await a.stop();

  // B: the log restored from before version 2 (here: a fresh one), the cluster moved on meanwhile
  env.write('s0.yaml', svc(['10.0.0.3']));
  const b = await start('b.db');
  env.write('s0.yaml', svc(['10.0.0.4']));
  await until(() => b.log.latestVersion()?.version === 2, 5000, 'B v2');
  const bHash = b.log.version(2)!.hash;
  expect(bHash).not.toBe(aHash); // the same number, other content
  await until(() => b.planner.lastError?.includes('not moving any target'), 5000, 'B refuses');
  // R2: node-1's heartbeats say version 2 (A's): not SYNCED on B's version 2
  const row = await until(
    () => b.planner.status().find((r) => r.node === 'node-1' && r.appliedVersion === 2 && r.status === 'ERROR'),
    5000,
    'node-1 ERROR on B’s version 2',
  );
  expect(row.reason).toBe(
    `runs version 2 with data hash ${aHash.slice(0, 12)}, the log recorded ${bHash.slice(0, 12)}`,
  );
  // R5: an operation is refused while no target can move (it was answered "started … 3/3 nodes")
  await expect(b.planner.configChange({ scheduler: 'wrr' }, who, 'config')).rejects.toThrow(
    /^this config change refused: this planner moves no target \(the log's version 2 has hash /,
  );
  await expect(b.planner.pin(1, who)).rejects.toThrow(/^this pin refused: this planner moves no target/);

  // The way out: the stream deleted; B finds it gone without a restart, republishes its own 1..2
  // and writes the targets anew
  await (await jetstreamManager(env.nc)).streams.delete('SB_VERSIONS');
  const b2 = b;
  const reader = new VersionReader(env.nc);
  await until(
    async () => {
      const d = await reader.delta(2);
      return d.ok && d.value.hash === bHash;
    },
    20_000, // the first read of the deleted stream waits out its timeout (5 s)
    'B republished its version 2',
  );
  // R1: the re-issued target of version 2 makes node-1 check what it holds and load B's version 2
  await until(() => session.status().applied?.dataHash === bHash, 10_000, 'node-1 runs B’s version 2');
  const synced = await until(
    () => b2.planner.status().find((r) => r.node === 'node-1' && r.status === 'SYNCED'),
    5000,
    'node-1 SYNCED',
  );
  expect(synced).toMatchObject({ appliedVersion: 2, lastError: null });
});

it('a log behind the targets bucket does not make its next config revision under a number the bucket holds with other content (probe13 R8)', async () => {
  const a = await startFirst();
  await rollOutWrr(a);
  const bucket = await TargetStore.open({ nc: env.nc });
  await until(
    async () => (await bucket.getConfigRevision(2))?.config.scheduler === 'wrr',
    5000,
    'revision 2 in the bucket',
  );
  await a.stop();
  // B: A's log from before revision 2 (here: a fresh one), on the same NATS, the stream cleared
  await (await jetstreamManager(env.nc)).streams.delete('SB_VERSIONS');
  const b = await start('b.db');
  await until(() => b.bus.lastPublishedVersion() === 1, 5000, 'B published v1');
  await expect(b.planner.configChange({ tcpTimeout: 900 }, who, 'config')).rejects.toThrow(
    /^this config change refused: config revision 2 already exists in the targets bucket with other content \(hash [0-9a-f]{12}; this log ends at revision 1/,
  );
  expect(b.planner.config.newestRevision()).toBe(1);
  // the same content as the bucket's revision 2 is no collision
  const same = await b.planner.configChange({ scheduler: 'wrr' }, who, 'config');
  expect(same.revision).toBe(2);
});

it('a first target that moves only the config revision onto a version held with other content makes the node load it (probe13 R1)', async () => {
  const a = await startFirst();
  env.write('s0.yaml', svc(['10.0.0.2']));
  await until(() => a.bus.lastPublishedVersion() === 2, 5000, 'A published v2');
  await rollOutWrr(a);
  const session = await startNode('node-1', { heartbeatMs: 0 });
  const aHash = a.log.version(2)!.hash;
  await until(
    () => session.status().applied?.dataHash === aHash && session.status().applied?.configRevision === 2,
    10_000,
    'node-1 runs A’s version 2 with revision 2',
  );
  // A's rollout ends (revision 2 the default, node-1's override cleared) before A stops, so this
  // case is the default target's alone: stopped mid-rollout, A left node-1 an override of revision
  // 2 that B's log lacks (CI); B clears such an override now (the last case in this file).
  const entry = await targetsEntry();
  await until(
    async () => (await entry('default'))?.configRevision === 2 && (await entry(nodeTargetKey('node-1')))?.cleared,
    10_000,
    'A’s rollout of revision 2 ended',
  );
  await a.stop();
  // B: a log without revision 2 and with its own version 2, published once the stream is cleared:
  // its first target is (2, revision 1), a config move on the number node-1 holds
  const b = await start('b.db');
  env.write('s0.yaml', svc(['10.0.0.4']));
  await until(() => b.log.latestVersion()?.version === 2, 5000, 'B v2');
  const bHash = b.log.version(2)!.hash;
  await until(() => b.planner.lastError?.includes('not moving any target'), 5000, 'B refuses');
  await (await jetstreamManager(env.nc)).streams.delete('SB_VERSIONS');
  await until(
    () => session.status().applied?.dataHash === bHash && session.status().applied?.configRevision === 1,
    20_000, // the first read of the deleted stream waits out its timeout (5 s)
    'node-1 runs B’s version 2 with revision 1',
  );
});

it('a planner clears an override it finds in the targets bucket that its log does not hold (one left by a planner stopped mid-rollout, or any other writer)', async () => {
  const a = await startFirst();
  await rollOutWrr(a);
  const session = await startNode('node-1', { heartbeatMs: 0 });
  const entry = await targetsEntry();
  await until(async () => (await entry('default'))?.configRevision === 2, 10_000, 'revision 2 the default');
  await until(() => session.status().applied?.configRevision === 2, 10_000, 'node-1 runs revision 2');
  const version = a.log.latestVersion()!.version;
  await a.stop();
  // Another writer leaves node-1 an override (revision 1) that a's log does not hold.
  const other = await TargetStore.open({ nc: env.nc });
  await other.setNodeTarget('node-1', { version, configRevision: 1 });
  await until(() => session.status().applied?.configRevision === 1, 10_000, 'node-1 follows the stray override');
  // The planner started again on its log: its first target write clears the override it did not make.
  await start('a.db');
  await until(
    async () => (await entry(nodeTargetKey('node-1')))?.cleared === true,
    10_000,
    'the stray override cleared',
  );
  await until(() => session.status().applied?.configRevision === 2, 10_000, 'node-1 follows the default again');
  expect(session.status().target).toEqual({ version, configRevision: 2 });
});
