// While ipvs mode retires behind nftables (ModeFollowingDataplane keeps it for the connections IPVS
// made), its netfilter glue carries kube-proxy's ipvs-mode chain names. The leftover check must not
// name it as kube-proxy's (that would fail every resync: "compete"), and the take-over must not
// remove it; both act as before once the retiring mode is gone.
import { describe, expect, it } from 'vitest';
import type { Dataplane, DataplaneMode } from '../../../libs/dataplane/dataplane.ts';
import { withKubeProxyLeftoverCheck } from '../../../libs/dataplane/kube-proxy-leftover-check.ts';
import { withKubeProxyTakeOver } from '../../../libs/dataplane/kube-proxy-takeover.ts';
import type { NodeState } from '../../../libs/model/index.ts';
import { fakeDataplane } from '../../netns/support/fake-dataplane.ts';

// our ipvs glue's nat chains as iptables-nft-save shows them (hooked: they see traffic)
const GLUE = `*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
COMMIT
`;
const exec = async (cmd: string) => (cmd === 'iptables-nft-save' ? GLUE : '');

/** nftables mode serving, ipvs mode retiring behind it while `retiring.ipvs` is true. */
function nftablesWithRetiringIpvs(retiring: { ipvs: boolean }): Dataplane {
  const dp = fakeDataplane('nftables');
  return {
    mode: dp.mode,
    get draining(): DataplaneMode | undefined {
      return retiring.ipvs ? 'ipvs' : undefined;
    },
    apply: dp.apply,
    resync: dp.resync,
    cleanup: dp.cleanup,
    close: dp.close,
  };
}

describe('ipvs mode retiring behind nftables', () => {
  it("the leftover check takes the retiring glue for ours, and for kube-proxy's once ipvs mode is gone", async () => {
    const retiring = { ipvs: true };
    const dp = withKubeProxyLeftoverCheck(nftablesWithRetiringIpvs(retiring), { exec, minCheckIntervalMs: 0 });
    const applied = await dp.apply({} as NodeState);
    expect(applied.notes).toEqual([]);
    expect(await dp.resync()).toMatchObject({ verified: true, notes: [] });
    expect(dp.draining).toBe('ipvs');
    retiring.ipvs = false; // the drain ended, yet the same chains are there: now they are not ours
    await expect(dp.resync()).rejects.toThrow(
      /kube-proxy.s rules compete .*found: iptables-nft nat chains KUBE-SERVICES, KUBE-MARK-MASQ/,
    );
  });

  it('the take-over waits until the retiring mode is removed', async () => {
    const retiring = { ipvs: true };
    // a namespace that does not exist: every tool fails, so the take-over finds nothing to remove
    const dp = withKubeProxyTakeOver(nftablesWithRetiringIpvs(retiring), { netns: `sb-none-${process.pid}` });
    const applied = await dp.apply({} as NodeState);
    expect(applied.notes.filter((n) => n.startsWith('take-over:'))).toEqual([]);
    expect((await dp.resync()).notes.filter((n) => n.startsWith('take-over:'))).toEqual([]);
    retiring.ipvs = false;
    expect((await dp.resync()).notes).toContain('take-over: no kube-proxy tables present');
  });
});
