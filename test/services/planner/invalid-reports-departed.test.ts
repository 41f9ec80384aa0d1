import { afterEach, expect, it } from 'vitest';
import { ackSubject } from '../../../libs/bus/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, plannerOptions, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';

// probe21 P21-5: switchboard_planner_invalid_reports_total kept a series per node name for ever;
// the planner forgets a departed node everywhere else (forgetDeparted), and with autoscaled node
// names the series piled up. They now go when the node is forgotten.

let env: PlannerEnv | undefined;
let planner: RunningPlanner | undefined;
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env?.cleanup();
  env = undefined;
});

it("a node's invalid-report series go when the node leaves the cluster", { timeout: 20_000 }, async () => {
  env = await plannerEnv();
  const nodes = (names: string[]) => names.map((n, i) => nodeYaml(n, `192.0.2.${i + 1}`)).join('---\n');
  env.write('nodes.yaml', nodes(['node-1', 'node-2']));
  env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', ['10.0.0.1'])}`);
  planner = await runPlanner({ ...plannerOptions(env), say: () => {} });
  await planner.planner.synced;
  for (const n of ['node-1', 'node-2']) env.nc.publish(ackSubject(n), '{"type":"ACK","node":"' + n + '","vers');
  await env.nc.flush();
  const metric = async () => (await fetch(`${planner!.url}/metrics`)).text();
  await until(async () => (await metric()).includes('node="node-2",reason="not_json"} 1'), 5000, 'counted');
  expect(await metric()).toContain('switchboard_planner_invalid_reports_total{node="node-1",reason="not_json"} 1');
  // node-1 leaves the cluster (a new version without it); it never sent a valid report: not heard
  env.write('nodes.yaml', nodes(['node-2']));
  await until(async () => !(await metric()).includes('node="node-1"'), 10_000, "node-1's series to go");
  expect(await metric()).toContain('switchboard_planner_invalid_reports_total{node="node-2",reason="not_json"} 1');
});
