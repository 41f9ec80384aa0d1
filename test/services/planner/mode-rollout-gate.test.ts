import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readVerifierFile } from '../../../libs/bus/index.ts';
import { parseWaves } from '../../../libs/control/index.ts';
import { type Dataplane, DryRunDataplane } from '../../../libs/dataplane/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, plannerOptions, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';

/**
 * probe24 F1, the gate: `ctl mode nftables --waves …` over appliers fixed to `--mode ipvs` (or
 * `--mode auto` nodes that fell back) completed, every node SYNCED on the new revision, none
 * switched. A rollout that changes the mode now passes a node only once its ACK says it runs that
 * mode: the node fails the wave, the rollout halts and goes back. An in-process planner and an
 * applier service whose (dry-run) kernel reports mode ipvs, as a fixed `--mode ipvs` applier does.
 */
let env: PlannerEnv;
let planner: RunningPlanner | undefined;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', `${svcYaml('a', '10.96.0.1')}---\n${sliceYaml('a', ['10.0.0.1'])}`);
  planner = await runPlanner({ ...plannerOptions(env), say: () => {} });
  stops.push(() => planner!.stop());
  await planner.planner.synced;
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

/** The kernel untouched; reports the mode a fixed `--mode ipvs` applier runs (its ACKs say `mode: ipvs`). */
function ipvsReporting(): Dataplane {
  const d = new DryRunDataplane();
  return {
    mode: 'ipvs',
    apply: (s) => d.apply(s),
    resync: () => d.resync(),
    cleanup: () => d.cleanup(),
    close: () => d.close(),
  };
}

describe('a rollout that changes the proxy mode', () => {
  it('fails a node whose ACK says it runs the old mode, halts and sends it back', async () => {
    const p = planner!.planner;
    const svc = await startApplierService({
      node: 'node-1',
      nats: env.nats.url,
      mode: 'ipvs',
      dataplane: ipvsReporting(),
      heartbeatMs: 100,
      probe: { sample: 0 },
      verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
      logger: pino({ level: 'silent' }),
    });
    stops.push(() => svc.stop());
    const row = () => p.status().find((n) => n.node === 'node-1');
    await until(() => row()?.status === 'SYNCED' && row(), 10_000, 'node-1 SYNCED on revision 1');

    await p.configChange({ mode: 'nftables' }, { actor: 'op', reason: 'to nftables' }, 'mode', {
      waves: parseWaves('100%'),
      pauseOnError: false,
    });
    const ops = () => p['options'].log.operations().filter((o) => o.kind === 'rollout' && o.params.gate);
    const end = await until(
      () => ops().find((o) => o.params.gate === 'halt' || o.params.gate === 'complete'),
      10_000,
      'the rollout halted or completed',
    );
    expect(end.params.gate).toBe('halt');
    expect(end.reason).toMatch(
      /node-1 \(ACKed config revision 2 \(mode nftables\) but runs ipvs: its applier's --mode is fixed \(only --mode auto follows the config's mode\) or it fell back \(no IPVS in its kernel\)\)/,
    );
    await until(() => row()?.appliedConfigRevision === 1 && row()!.status === 'SYNCED', 10_000, 'node-1 back on 1');
  }, 20_000);
});
