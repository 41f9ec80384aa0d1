import { afterEach, beforeEach, expect, it } from 'vitest';
import { Planner } from '../../services/planner/planner.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, type PlannerEnv } from '../services/planner/planner-support.ts';
import { startGroupPlanner } from './in-process-group.ts';

/**
 * A follower rebuilds its whole view when its copy of the group's log moves, on a timer. At
 * 10,000 services × 250 endpoints a rebuild takes seconds (~16 s once a checkpoint is there), and a
 * follower catching up, or following a leader that publishes often, rebuilt back to back: all its
 * thread (bench/scale/2026-12-07-limits/staged/). The timer now keeps four of the last rebuild's
 * durations between rebuilds, as refreshAhead does. Here each rebuild is made to last REBUILD_MS
 * while the leader publishes a version every 100 ms.
 */
const REBUILD_MS = 150;
const WINDOW_MS = 3000;

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
const realRefresh = Planner.prototype.refresh;
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  Planner.prototype.refresh = realRefresh;
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

it("a follower whose log keeps moving rebuilds its view at most once in five of a rebuild's durations, and catches up once it stops", async () => {
  const a = await startGroupPlanner(env, stops, { id: 'a', db: env.db });
  await a.planner.synced;
  const said: string[] = [];
  const b = await startGroupPlanner(env, stops, {
    id: 'b',
    db: `${env.dir}/b.db`,
    followerRefreshMs: 20,
    say: (l) => said.push(l),
  });
  expect(b.group.role()).toBe('follower');
  // (both read at each poll: the leader may publish one more version while the follower catches up)
  const behind = () => (a.planner.data.latest()?.version ?? 0) - (b.planner.data.latest()?.version ?? 0);
  await expect.poll(behind, { timeout: 20_000 }).toBe(0);

  const rebuilds: number[] = [];
  Planner.prototype.refresh = async function (this: Planner) {
    rebuilds.push(performance.now());
    await new Promise((r) => setTimeout(r, REBUILD_MS));
    return realRefresh.call(this);
  };
  const start = performance.now();
  for (let i = 0; performance.now() - start < WINDOW_MS; i++) {
    env.write('b.yaml', svcYaml('b', '10.96.0.2') + '---\n' + sliceYaml('b', [`10.0.${i >> 8}.${i & 255}`]));
    await new Promise((r) => setTimeout(r, 100));
  }
  const during = rebuilds.filter((t) => t - start < WINDOW_MS).length;
  // back to back, a rebuild every ~REBUILD_MS (+ the 20 ms timer): ~15 in the window; spaced, ~4
  expect(during, `rebuilds in ${WINDOW_MS} ms: ${during}`).toBeLessThanOrEqual(WINDOW_MS / (4 * REBUILD_MS) + 1);
  expect(during).toBeGreaterThanOrEqual(2);
  for (let i = 1; i < rebuilds.length; i++)
    expect(rebuilds[i]! - rebuilds[i - 1]!).toBeGreaterThanOrEqual(4 * REBUILD_MS);
  // the leader stopped publishing: the follower's view reaches its newest version
  await expect.poll(behind, { timeout: 20_000 }).toBe(0);
  expect(said.filter((l) => l.includes('refresh'))).toEqual([]);
}, 90_000);
