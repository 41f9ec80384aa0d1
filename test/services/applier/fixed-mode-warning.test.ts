import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { readVerifierFile } from '../../../libs/bus/index.ts';
import { parseWaves } from '../../../libs/control/index.ts';
import { DryRunDataplane } from '../../../libs/dataplane/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { until } from '../planner/planner-support.ts';
import { oneNodePlannerEachTest } from './one-node-planner.ts';

/**
 * probe24 F1: `applier --mode ipvs|nftables` programs its own mode whatever the config asks (only
 * `--mode auto` follows the config's mode) and ACKs with the hashes the planner rendered, so `ctl
 * mode nftables --waves … --wait` completed with every node SYNCED on the new revision while none
 * had switched, and nothing in `ctl status` said so. The node now warns while its target asks for
 * another mode than the one it is fixed to (a heartbeat warning: `ctl status` prints it).
 */
const t = oneNodePlannerEachTest();

describe('an applier with a fixed --mode and a config asking for the other mode', () => {
  it('warns in its heartbeat (ctl status) while its target asks for another mode, and stops once it asks for its own', async () => {
    const p = t.planner.planner;
    const svc = await startApplierService({
      node: 'node-1',
      nats: t.env.nats.url,
      mode: 'ipvs',
      dataplane: new DryRunDataplane(), // the kernel untouched; the service is told it is fixed to ipvs
      heartbeatMs: 100,
      probe: { sample: 0 },
      verifier: readVerifierFile(`${t.env.db}.signing-key.pem.pub`),
      logger: pino({ level: 'silent' }),
    });
    t.stops.push(() => svc.stop());
    const row = () => p.status().find((n) => n.node === 'node-1');
    // the initial config asks for ipvs (the default): nothing to say
    await until(() => row()?.status === 'SYNCED' && row()!.heartbeatAt && row(), 10_000, 'node-1 SYNCED on revision 1');
    expect(row()!.warnings).toEqual([]);

    const who = { actor: 'op', reason: 'switch to nftables' };
    await p.configChange({ mode: 'nftables' }, who, 'mode', { waves: parseWaves('100%'), pauseOnError: false });
    await until(
      () => row()?.status === 'SYNCED' && row()!.appliedConfigRevision === 2 && row()!.warnings.length > 0 && row(),
      10_000,
      'node-1 SYNCED on revision 2 (mode nftables) with a warning',
    );
    // the node runs ipvs: the rollout's SYNCED is not a switch, and the node says so
    expect(row()!.warnings).toEqual([
      "the config asks for mode nftables; this applier runs --mode ipvs, which ignores the config's mode (it programs ipvs): run it with --mode auto to follow the config, or set the config's mode to ipvs",
    ]);

    await p.rollbackConfig(undefined, { actor: 'op', reason: 'back' });
    await until(
      () => row()?.appliedConfigRevision === 1 && row()!.warnings.length === 0 && row(),
      10_000,
      'node-1 back on revision 1 without the warning',
    );
  }, 20_000);
});
