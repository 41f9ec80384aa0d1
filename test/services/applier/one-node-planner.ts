import { afterEach, beforeEach } from 'vitest';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sliceYaml,
  svcYaml,
  type PlannerEnv,
} from '../planner/planner-support.ts';

/** What oneNodePlannerEachTest gives each test (set before it runs). */
export interface OneNodePlanner {
  env: PlannerEnv;
  planner: RunningPlanner;
  /** Run in reverse after the test (an applier the test starts goes here), before the planner's own stop. */
  readonly stops: (() => Promise<unknown>)[];
}

/**
 * The fleet of the node-warning tests, made for each test of the calling file: a planner (runPlanner)
 * over a manifests directory holding node-1 and service a (one endpoint), synced; after the test,
 * its stops in reverse, then the directory and nats-server removed.
 */
export function oneNodePlannerEachTest(): OneNodePlanner {
  const t = { stops: [] } as unknown as OneNodePlanner;
  beforeEach(async () => {
    t.env = await plannerEnv();
    t.env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    t.env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
    t.planner = await runPlanner({ ...plannerOptions(t.env), say: () => {} });
    t.stops.push(() => t.planner.stop());
    await t.planner.planner.synced;
  });
  afterEach(async () => {
    for (const s of t.stops.splice(0).reverse()) await s().catch(() => undefined);
    await t.env.cleanup();
  });
  return t;
}
