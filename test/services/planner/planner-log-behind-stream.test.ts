import { afterEach, beforeEach, expect, it } from 'vitest';
import { TargetStore, VersionReader } from '../../../libs/bus/index.ts';
import {
  nodeYaml,
  plannerEnv,
  sliceYaml,
  startBarePlanner,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';

// Review finding F5: a planner whose log is behind the versions stream (a fresh or restored --db
// on a NATS another planner published to) makes its own versions under the stream's numbers.
// Once its numbering reaches the stream's, it must compare content before moving any target.

let env: PlannerEnv;
const stops: (() => Promise<void>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

async function start(db: string) {
  const p = await startBarePlanner(env, db);
  stops.push(p.stop);
  return p;
}
const svc = (i: number, eps: string[]) => svcYaml(`s${i}`, `10.96.0.${i + 1}`) + '---\n' + sliceYaml(`s${i}`, eps);

it('a log behind the stream moves no target when its version N is not the stream version N', async () => {
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('s0.yaml', svc(0, ['10.0.0.1']));
  const a = await start('a.db');
  env.write('s0.yaml', svc(0, ['10.0.0.2']));
  await until(() => a.log.latestVersion()?.version === 2, 5000, 'A v2');
  env.write('s0.yaml', svc(0, ['10.0.0.3']));
  await until(() => a.bus.lastPublishedVersion() === 3, 5000, 'A published v3');
  await a.stop();

  const b = await start('b.db'); // a fresh log on the same NATS and manifests
  await until(() => b.planner.lastError?.includes('not moving any target'), 5000, 'B refuses while behind');
  env.write('s1.yaml', svc(1, ['10.0.1.1']));
  await until(() => b.log.latestVersion()?.version === 2, 5000, 'B v2');
  env.write('s2.yaml', svc(2, ['10.0.2.1']));
  await until(() => b.log.latestVersion()?.version === 3, 5000, 'B v3');
  const reader = new VersionReader(env.nc);
  const onStream = await reader.delta(3);
  if (!onStream.ok) throw new Error(onStream.error);
  const ours = b.log.version(3)!.hash;
  expect(ours).not.toBe(onStream.value.hash); // the same number, other content
  await until(() => b.planner.lastError?.includes('has hash'), 5000, 'B refuses at equal numbers');
  expect(b.planner.lastError).toBe(
    `publish: the log's version 3 has hash ${ours.slice(0, 12)} but the versions stream's has ${onStream.value.hash.slice(0, 12)}: not moving any target`,
  );
  // one more version of its own: still nothing published on top of the stream's content
  env.write('s3.yaml', svc(3, ['10.0.3.1']));
  await until(() => b.log.latestVersion()?.version === 4, 5000, 'B v4');
  await new Promise((r) => setTimeout(r, 300));
  expect(b.bus.lastPublishedVersion()).toBe(3);
  expect((await reader.delta(4)).ok).toBe(false);
  const targets = await (await TargetStore.open({ nc: env.nc })).getTargets();
  expect(targets.default).toMatchObject({ version: 3 }); // A's target, untouched
  expect(b.planner.lastError).toMatch(/^publish: the log's version 3 has hash/);
});
