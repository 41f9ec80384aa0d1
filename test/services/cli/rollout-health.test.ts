import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from '../planner/planner-support.ts';
import { sbIn } from './cli-support.ts';

// Health verdicts in rollout gates (issue 16 items 2-4) with real processes: a real nats-server, a
// real planner on a real SQLite log, real dry-run appliers whose verdicts come from the test-only
// --test-verdict-file hook (a dry-run node has no dataplane to probe), ctl as a process. The probe
// itself against real traffic is test/netns/rollout-probe.test.ts.
let env: PlannerEnv;
let planner: RunningPlanner | undefined;
let appliers: ApplierService[] = [];
let verdictDir: string;

beforeEach(async () => {
  env = await plannerEnv();
  verdictDir = mkdtempSync(join(tmpdir(), 'sb-verdicts-'));
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  for (const a of appliers) await a.stop();
  appliers = [];
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
  rmSync(verdictDir, { recursive: true, force: true });
});

const verdictFile = (node: string) => join(verdictDir, node);
const inject = (node: string, text: string) => writeFileSync(verdictFile(node), text);
const start = async () => {
  planner = await runPlanner({
    ...plannerOptions(env),
    say: () => {},
  });
  await planner.planner.synced;
};
const startAppliers = async (...nodes: string[]) => startAppliersBeating(200, ...nodes);
const startAppliersBeating = async (heartbeatMs: number, ...nodes: string[]) => {
  for (const node of nodes) {
    appliers.push(
      await startApplierService({
        node,
        nats: env.nats.url,
        mode: 'dry-run',
        heartbeatMs,
        logger: pino({ level: 'silent' }),
        testVerdictFile: verdictFile(node),
        probe: { intervalMs: 200 },
      }),
    );
  }
};
const ctl = (...args: string[]) => sbIn(['ctl', '--server', planner!.url, ...args]);
const status = async () => JSON.parse((await ctl('status', '-o', 'json')).stdout);
const node = async (name: string) => (await status()).nodes.find((n: { node: string }) => n.node === name);
const gateOps = () =>
  planner!.planner['options'].log
    .operations()
    .filter((o) => o.kind === 'rollout' && typeof o.params.gate === 'string')
    .map((o) => ({ gate: o.params.gate as string, reason: o.reason }));

describe('health verdicts gate rollouts (dry-run appliers, injected verdicts)', () => {
  it('an unhealthy canary halts the rollout in wave 1 and goes back; wave 2 never starts', async () => {
    await start();
    inject('node-1', 'healthy');
    await startAppliers('node-1', 'node-2');
    await until(async () => (await node('node-2'))?.appliedConfigRevision === 1, 15_000, 'node-2 on revision 1');
    expect((await node('node-1')).health).toMatchObject({ verdict: 'healthy', injected: true, configRevision: 1 });
    expect((await node('node-2')).health).toMatchObject({
      verdict: 'unprobed',
      reason: 'dry-run: no dataplane to probe',
    });
    inject('node-1', 'unhealthy replies from the pods are dropped');
    const r = await ctl(
      'config',
      'set',
      'scheduler=wrr',
      '--waves',
      '1,100%',
      '--bake',
      '30s',
      '--wait',
      '--timeout',
      '60s',
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /halted at wave 1\/2, .*node-1 failed: unhealthy: replies from the pods are dropped \(injected by --test-verdict-file\)/,
    );
    const st = await status();
    expect(st.rollout).toMatchObject({ status: 'halted', wave: 1, haltedBy: { node: 'node-1' } });
    expect(st.config.defaultRevision).toBe(1);
    await until(async () => (await node('node-1'))?.appliedConfigRevision === 1, 15_000, 'node-1 back on revision 1');
    // node-2 (wave 2) was never given revision 2.
    expect((await node('node-2')).appliedConfigRevision).toBe(1);
    expect(planner!.planner.config.overrides().size).toBe(0);
    expect(gateOps().map((g) => g.gate)).toEqual(['halt']);
    expect(gateOps()[0]!.reason).toBe(
      'rollout halted: 1 failed node(s), 0 tolerated by --max-failures 0: node-1 (unhealthy: replies from the pods are dropped (injected by --test-verdict-file))',
    );
  });

  it('a verdict that turns unhealthy during the bake fails the wave before the bake ends', async () => {
    await start();
    inject('node-1', 'healthy');
    await startAppliers('node-1', 'node-2');
    await until(async () => (await node('node-2'))?.appliedConfigRevision === 1, 15_000, 'node-2 on revision 1');
    expect((await ctl('config', 'set', 'scheduler=wrr', '--waves', '1,100%', '--bake', '5m')).code).toBe(0);
    await until(() => planner!.planner.config.state.rollout?.bakeStartedAt, 15_000, 'wave 1 baking');
    const shown = await ctl('rollout', 'status');
    expect(shown.stdout).toMatch(
      /\nnodes of the wave \(status, config revision run, health verdict: why\):\n {2}node-1 +SYNCED +config 2 +healthy: test verdict \(injected by --test-verdict-file\)\n$/,
    );
    const view = JSON.parse((await ctl('rollout', 'status', '-o', 'json')).stdout).rollout;
    expect(view.waveNodes).toEqual([
      expect.objectContaining({
        node: 'node-1',
        status: 'SYNCED',
        appliedConfigRevision: 2,
        verdict: 'healthy',
        verdictRevision: 2,
        injected: true,
      }),
    ]);
    expect(view.bakeElapsedMs).toBeGreaterThanOrEqual(0);
    // The node re-probes every 200 ms and heartbeats a changed verdict at once.
    inject('node-1', 'unhealthy probe: 1 of 1 virtual server(s) failed');
    await until(() => planner!.planner.config.state.rollout?.status === 'halted', 15_000, 'rollout halted');
    const ops = gateOps();
    expect(ops.map((g) => g.gate)).toEqual(['bake', 'halt']);
    expect(ops[1]!.reason).toMatch(/node-1 \(unhealthy: probe: 1 of 1 virtual server\(s\) failed/);
    // Halted mid-bake: wave 2 never started, node-2 never left revision 1.
    expect(planner!.planner.config.state.rollout!.wave).toBe(0);
    expect((await node('node-2')).appliedConfigRevision).toBe(1);
    await until(async () => (await node('node-1'))?.appliedConfigRevision === 1, 15_000, 'node-1 back on revision 1');
    const after = await ctl('rollout', 'status');
    expect(after.stdout).toMatch(/^rollout of config revision 2 \(from 1\): halted, wave 1\/2/);
    expect(after.stdout).toMatch(/halted by node-1: unhealthy: probe: 1 of 1/);
  });

  it('unprobed nodes (dry-run, no injection) pass on their ACKs and are shown as unprobed, never healthy', async () => {
    await start();
    await startAppliers('node-1', 'node-2');
    await until(async () => (await node('node-2'))?.appliedConfigRevision === 1, 15_000, 'node-2 on revision 1');
    const r = await ctl('config', 'set', 'scheduler=wrr', '--waves', '1,100%', '--wait', '--timeout', '60s');
    expect(r.code).toBe(0);
    const st = await status();
    expect(st.config.defaultRevision).toBe(2);
    for (const n of st.nodes)
      expect(n.health).toMatchObject({ verdict: 'unprobed', reason: 'dry-run: no dataplane to probe', probe: null });
  });

  it('a planner restarted mid-bake does not revive a stale unhealthy verdict from the log (a later heartbeat had cleared it)', async () => {
    await start();
    inject('node-1', 'unhealthy probe failed');
    // Rare heartbeats: after the restart the planner hears nothing from node-1 before the overdue bake ends.
    // (A re-probe whose verdict changes word is heartbeated at once, whatever the period.)
    await startAppliersBeating(60_000, 'node-1');
    await startAppliers('node-2');
    await until(async () => (await node('node-1'))?.appliedConfigRevision === 1, 15_000, 'node-1 on revision 1');
    await until(async () => (await node('node-2'))?.appliedConfigRevision === 1, 15_000, 'node-2 on revision 1');
    expect(
      (await ctl('config', 'set', 'scheduler=wrr', '--waves', '1,100%', '--bake', '2s', '--pause-on-error')).code,
    ).toBe(0);
    // node-1 is ERROR (unhealthy) at the start, so it is no canary (W1): node-2 is, node-1 is in wave 2
    await until(
      () => planner!.planner.config.state.rollout?.status === 'paused',
      15_000,
      'paused by unhealthy node-1 in wave 2',
    );
    expect(planner!.planner.config.state.rollout).toMatchObject({ wave: 1, waves: [['node-2'], ['node-2', 'node-1']] });
    inject('node-1', 'healthy');
    await until(
      async () => (await node('node-1'))?.health?.verdict === 'healthy',
      15_000,
      'the healthy verdict heartbeated',
    );
    expect((await ctl('rollout', '--resume')).code).toBe(0);
    await until(() => planner!.planner.config.state.rollout?.bakeStartedAt, 15_000, 'wave 1 baking');
    await planner!.stop();
    planner = undefined;
    await new Promise((r) => setTimeout(r, 2500)); // the bake ends while the planner is down
    await start();
    // The logged ACK of revision 2 still says unhealthy; the heartbeat that cleared it was not logged.
    await until(() => planner!.planner.config.state.rollout?.status !== 'running', 15_000, 'the overdue bake decided');
    // the last wave's bake passed (a revived unhealthy verdict would have paused it)
    expect(planner!.planner.config.state.rollout).toMatchObject({ status: 'completed', wave: 1 });
  });
});
