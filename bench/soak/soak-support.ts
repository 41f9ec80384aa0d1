// What reconnect-churn.ts and version-trace.ts share: the planner test environment with `nodes`
// written (one Node each, 192.0.2.N), Service `a` with one endpoint whose IP each churn() changes
// (the manifest change a round writes), and the planners' status thresholds.
import { nodeYaml, plannerEnv, sliceYaml, svcYaml } from '../../test/services/planner/planner-support.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The status thresholds both scripts start their planners with. */
export const soakThresholds = { statusThresholds: { silenceMs: 3000, applyTimeoutMs: 5000 } };

/** The environment with `nodes` and Service `a` written; churn() gives the endpoint the next IP. */
export async function churnEnv(nodes: readonly string[]) {
  const env = await plannerEnv();
  env.write('nodes.yaml', nodes.map((n, i) => nodeYaml(n, `192.0.2.${i + 1}`)).join('---\n'));
  let gen = 0;
  const churn = () => {
    gen++;
    env.write(
      'a.yaml',
      `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', [`10.0.${(gen >> 8) % 250}.${(gen % 250) + 1}`])}`,
    );
  };
  churn();
  return { env, churn };
}
