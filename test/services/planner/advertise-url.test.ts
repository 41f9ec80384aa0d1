// review5 F5: a follower answers a write with a redirect naming the leader's `api`; for a wildcard
// --http that was the bare host name (on Kubernetes a pod name no one can resolve). --advertise-url
// names what to send instead, and the group shows it.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, svcYaml, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
let planner: RunningPlanner | undefined;
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1'));
});
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

it('the group names this planner by its --advertise-url (trailing slash dropped), not its listen address', async () => {
  const advertised = 'http://planner-0.planners.example.svc:9440';
  planner = await runPlanner({
    manifests: env.manifests,
    nats: env.nats.url,
    db: env.db,
    http: '127.0.0.1:0',
    advertiseUrl: `${advertised}/`,
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    say: () => {},
  });
  await planner.planner.synced;
  await expect
    .poll(
      async () => {
        const s = (await (await fetch(`${planner!.url}/status`)).json()) as {
          leader: { api: string | null } | null;
          planners: { api: string | null }[];
        };
        return [s.leader?.api, s.planners.map((p) => p.api)];
      },
      { timeout: 10_000 },
    )
    .toEqual([advertised, [advertised]]);
});
