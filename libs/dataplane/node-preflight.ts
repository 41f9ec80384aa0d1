import { release } from 'node:os';
import { defaultExec, type Exec } from './kube-proxy-ipvs-takeover.ts';
import type { IptablesBackend } from './kube-proxy-leftovers.ts';

/**
 * What a node must offer before the applier programs a mode on it, checked when the dataplane of
 * that mode is created (createDataplane's `preflight`; the applier passes refuseUnfitNode):
 *  - nftables mode: kernel 5.13 or newer (probe7 C8). kube-proxy refuses its nftables mode below
 *    that (pkg/proxy/nftables/proxier.go): an older host `nft` (0.9.8 and before, shipped with
 *    such kernels' distributions) cannot even list a ruleset holding a table with newer features,
 *    so firewalld or an operator's `nft list ruleset` would break. Our table uses the same
 *    features as kube-proxy's (concatenated address.port verdict maps, `numgen` maps, NAT to
 *    concatenated data), so the same floor.
 *  - ipvs mode: the node's iptables must be iptables-nft (probe7 C5). The glue writes through the
 *    image's iptables, which is iptables-nft; on a node whose kubelet and firewall use
 *    iptables-legacy, our rules would not order with theirs (a legacy FORWARD DROP wins over our
 *    accept) and kube-proxy's legacy chains would stay unseen. Which backend the node uses is
 *    guessed as iptables-wrapper (kube-proxy's image) does: detectIptablesBackend.
 * The glue's backend is chosen in libs/dataplane/ipvs/netlink-kernel.ts (not here); running it
 * through iptables-legacy there would replace the refusal with detectIptablesBackend's answer.
 */
export const NFTABLES_MIN_KERNEL: readonly [number, number] = [5, 13];

/** Pure: why `kernelRelease` (os.release(), uname -r) cannot run nftables mode, or undefined. */
export function nftablesKernelProblem(kernelRelease: string): string | undefined {
  const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
  if (!m) return undefined; // unknown format: the kernel will tell, at the first load
  const [major, minor] = [Number(m[1]), Number(m[2])];
  const [wantMajor, wantMinor] = NFTABLES_MIN_KERNEL;
  if (major > wantMajor || (major === wantMajor && minor >= wantMinor)) return undefined;
  return `nftables mode needs kernel ${wantMajor}.${wantMinor} or newer (as kube-proxy's nftables mode), this node runs ${kernelRelease}: use --mode ipvs, or upgrade the kernel`;
}

const KUBELET_HINT = /^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) /m;

/**
 * Pure: iptables-wrapper's choice from the tools' output: the backend holding the kubelet's hint
 * chains (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY in mangle), nft first; with no hint, the one
 * holding more rules (ties: nft).
 */
export function chooseIptablesBackend(saves: { nft: string; legacy: string }): {
  backend: IptablesBackend;
  reason: string;
} {
  if (KUBELET_HINT.test(saves.nft)) return { backend: 'nft', reason: "the kubelet's hint chain is in iptables-nft" };
  if (KUBELET_HINT.test(saves.legacy))
    return {
      backend: 'legacy',
      reason: "the kubelet's hint chain (KUBE-IPTABLES-HINT/KUBE-KUBELET-CANARY) is in iptables-legacy",
    };
  const rules = (t: string) => t.split('\n').filter((l) => l.startsWith('-')).length;
  const [nft, legacy] = [rules(saves.nft), rules(saves.legacy)];
  return legacy > nft
    ? {
        backend: 'legacy',
        reason: `no kubelet hint chain; iptables-legacy holds more rules (${legacy} against ${nft})`,
      }
    : {
        backend: 'nft',
        reason: `no kubelet hint chain; iptables-nft holds as many rules or more (${nft} against ${legacy})`,
      };
}

/** Reads both backends (IPv4 and IPv6; a missing tool counts as empty) and chooses. */
export async function detectIptablesBackend(exec: Exec = defaultExec) {
  const read = async (tools: string[]) => (await Promise.all(tools.map((t) => exec(t, []).catch(() => '')))).join('\n');
  return chooseIptablesBackend({
    nft: await read(['iptables-nft-save', 'ip6tables-nft-save']),
    legacy: await read(['iptables-legacy-save', 'ip6tables-legacy-save']),
  });
}

/** Throws, with what to do, when this node cannot run `mode` (see the module note). */
export async function refuseUnfitNode(
  mode: 'ipvs' | 'nftables',
  o: { kernelRelease?: string; exec?: Exec } = {},
): Promise<void> {
  if (mode === 'nftables') {
    const problem = nftablesKernelProblem(o.kernelRelease ?? release());
    if (problem) throw new Error(problem);
    return;
  }
  const { backend, reason } = await detectIptablesBackend(o.exec);
  if (backend === 'legacy')
    throw new Error(
      `ipvs mode: this node uses iptables-legacy (${reason}), but the ipvs glue writes iptables-nft, whose rules do not order with legacy ones: switch the node to iptables-nft (update-alternatives --set iptables /usr/sbin/iptables-nft, then restart the kubelet), or use --mode nftables`,
    );
}
