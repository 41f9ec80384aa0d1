// A planner whose source or publishes fail said so only in /status, lastError and a counter:
// `kubectl logs` showed a planner with a mistyped --manifests as a healthy one. Now a step's
// failure is said on stderr when it starts and when it is over (StepFailures), not at each retry.
// A real planner (runPlanner) on a real nats-server and SQLite file.
import { renameSync } from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { runPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, plannerOptions, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

it('says once that its manifests directory is missing (not at each retry), and when it works again', async () => {
  const missing = `${env.manifests}-not-yet`;
  renameSync(env.manifests, missing); // the directory the planner is given does not exist
  const said: string[] = [];
  const p = await runPlanner({ ...plannerOptions(env), say: (line) => said.push(line) });
  stops.push(() => p.stop());
  const failing = `source failing: manifests directory ${env.manifests} does not exist (retried; /status shows it while it lasts)`;
  await expect.poll(() => said, { timeout: 20_000 }).toContain(failing);
  await new Promise((res) => setTimeout(res, 1500)); // polled every 100 ms: ~15 more failures
  expect(p.planner.lastError).toBe(`source: manifests directory ${env.manifests} does not exist`);
  expect(said.filter((l) => l.startsWith('source '))).toEqual([failing]);

  renameSync(missing, env.manifests);
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  await p.planner.synced;
  await expect.poll(() => said.filter((l) => l.startsWith('source ')).length, { timeout: 20_000 }).toBe(2);
  expect(said.filter((l) => l.startsWith('source '))[1]).toMatch(/^source works again \(it failed for \d+\.\d s\)$/);
  expect(p.planner.lastError).toBeUndefined();
}, 60_000);
