import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readVerifierFile } from '../../libs/bus/index.ts';
import { startApplierService } from '../../services/applier/applier-service.ts';
import type { RunningPlanner } from '../../services/planner/run-planner.ts';
import { HeldDataplane } from '../libs/bus/bus-harness.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, type PlannerEnv } from '../services/planner/planner-support.ts';
import { startGroupPlanner } from './in-process-group.ts';

/**
 * probe14 P2: a node alive (heartbeating) but stuck before its ACK read STALE on the leader after
 * the apply timeout, and APPLYING for ever on every follower: only a leader started the
 * APPLYING→STALE clock (when it wrote the targets). A short apply timeout keeps the test short.
 */
const THRESHOLDS = { silenceMs: 30_000, applyTimeoutMs: 1500 };

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const rowOf = (p: RunningPlanner) => p.planner.status().find((r) => r.node === 'node-1');

describe('a node stuck on an old version', () => {
  it('reads STALE on a follower as on the leader', async () => {
    const a = await startGroupPlanner(env, stops, { id: 'a', db: env.db, statusThresholds: THRESHOLDS });
    await a.planner.synced;
    const b = await startGroupPlanner(env, stops, {
      id: 'b',
      db: `${env.dir}/b.db`,
      statusThresholds: THRESHOLDS,
    });
    expect(b.group.role()).toBe('follower');
    const dataplane = new HeldDataplane();
    const svc = await startApplierService({
      node: 'node-1',
      nats: env.nats.url,
      mode: 'dry-run',
      http: '127.0.0.1:0',
      dataplane,
      heartbeatMs: 200,
      maxBackoffMs: 200,
      verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
      logger: pino({ level: 'silent' }),
    });
    stops.push(() => svc.stop());
    stops.push(async () => dataplane.unstick()); // runs first: the stop waits for the apply
    await expect.poll(() => rowOf(a)?.status, { timeout: 15_000 }).toBe('SYNCED');

    dataplane.held = true;
    env.write('b.yaml', svcYaml('b', '10.96.0.2'));
    await expect.poll(() => rowOf(a)?.status, { timeout: 15_000 }).toBe('STALE');
    await expect.poll(() => rowOf(b)?.targetVersion, { timeout: 10_000 }).toBe(2);
    await expect.poll(() => rowOf(b)?.status, { timeout: 10_000 }).toBe('STALE');
    expect(rowOf(b)?.reason).toMatch(/^running version 1 config \d+, target 2 config \d+ set \d+ s ago$/);
  }, 60_000);
});
