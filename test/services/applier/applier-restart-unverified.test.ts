import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readVerifierFile } from '../../../libs/bus/index.ts';
import { DryRunDataplane } from '../../../libs/dataplane/index.ts';
import { type NodeState } from '../../../libs/model/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { sbIn } from '../cli/cli-support.ts';
import {
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sliceYaml,
  svcYaml,
  type PlannerEnv,
} from '../planner/planner-support.ts';

/**
 * An applier restarted over a kernel that still holds its rules (appliers are fail-static) does
 * not trust them until its first apply has read the kernel back (applier-restart.test.ts). Until
 * then it said "version 0": its heartbeats carried appliedVersion 0, so `ctl status` showed the
 * node APPLIED 0, LAG = the whole target, "running version 0 config 0": a node that runs nothing.
 * What it knows is what its --state-dir says the node last ACKed before the restart, not yet
 * checked: that is what it says now, and the planner shows it as such (APPLIED '-').
 */
let env: PlannerEnv;
let planner: RunningPlanner | undefined;
const stops: (() => Promise<unknown>)[] = [];
const dirs: string[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  planner = await runPlanner({
    ...plannerOptions(env),
    say: () => {},
  });
  stops.push(() => planner!.stop());
  await planner.planner.synced;
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A dry-run dataplane whose applies wait while `held` (the restarted process's first apply, in progress). */
class HeldDataplane extends DryRunDataplane {
  held: Promise<void> | undefined;
  override async apply(state: NodeState) {
    await this.held;
    return super.apply(state);
  }
}

const json = async (svc: ApplierService, url: string) =>
  (await (await fetch(`http://127.0.0.1:${svc.httpPort}${url}`)).json()) as Record<string, unknown>;

describe('a restarted applier before its first apply', () => {
  it('says what it last ACKed before the start, not yet verified, on its heartbeat, /healthz and /readyz; ctl status shows no version 0', async () => {
    const p = planner!.planner;
    const stateDir = mkdtempSync(path.join(tmpdir(), 'sb-unverified-'));
    dirs.push(stateDir);
    const start = (dataplane: DryRunDataplane) =>
      startApplierService({
        node: 'node-1',
        nats: env.nats.url,
        mode: 'dry-run',
        stateDir,
        dataplane,
        http: '127.0.0.1:0',
        heartbeatMs: 100,
        probe: { sample: 0 },
        verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
        logger: pino({ level: 'silent' }),
      });
    const row = () => p.status().find((n) => n.node === 'node-1')!;
    const first = await start(new DryRunDataplane());
    await expect.poll(() => row().status, { timeout: 10_000 }).toBe('SYNCED');
    const target = { version: row().targetVersion, configRevision: row().targetConfigRevision };
    await first.stop();

    const dataplane = new HeldDataplane();
    let release!: () => void;
    dataplane.held = new Promise<void>((r) => (release = r));
    const svc = await start(dataplane);
    stops.push(() => svc.stop());
    stops.push(async () => release()); // runs before svc.stop: a held apply would keep stop() waiting
    // the new process's heartbeats reach the planner while its first apply is held
    await expect.poll(() => row().reason, { timeout: 10_000 }).not.toMatch(/^running version/);
    expect(row()).toMatchObject({
      status: 'APPLYING',
      appliedVersion: null,
      appliedConfigRevision: null,
      lag: 0,
      reason: `restarted (last ACKed version ${target.version} config ${target.configRevision} before, not yet verified), target ${target.version} config ${target.configRevision}`,
    });
    const ctl = await sbIn(['ctl', '--server', planner!.url, 'status']);
    expect(ctl.code).toBe(0);
    const line = ctl.stdout.split('\n').find((l) => l.startsWith('node-1'))!;
    expect(line.split(/\s+/).slice(0, 7)).toEqual([
      'node-1',
      'APPLYING',
      'dry-run',
      String(target.version),
      '-',
      `-/${target.configRevision}`,
      '0',
    ]);
    const health = await json(svc, '/healthz');
    expect(health.applied).toBeUndefined();
    expect(health.lastAckedBeforeStart).toMatchObject({ ...target, verified: false });
    expect((await json(svc, '/readyz')).reason).toBe(
      `applying the target (restarted: last ACKed version ${target.version} config ${target.configRevision} before this start, not yet verified)`,
    );

    release();
    await expect.poll(() => row().status, { timeout: 10_000 }).toBe('SYNCED');
    expect(row()).toMatchObject({ appliedVersion: target.version, lag: 0 });
    expect((await json(svc, '/healthz')).lastAckedBeforeStart).toBeUndefined();
  }, 40_000);
});
