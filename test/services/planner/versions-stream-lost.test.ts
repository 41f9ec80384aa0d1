import { afterEach, expect, it } from 'vitest';
import pino from 'pino';
import { DiscardPolicy, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { readVerifierFile, VERSIONS_STREAM } from '../../../libs/bus/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner } from '../../../services/planner/run-planner.ts';
import { WatchedDataplane } from '../../libs/bus/bus-harness.ts';
import { nodeYaml, plannerEnv, plannerOptions, sliceYaml, svcYaml, type PlannerEnv } from './planner-support.ts';

/**
 * Versions a limit of the versions stream's own dropped before the leader took it off (probe17
 * N1/N2 leftover): `nats stream edit SB_VERSIONS --max-bytes … --discard old` drops the oldest
 * messages at once. The leader took the limit off, but what was dropped stayed gone: a node that
 * started (or fell behind) answered "version N is not published" until someone deleted the
 * stream. The leader now finds what the stream lacks of what a node needs to load its last
 * version and publishes that version again as one checkpoint, saying so in one line; at a claim
 * too (the limit found by a new leader), where an emptied stream made it start over at version 1.
 */
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env?.cleanup();
});

const services = (prefix: string, n: number, net: number) =>
  Array.from(
    { length: n },
    (_, i) =>
      `${svcYaml(`${prefix}${i}`, `10.96.${net}.${i + 1}`)}---\n${sliceYaml(`${prefix}${i}`, [`10.0.${i}.1`, `10.0.${i}.2`])}`,
  ).join('---\n');

/** What `nats stream edit --max-bytes 100 --discard old` does: JetStream drops every message at once. */
async function dropEverything(jsm: JetStreamManager): Promise<void> {
  const info = await jsm.streams.info(VERSIONS_STREAM);
  await jsm.streams.update(VERSIONS_STREAM, { ...info.config, max_bytes: 100, discard: DiscardPolicy.Old });
  expect((await jsm.streams.info(VERSIONS_STREAM)).state.messages).toBe(0);
}

it('versions a discard-old limit dropped are published again as one checkpoint: by the leader that finds the limit, and by a new leader', async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', services('a', 5, 1));
  const said: string[] = [];
  const start = (targetCheckMs?: number) =>
    runPlanner({
      ...plannerOptions(env),
      leaseTtlMs: 3000,
      targetCheckMs,
      say: (l) => said.push(l),
    });
  let p = await start(300);
  stops.push(() => p.stop());
  await p.planner.synced;
  const applier = async (node: string) => {
    const svc = await startApplierService({
      node,
      nats: env.nats.url,
      mode: 'dry-run',
      http: '127.0.0.1:0',
      dataplane: new WatchedDataplane(),
      heartbeatMs: 200,
      maxBackoffMs: 200,
      verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
      logger: pino({ level: 'silent' }),
    });
    stops.push(() => svc.stop());
    return async () =>
      ((await (await fetch(`http://127.0.0.1:${svc.httpPort}/readyz`)).json()) as { applied?: { version: number } })
        .applied?.version;
  };
  const node1 = await applier('node-1');
  env.write('b.yaml', services('b', 5, 2));
  await expect.poll(node1, { timeout: 15_000 }).toBe(2);
  env.write('c.yaml', services('c', 5, 3));
  await expect.poll(node1, { timeout: 15_000 }).toBe(3);

  // while the planner leads: its periodic check takes the limit off and finds version 3 gone
  const jsm = await jetstreamManager(env.nc);
  await dropEverything(jsm);
  const node2 = await applier('node-2'); // a node that starts now loads version 3
  await expect.poll(node2, { timeout: 15_000 }).toBe(3);
  await expect
    .poll(() => said.filter((l) => l.startsWith('the versions stream lost ')), { timeout: 5000 })
    .toEqual([
      'the versions stream lost version 3, checkpoint 1, delta 2 (what a node needs to load version 3); version 3 published again as a checkpoint (a node behind loads it)',
    ]);
  expect(said.some((l) => /^stream SB_VERSIONS had limits of its own \(max_bytes 100, discard old\)/.test(l))).toBe(
    true,
  );
  expect(await node1()).toBe(3);
  // once per gap: the checks after it find nothing to publish
  await new Promise((r) => setTimeout(r, 1000));
  expect(said.filter((l) => l.startsWith('the versions stream lost ')).length).toBe(1);
  expect(p.planner.lastError).toBeUndefined();

  // found by a new leader's claim: it publishes version 3 again, not versions 1..3 one by one
  await p.stop();
  await dropEverything(jsm);
  said.length = 0;
  p = await start();
  await p.planner.synced;
  const node3 = await applier('node-3');
  await expect.poll(node3, { timeout: 15_000 }).toBe(3);
  await expect
    .poll(() => said.filter((l) => l.startsWith('the versions stream lost ')), { timeout: 5000 })
    .toEqual([
      expect.stringMatching(
        /^the versions stream lost every version it held \(its messages before sequence \d+ are gone\); version 3 published again as a checkpoint/,
      ),
    ]);
  const held = (await jsm.streams.info(VERSIONS_STREAM, { subjects_filter: 'sb.v.delta.*' })).state.subjects;
  expect(Object.keys(held ?? {})).toEqual(['sb.v.delta.3']);
}, 60_000);
