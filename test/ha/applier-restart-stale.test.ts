import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readVerifierFile } from '../../libs/bus/index.ts';
import { startApplierService, type ApplierService } from '../../services/applier/applier-service.ts';
import type { RunningPlanner } from '../../services/planner/run-planner.ts';
import { HeldDataplane } from '../libs/bus/bus-harness.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, type PlannerEnv } from '../services/planner/planner-support.ts';
import { startGroupPlanner } from './in-process-group.ts';

/**
 * probe20 P20-6: the APPLYING→STALE clock started when the planner set the node's target, so an
 * applier restarted after its target had aged past the apply timeout (every node in an applier
 * DaemonSet upgrade) read STALE at once, before it had a chance to apply. Now a new applier
 * process heard after the target was set gets the apply timeout from its start, once per target
 * until the node runs it: a crash loop still goes STALE. Leader and follower say the same, and so
 * does the follower once it leads (it keeps its clocks). Real
 * nats-server, a planner group of two, dry-run appliers whose applies the test holds (a slow
 * apply) and whose NATS connection it closes (a crash: no goodbye). A short apply timeout.
 */
const APPLY_TIMEOUT_MS = 3000;
const THRESHOLDS = { silenceMs: 30_000, applyTimeoutMs: APPLY_TIMEOUT_MS };

let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', ['10.0.0.1'])}`);
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

interface Applier {
  readonly svc: ApplierService;
  readonly dataplane: HeldDataplane;
  /** The planner's clock reading (wall) when it started: its reports are stamped after. */
  readonly startedAt: string;
}

async function startApplier(held: boolean): Promise<Applier> {
  const startedAt = new Date().toISOString();
  const dataplane = new HeldDataplane(held);
  const svc = await startApplierService({
    node: 'node-1',
    nats: env.nats.url,
    mode: 'dry-run',
    dataplane,
    stateDir: `${env.dir}/state`, // one node: a restart reads what the process before it ACKed
    heartbeatMs: 200,
    maxBackoffMs: 200,
    verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
    logger: pino({ level: 'silent' }),
  });
  stops.push(() => svc.stop());
  stops.push(async () => dataplane.unstick()); // runs first: a stop waits for the apply
  return { svc, dataplane, startedAt };
}

/** The process dies: its connection goes without a goodbye, nothing more is heard from it. */
async function crash(a: Applier): Promise<void> {
  await (await a.svc.connected).close();
  a.dataplane.unstick();
  await a.svc.stop();
}

const rowOf = (p: RunningPlanner) => p.planner.status().find((r) => r.node === 'node-1');
/** Both planners' words for node-1 once both have heard a heartbeat of `a` (stamped after its start). */
async function wordsFrom(a: Applier, planners: RunningPlanner[]): Promise<string[]> {
  await expect
    .poll(() => planners.every((p) => (rowOf(p)?.heartbeatAt ?? '') >= a.startedAt), { timeout: 10_000 })
    .toBe(true);
  return planners.map((p) => `${rowOf(p)?.status}: ${rowOf(p)?.reason}`);
}

describe('an applier restarted after its target aged past the apply timeout', () => {
  it('is APPLYING for the timeout from its start, then STALE; a crash loop is not given another; a later restart is', async () => {
    const a = await startGroupPlanner(env, stops, { id: 'a', db: env.db, statusThresholds: THRESHOLDS });
    await a.planner.synced;
    const b = await startGroupPlanner(env, stops, { id: 'b', db: `${env.dir}/b.db`, statusThresholds: THRESHOLDS });
    expect(b.group.role()).toBe('follower');
    const planners = [a, b];
    const first = await startApplier(false);
    for (const p of planners) await expect.poll(() => rowOf(p)?.status, { timeout: 15_000 }).toBe('SYNCED');
    const target = `target ${rowOf(a)!.targetVersion} config ${rowOf(a)!.targetConfigRevision}`;
    await new Promise((r) => setTimeout(r, APPLY_TIMEOUT_MS + 500)); // the target ages past the timeout
    await crash(first);

    // an applier upgrade: the new process applies slowly (held); it is APPLYING, not STALE at once
    const second = await startApplier(true);
    const restarted = /^restarted \(last ACKed version \d+ config \d+ before, not yet verified\)/;
    for (const w of await wordsFrom(second, planners)) expect(w).toMatch(/^APPLYING: /);
    // it never applies: STALE on both once the timeout from its start passed, saying so
    for (const p of planners) await expect.poll(() => rowOf(p)?.status, { timeout: 10_000 }).toBe('STALE');
    for (const p of planners) {
      expect(rowOf(p)?.reason).toMatch(restarted);
      expect(rowOf(p)?.reason).toMatch(new RegExp(`, ${target} set \\d+ s ago, its applier started \\d+ s ago$`));
    }

    // it crashes and comes back, still before applying: a crash loop gets no second timeout
    await crash(second);
    const third = await startApplier(true);
    for (const w of await wordsFrom(third, planners)) expect(w).toMatch(/^STALE: /);

    // it applies at last: SYNCED; the next restart (the next rollout) has its own timeout again
    third.dataplane.unstick();
    for (const p of planners) await expect.poll(() => rowOf(p)?.status, { timeout: 10_000 }).toBe('SYNCED');
    await crash(third);
    const fourth = await startApplier(true);
    for (const w of await wordsFrom(fourth, planners)) expect(w).toMatch(/^APPLYING: /);
    for (const p of planners) await expect.poll(() => rowOf(p)?.status, { timeout: 10_000 }).toBe('STALE');

    // the leader goes: b leads and keeps its clock (before, a new leader started every node's
    // clock again at its takeover: STALE read APPLYING for another apply timeout)
    await a.stop();
    await expect.poll(() => b.group.role(), { timeout: 15_000 }).toBe('leader');
    expect(rowOf(b)?.status).toBe('STALE');
  }, 60_000);
});
