import type { NodeState } from '../model/index.ts';
import type { ApplyResult, Dataplane } from './dataplane.ts';
import {
  removeKubeProxyIpvs,
  snapshotKubeProxyIpvs,
  type Exec,
  type KubeProxyIpvsSnapshot,
} from './kube-proxy-ipvs-takeover.ts';
import {
  execIn,
  findKubeProxyLeftovers,
  ipv6GlueChains,
  NO_LEFTOVERS,
  removeKubeProxyLeftovers,
} from './kube-proxy-leftovers.ts';

/**
 * Moving a node off kube-proxy, make-before-break (docs/migrate-from-kube-proxy.md): the wrapped
 * dataplane programs Switchboard's state first; only after an apply that verified does this remove
 * kube-proxy's state, so every packet is handled by one proxy or the other throughout.
 * Connections that kube-proxy NATed keep their conntrack entries (NAT is bound when a connection
 * starts), so removing its rules does not break them.
 *
 * Both modes remove what kube-proxy's OTHER modes left, as kube-proxy's own CleanupLeftovers does
 * at its start (kube-proxy-leftovers.ts: its nftables tables `ip kube-proxy` / `ip6 kube-proxy`
 * in one atomic `nft -f`, its iptables- and ipvs-mode chains in iptables-nft and -legacy, IPv4
 * and IPv6; chains a foreign chain still jumps to are kept and named). ipvs mode also removes what
 * kube-proxy's ipvs mode had and we do not render (kube-proxy-ipvs-takeover.ts). Nothing else is
 * touched.
 *
 * Done once per process: kube-proxy must already be stopped on the node (it leaves its rules in
 * place when stopped); a running kube-proxy would put its state back and the two would fight
 * (withKubeProxyLeftoverCheck then reports it).
 */
export { KUBE_PROXY_NFT_TABLES } from './kube-proxy-leftovers.ts';

export interface TakeOverOptions {
  /** Run the tools inside this network namespace (`ip netns exec NS ...`). */
  readonly netns?: string;
  readonly log?: (line: string) => void;
}

/** Deletes kube-proxy's nftables tables that exist; returns the ones it deleted ("ip kube-proxy", ...). */
export async function removeKubeProxyNftTables(o: TakeOverOptions = {}): Promise<string[]> {
  const exec = execIn(o.netns);
  const found = await findKubeProxyLeftovers('nftables', exec);
  await removeKubeProxyLeftovers({ ...NO_LEFTOVERS, nftTables: found.nftTables }, exec);
  return [...found.nftTables];
}

/**
 * Removes kube-proxy's leftovers of every mode for a node running `mode` (ipvs: `state`, the state
 * applied, says which of its IPv6 chains our glue declares); the notes say what went and what stayed.
 */
export async function takeOverLeftovers(
  mode: 'ipvs' | 'nftables',
  exec: Exec,
  state?: NodeState,
): Promise<{ notes: string[]; wrote: boolean }> {
  const found = await findKubeProxyLeftovers(mode, exec, mode === 'ipvs' && state ? ipv6GlueChains(state) : undefined);
  const { removed, kept } = await removeKubeProxyLeftovers(found, exec);
  const tables = removed.filter((r) => r.startsWith('table ')).map((r) => r.slice('table '.length));
  const chains = removed.filter((r) => !r.startsWith('table '));
  const notes: string[] = [];
  if (tables.length) notes.push(`take-over: removed kube-proxy's tables ${tables.join(', ')}`);
  else if (mode === 'nftables') notes.push('take-over: no kube-proxy tables present');
  if (chains.length)
    notes.push(`take-over: removed kube-proxy's ${chains.length} iptables chains: ${summarise(chains)}`);
  if (kept.length) notes.push(`take-over: kept kube-proxy's chains a foreign chain jumps to: ${summarise(kept)}`);
  return { notes, wrote: removed.length > 0 };
}

const summarise = (xs: readonly string[]) =>
  xs.slice(0, 5).join(', ') + (xs.length > 5 ? ` and ${xs.length - 5} more` : '');

export function withKubeProxyTakeOver(dp: Dataplane, o: TakeOverOptions = {}): Dataplane {
  let done = false;
  let ipvsSnapshot: KubeProxyIpvsSnapshot | undefined;
  let lastState: NodeState | undefined;
  const exec = execIn(o.netns);
  const before = async (): Promise<void> => {
    // kube-proxy's ipvs-mode objects are recognised by what it had before our first apply
    // (that apply rewrites the ipsets that name its NodePorts)
    if (!done && !ipvsSnapshot && dp.mode === 'ipvs' && !o.netns) ipvsSnapshot = await snapshotKubeProxyIpvs();
  };
  const after = async (r: ApplyResult): Promise<ApplyResult> => {
    if (done || !r.verified) return r;
    const mode = dp.mode;
    if (mode !== 'ipvs' && mode !== 'nftables') return r;
    // ipvs mode retiring behind nftables: its glue has kube-proxy's ipvs-mode names and is ours;
    // the take-over waits until it is removed (a later resync)
    if (dp.draining === 'ipvs') return r;
    if (mode === 'ipvs' && (!ipvsSnapshot || !lastState)) return r;
    const t0 = performance.now();
    let notes: string[];
    let wrote = true;
    try {
      // the other modes' leftovers first: a legacy rule that names one of kube-proxy's ipsets
      // would keep the ipvs removal from destroying that set
      const other = await takeOverLeftovers(mode, exec, lastState);
      notes = other.notes;
      wrote = other.wrote;
      if (mode === 'ipvs') notes.push(...(await removeKubeProxyIpvs(ipvsSnapshot!, lastState!)));
      wrote ||= mode === 'ipvs';
    } catch (e) {
      // not done: the next resync tries again; the node keeps serving our state meanwhile
      return { ...r, verified: false, notes: [...r.notes, `take-over failed: ${(e as Error).message}`] };
    }
    done = true;
    for (const n of notes) o.log?.(n);
    return {
      ...r,
      kernelWrites: r.kernelWrites + (wrote ? 1 : 0),
      durationMs: r.durationMs + (performance.now() - t0),
      notes: [...r.notes, ...notes],
    };
  };
  return {
    get mode() {
      return dp.mode;
    },
    get draining() {
      return dp.draining;
    },
    apply: async (s, change) => {
      await before();
      lastState = s;
      return after(await dp.apply(s, change));
    },
    resync: async (o) => after(await dp.resync(o)),
    cleanup: () => dp.cleanup(),
    close: () => dp.close(),
  };
}
