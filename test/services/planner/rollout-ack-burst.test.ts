import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ackSubject } from '../../../libs/bus/index.ts';
import { parseWaves } from '../../../libs/control/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  ack,
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';

/**
 * A rollout step reads every node of its wave, and every ACK asked for one: O(wave) an ACK,
 * O(wave²) a version (a 100% wave of 2,000 nodes: ~1.1 ms an ACK, bench/planner/ack-intake-bench.ts).
 * The ACKs a fleet sends together take one step per burst; the rollout decides as it did.
 */
const N = 60;
let env: PlannerEnv;
let planner: RunningPlanner | undefined;
beforeEach(async () => {
  env = await plannerEnv();
  const nodes = Array.from({ length: N }, (_, i) => nodeYaml(`node-${String(i).padStart(2, '0')}`, `192.0.2.${i + 1}`));
  env.write('nodes.yaml', nodes.join('---\n'));
  env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', ['10.0.0.1'])}`);
  planner = await runPlanner({ ...plannerOptions(env), say: () => {} });
  await planner.planner.synced;
});
afterEach(async () => {
  await planner?.stop();
  await env.cleanup();
});

describe('a burst of ACKs during a rollout', () => {
  it('takes a step per burst, not one per ACK, and the wave passes as before', async () => {
    const p = planner!.planner;
    const fleet = () => p.status().map((r) => r.node);
    await until(() => fleet().length === N, 5000, `${N} nodes`);
    /** Every node ACKs the latest version under `revision`, with the hash the planner expects, at once. */
    const ackAll = async (revision: number) => {
      const latest = p.data.latest()!;
      const config = p.config.revision(revision)!.config;
      for (const n of fleet()) {
        const hash = nodeStateHash(renderNodeState(p.data.publishedData(), n, config));
        env.nc.publish(ackSubject(n), JSON.stringify(ack(n, latest.version, revision, hash, latest.hash)));
      }
      await env.nc.flush();
    };
    await ackAll(1);
    await until(() => p.status().every((r) => r.status === 'SYNCED'), 10_000, 'every node SYNCED on revision 1');

    await p.configChange({ scheduler: 'wrr' }, { actor: 'op', reason: 'try wrr' }, 'config', {
      waves: parseWaves('100%'),
      pauseOnError: false,
    });
    expect(p.config.state.rollout).toMatchObject({ status: 'running', waves: [fleet()] });
    const driver = (p as unknown as { rollouts: { step(): boolean } }).rollouts;
    const step = driver.step.bind(driver);
    let steps = 0;
    driver.step = () => {
      steps++;
      return step();
    };
    await ackAll(2);
    await until(() => p.config.state.rollout?.status === 'completed', 10_000, 'the rollout completed');
    expect(p.config.state.defaultRevision).toBe(2);
    // One per ACK was N and more (each node's hash check steps its wave again when it finishes).
    expect(steps).toBeGreaterThan(0);
    expect(steps).toBeLessThan(N / 3);
  });
});
