import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_WAVE_POLICY, parseWaves } from '../../libs/control/index.ts';
import type { RunningPlanner } from '../../services/planner/run-planner.ts';
import {
  nodeYaml,
  plannerEnv,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from '../services/planner/planner-support.ts';
import { startDryRunApplier, startGroupPlanner } from './in-process-group.ts';

/**
 * probe24 F2: a rollout's gate decisions (bake, next wave, halt, complete) were recorded with
 * actor `planner` and nothing else, so after a leader failover `audit ops` could not tell which
 * planner, in which term, took each step (the deposed leader's or the new one's). Each gate
 * operation now carries `params.by: {planner, term}`. A group of two in-process planners on a
 * real nats-server, dry-run appliers; the leader stops while wave 1 bakes and the other finishes.
 */
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', `${nodeYaml('node-1', '192.0.2.1')}---\n${nodeYaml('node-2', '192.0.2.2')}`);
  env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', ['10.0.0.1'])}`);
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const gates = (p: RunningPlanner) =>
  p.planner['options'].log
    .operations()
    .filter((o) => o.kind === 'rollout' && typeof o.params.gate === 'string')
    .map((o) => ({ gate: o.params.gate, by: o.params.by as { planner: string; term: number } | undefined }));

describe('rollout gate decisions across a leader failover', () => {
  it('name the planner and the term that took each one', async () => {
    const a = await startGroupPlanner(env, stops, { id: 'a', db: env.db });
    await a.planner.synced;
    const b = await startGroupPlanner(env, stops, { id: 'b', db: `${env.dir}/b.db` });
    for (const n of ['node-1', 'node-2']) await startDryRunApplier(env, stops, n);
    await until(() => a.planner.status().filter((r) => r.status === 'SYNCED').length === 2, 10_000, 'both SYNCED');
    const termA = ((await (await fetch(`${a.url}/status`)).json()) as { self: { term: number } }).self.term;

    await a.planner.configChange({ scheduler: 'wrr' }, { actor: 'op', reason: 'wrr' }, 'config', {
      waves: parseWaves('1,100%'),
      pauseOnError: false,
      policy: { ...DEFAULT_WAVE_POLICY, bakeMs: 3000 },
    });
    await until(() => gates(a).some((g) => g.gate === 'bake'), 10_000, 'wave 1 baking on a');
    await a.stop(); // steps down: b takes the lease and the rollout over
    await until(() => gates(b).some((g) => g.gate === 'complete'), 15_000, 'the rollout completed by b');

    const seen = gates(b);
    const byA = seen.filter((g) => g.by?.planner === 'a');
    const byB = seen.filter((g) => g.by?.planner === 'b');
    expect(byA.length).toBeGreaterThan(0);
    expect(byB.map((g) => g.gate)).toContain('complete');
    expect(byA.every((g) => g.by!.term === termA)).toBe(true);
    expect(byB.every((g) => g.by!.term > termA)).toBe(true);
    expect(seen.every((g) => g.by !== undefined)).toBe(true);
  }, 20_000);
});
