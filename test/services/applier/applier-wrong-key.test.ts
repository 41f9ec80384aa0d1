import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { readVerifierFile } from '../../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, svcYaml, type PlannerEnv } from '../planner/planner-support.ts';

/**
 * probe16 I8: a planner restarted with a signing key the node does not trust (a rotation without
 * the bundle step). The node keeps what it runs and drops every new target, and its /readyz said
 * 200 `on target` of the last target it took, not the planner's.
 */
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('n.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1'));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

it("a node dropping the planner's targets for their signature is not ready, and says why", async () => {
  const planner = (signingKey: string) =>
    runPlanner({
      manifests: env.manifests,
      nats: env.nats.url,
      db: env.db,
      signingKey,
      http: '127.0.0.1:0',
      config: DEFAULT_PROXY_CONFIG,
      debounceMs: 20,
      pollMs: 100,
      say: () => {},
    });
  const oldKey = path.join(env.dir, 'old.pem');
  const first = await planner(oldKey);
  await first.planner.synced;
  const svc = await startApplierService({
    node: 'node-1',
    nats: env.nats.url,
    mode: 'dry-run',
    http: '127.0.0.1:0',
    heartbeatMs: 200,
    maxBackoffMs: 200,
    verifier: readVerifierFile(`${oldKey}.pub`),
    logger: pino({ level: 'silent' }),
  });
  stops.push(() => svc.stop());
  const readyz = async () => {
    const r = await fetch(`http://127.0.0.1:${svc.httpPort}/readyz`);
    const b = (await r.json()) as { reason: string; applied?: { version: number } };
    return { code: r.status, reason: b.reason, applied: b.applied?.version };
  };
  await expect.poll(async () => (await readyz()).code, { timeout: 15_000 }).toBe(200);
  const before = (await readyz()).applied;

  await first.stop();
  const second = await planner(path.join(env.dir, 'new.pem')); // re-signs the targets with a key the node lacks
  stops.push(() => second.stop());
  env.write('b.yaml', svcYaml('b', '10.96.0.2'));
  await expect
    .poll(readyz, { timeout: 15_000 })
    .toEqual({ code: 503, reason: expect.stringMatching(/^dropping targets: .*--planner-key/), applied: before });
}, 40_000);
