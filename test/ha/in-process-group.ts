import pino from 'pino';
import { readVerifierFile } from '../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../libs/model/index.ts';
import { startApplierService, type ApplierService } from '../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner, type RunPlannerOptions } from '../../services/planner/run-planner.ts';
import type { PlannerEnv } from '../services/planner/planner-support.ts';

/**
 * Planners of one group and dry-run appliers in this process, on a plannerEnv's nats-server and
 * manifests (one signing key beside env.db). Each is stopped by the `stops` list the test drains.
 */
export async function startGroupPlanner(
  env: PlannerEnv,
  stops: (() => Promise<unknown>)[],
  o: { id: string; db: string } & Partial<RunPlannerOptions>,
): Promise<RunningPlanner> {
  const p = await runPlanner({
    manifests: env.manifests,
    nats: env.nats.url,
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    leaseTtlMs: 2000,
    signingKey: `${env.db}.signing-key.pem`,
    say: () => {},
    ...o,
  });
  stops.push(() => p.stop());
  return p;
}

export async function startDryRunApplier(
  env: PlannerEnv,
  stops: (() => Promise<unknown>)[],
  node: string,
  heartbeatMs = 200,
): Promise<ApplierService> {
  const svc = await startApplierService({
    node,
    nats: env.nats.url,
    mode: 'dry-run',
    http: '127.0.0.1:0',
    heartbeatMs,
    maxBackoffMs: 200,
    verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
    logger: pino({ level: 'silent' }),
  });
  stops.push(() => svc.stop());
  return svc;
}
