import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { readVerifierFile } from '../../../libs/bus/index.ts';
import { parseWaves } from '../../../libs/control/index.ts';
import { ModeFollowingDataplane, type Dataplane, type RetireResult } from '../../../libs/dataplane/index.ts';
import type { NodeState, ProxyMode } from '../../../libs/model/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { fakeDataplane, VERIFIED } from '../../netns/support/fake-dataplane.ts';
import { until } from '../planner/planner-support.ts';
import { oneNodePlannerEachTest } from './one-node-planner.ts';

/**
 * ipvs → nftables keeps ipvs mode programmed for the connections IPVS made until they close
 * (ModeFollowingDataplane; the kernel side: test/vm/mode-switch/established-connections.vm.test.ts).
 * The node is SYNCED in nftables mode meanwhile, and says in its heartbeat (`ctl status` WARN NODE,
 * the console) that ipvs mode is still programmed behind it, until the drain ends.
 */
const t = oneNodePlannerEachTest();

/** A mode's dataplane that verifies everything (the kernel is not what this test is about); ipvs retires while connections hold it. */
function fakeMode(mode: ProxyMode, held: { connections: number }): Dataplane {
  const dp = fakeDataplane(mode);
  if (mode !== 'ipvs') return dp;
  return {
    ...dp,
    retire: async (_s: NodeState): Promise<RetireResult> => ({
      ...VERIFIED,
      removed: held.connections === 0,
      connections: held.connections,
    }),
  };
}

describe('an applier whose ipvs mode drains behind nftables after a switch', () => {
  it('is SYNCED in nftables mode and warns while ipvs mode is still programmed; the warning goes with the drain', async () => {
    const p = t.planner.planner;
    const held = { connections: 0 };
    const svc = await startApplierService({
      node: 'node-1',
      nats: t.env.nats.url,
      mode: 'auto',
      dataplane: (hooks) =>
        new ModeFollowingDataplane({
          ipvsAvailable: true,
          open: async (mode) => fakeMode(mode, held),
          onDrain: hooks.onModeDrain,
        }),
      heartbeatMs: 100,
      resyncIntervalMs: 300,
      probe: { sample: 0 },
      verifier: readVerifierFile(`${t.env.db}.signing-key.pem.pub`),
      logger: pino({ level: 'silent' }),
    });
    t.stops.push(() => svc.stop());
    const row = () => p.status().find((n) => n.node === 'node-1');
    await until(() => row()?.status === 'SYNCED' && row()!.heartbeatAt && row(), 10_000, 'node-1 SYNCED in ipvs mode');
    expect(row()!.warnings).toEqual([]);

    held.connections = 2; // two clients connected through IPVS when the switch comes
    const who = { actor: 'op', reason: 'to nftables' };
    await p.configChange({ mode: 'nftables' }, who, 'mode', { waves: parseWaves('100%'), pauseOnError: false });
    await until(
      () => row()?.status === 'SYNCED' && row()!.appliedConfigRevision === 2 && row()!.warnings.length > 0 && row(),
      10_000,
      'node-1 SYNCED on revision 2 (nftables) with a warning',
    );
    expect(row()!.mode).toBe('nftables');
    expect(row()!.warnings).toEqual([
      'ipvs mode kept for 2 established connection(s) until they close (at most the drain timeout): ipvs still programmed behind nftables',
    ]);

    held.connections = 1;
    await until(() => /kept for 1 established/.test(row()?.warnings[0] ?? '') && row(), 10_000, 'the count moves');
    held.connections = 0; // the last one closed: the next resync removes ipvs mode
    await until(() => row()?.warnings.length === 0 && row(), 10_000, 'the warning gone with the drain');
    expect(row()!.status).toBe('SYNCED');
  }, 30_000);
});
