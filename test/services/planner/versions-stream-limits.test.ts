import { afterEach, expect, it } from 'vitest';
import pino from 'pino';
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { readVerifierFile, VERSIONS_STREAM } from '../../../libs/bus/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner } from '../../../services/planner/run-planner.ts';
import { WatchedDataplane } from '../../libs/bus/bus-harness.ts';
import {
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sliceYaml,
  startBarePlanner,
  svcYaml,
  type PlannerEnv,
} from './planner-support.ts';

/**
 * Limits someone gives the versions stream while a planner leads (`nats stream edit SB_VERSIONS
 * --max-bytes ...`; probe17 N2). With discard new every publish was refused ("publish: maximum
 * bytes exceeded") until the next election, the nodes left on the version before; with discard
 * old the stream dropped what it stored, unseen. The leader takes such limits off after a refused
 * publish and at its periodic check (every 10 s), and says so.
 */
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env?.cleanup();
});

/** `n` Services with two endpoints each, their cluster IPs in 10.96.`net`.0/24. */
const services = (prefix: string, n: number, net = 1) =>
  Array.from(
    { length: n },
    (_, i) =>
      `${svcYaml(`${prefix}${i}`, `10.96.${net}.${i + 1}`)}---\n${sliceYaml(`${prefix}${i}`, [`10.0.${i}.1`, `10.0.${i}.2`])}`,
  ).join('---\n');

it('a limit given to the versions stream while the planner leads is taken off: the refused version goes out, and it is said', async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  const said: string[] = [];
  const p = await runPlanner({
    ...plannerOptions(env),
    leaseTtlMs: 3000,
    targetCheckMs: 1000, // the periodic check that finds a 'discard old' limit (default every 10 s)
    say: (l) => said.push(l),
  });
  stops.push(() => p.stop());
  await p.planner.synced;
  const dataplane = new WatchedDataplane();
  const svc = await startApplierService({
    node: 'node-1',
    nats: env.nats.url,
    mode: 'dry-run',
    http: '127.0.0.1:0',
    dataplane,
    heartbeatMs: 200,
    maxBackoffMs: 200,
    verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
    logger: pino({ level: 'silent' }),
  });
  stops.push(() => svc.stop());
  const applied = async () =>
    ((await (await fetch(`http://127.0.0.1:${svc.httpPort}/readyz`)).json()) as { applied?: { version: number } })
      .applied?.version;
  await expect.poll(applied, { timeout: 20_000 }).toBe(1);

  const jsm = await jetstreamManager(env.nc);
  const limit = async (discard: DiscardPolicy) => {
    const info = await jsm.streams.info(VERSIONS_STREAM);
    await jsm.streams.update(VERSIONS_STREAM, { ...info.config, max_bytes: info.state.bytes + 2000, discard });
  };
  // discard new: version 2 (larger than the room left) is refused, the limit taken off, and it goes out
  await limit(DiscardPolicy.New);
  env.write('b.yaml', services('b', 40));
  await expect.poll(applied, { timeout: 20_000 }).toBe(2);
  expect(said.some((l) => /^stream SB_VERSIONS had limits of its own \(max_bytes \d+, discard new\)/.test(l))).toBe(
    true,
  );
  await expect.poll(() => p.planner.lastError, { timeout: 10_000 }).toBeUndefined();
  expect((await jsm.streams.info(VERSIONS_STREAM)).config.max_bytes).toBe(-1);

  // discard old, nothing refused: the leader's periodic check finds the limit
  await limit(DiscardPolicy.Old);
  await expect
    .poll(() => said.filter((l) => /had limits of its own \(max_bytes \d+, discard old\)/.test(l)).length, {
      timeout: 15_000,
    })
    .toBe(1);
  expect((await jsm.streams.info(VERSIONS_STREAM)).config.max_bytes).toBe(-1);
}, 60_000);

it("JetStream storage full: the refused write is said in JetStream's words for it, not the bare 'insufficient resources' (probe17 N5)", async () => {
  env = await plannerEnv({ jetstreamLimits: 'max_file_store: 1MB' });
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  const p = await startBarePlanner(env, 'log.db');
  stops.push(() => p.stop());
  // versions of 200 services each until the server's JetStream storage is used up
  for (let k = 0; k < 12 && !p.planner.lastError; k++) {
    env.write(`big${k}.yaml`, services(`s${k}x`, 200, 10 + k));
    await expect.poll(() => p.planner.data.latest()?.version, { timeout: 10_000 }).toBeGreaterThan(k);
  }
  await expect
    .poll(() => p.planner.lastError, { timeout: 10_000 })
    .toMatch(/^publish: JetStream storage is full on the server .*\(JetStream error 10023: insufficient resources\)$/);
}, 60_000);

// The lease and members buckets and the log snapshots' object store lost such limits at open too,
// but the planner said nothing (lease, members) or did not look (snapshots): each says its line now.
it('limits given to the lease, members and snapshot stores are taken off when the planner starts, and said on its stderr', async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  const said: string[] = [];
  const start = () =>
    runPlanner({
      ...plannerOptions(env),
      leaseTtlMs: 3000,
      say: (l) => said.push(l),
    });
  await (await start()).stop();
  const jsm = await jetstreamManager(env.nc);
  const stores = ['KV_sb_lease_switchboard', 'KV_sb_members_switchboard', 'OBJ_sb_logsnap_switchboard'];
  for (const s of stores) {
    const info = await jsm.streams.info(s);
    await jsm.streams.update(s, { ...info.config, max_bytes: 100_000, discard: DiscardPolicy.Old });
  }
  const p = await start();
  stops.push(() => p.stop());
  expect(said.filter((l) => l.includes('had limits of its own')).sort()).toEqual([
    expect.stringMatching(/^bucket sb_lease_switchboard had limits of its own \(max_bytes 100000, discard old\)/),
    expect.stringMatching(/^bucket sb_members_switchboard had limits of its own \(max_bytes 100000, discard old\)/),
    expect.stringMatching(
      /^snapshot store OBJ_sb_logsnap_switchboard had limits of its own \(max_bytes 100000, discard old\)/,
    ),
  ]);
  for (const s of stores) expect((await jsm.streams.info(s)).config.max_bytes).toBe(-1);
}, 60_000);
