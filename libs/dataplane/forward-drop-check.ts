import type { ApplyResult, Dataplane } from './dataplane.ts';
import type { Exec } from './kube-proxy-ipvs-takeover.ts';
import { execIn } from './kube-proxy-leftovers.ts';
import { NFT_FAMILY, NFT_TABLE } from './nftables/index.ts';

/**
 * Another program's forward-hook drop policy (probe7 C3): docker sets iptables `FORWARD` to DROP
 * at start, firewalld's `filter_FORWARD` drops by default, a host firewall may too. Service traffic
 * that the node forwards (a NodePort, LoadBalancer or external IP whose endpoint runs elsewhere,
 * or in a pod) then dies there while our table is whole: in nftables mode an accept in our table
 * cannot override another table's drop (each base chain decides on its own), and the data-path
 * probe connects from the node itself (the output path), so it never crosses FORWARD and reports
 * healthy. kube-proxy's nftables mode has the same limit; its iptables and ipvs modes (and our
 * ipvs glue) accept marked and established traffic at the top of iptables' own FORWARD chain.
 *
 * What is checked is only what can be told without guessing at other programs' rules: base
 * chains hooked at forward, in any table but ours (native nft and iptables-nft alike: `nft list
 * chains` shows both), and iptables-legacy's FORWARD, whose POLICY is drop. Such a chain may
 * still accept our traffic in a rule (docker's DOCKER-USER, a firewalld zone), so it is named as
 * a warning — in the apply's notes, the log once per change, and the node's heartbeat (onReport:
 * `ctl status` shows it) — never as a failure.
 *
 * ipvs mode (node10 part 3): the glue's KUBE-FORWARD accepts marked and established traffic from
 * iptables' own FORWARD chain (`iptables`, iptables-nft on Debian), so a DROP policy there is
 * harmless while our jump is in it. What our rules cannot answer is named: a FORWARD with policy
 * DROP and no jump to KUBE-FORWARD in iptables-nft or iptables-legacy, IPv4 or IPv6 (docker's on
 * the variant we do not program, or ours not in place), and a native nft base chain at the forward
 * hook with policy drop in any other table (firewalld's): each base chain decides on its own.
 */
export interface ForwardDropCheckOptions {
  readonly netns?: string;
  readonly exec?: Exec;
  readonly log?: (line: string) => void;
  /** Each check's result when it differs from the last one's (undefined: nothing found); the node warning. */
  readonly onReport?: (report: string | undefined) => void;
  /** Look again at most this often (ms; default 10 000), as the leftover check. */
  readonly minCheckIntervalMs?: number;
}

/** Pure: the forward-hook base chains with policy drop in `nft list chains` output, but ours: "table ip filter chain FORWARD". */
export function nftForwardDropChains(listChains: string, ourTable = `${NFT_FAMILY} ${NFT_TABLE}`): string[] {
  const out: string[] = [];
  let table = '';
  let chain = '';
  for (const line of listChains.split('\n')) {
    const t = /^table (\S+ \S+) \{/.exec(line);
    if (t) table = t[1]!;
    const c = /^\s*chain (\S+) \{/.exec(line);
    if (c) chain = c[1]!;
    if (table !== ourTable && /\bhook forward\b.*\bpolicy drop;/.test(line)) out.push(`table ${table} chain ${chain}`);
  }
  return out;
}

/** Pure: whether an iptables(-legacy)-save text's filter FORWARD policy is DROP. */
export function legacyForwardDrops(save: string): boolean {
  const filter = save.split(/^\*/m).find((p) => p.startsWith('filter\n'));
  return !!filter && /^:FORWARD DROP /m.test(filter);
}

/**
 * Pure: whether an iptables-save text's filter FORWARD policy is DROP with no rule of FORWARD
 * jumping to KUBE-FORWARD (our ipvs glue's accepts): then nothing of ours accepts forwarded
 * Service traffic in that chain.
 */
export function forwardDropsWithoutOurAccept(save: string): boolean {
  if (!legacyForwardDrops(save)) return false;
  const filter = save.split(/^\*/m).find((p) => p.startsWith('filter\n'))!;
  return !/^-A FORWARD\b.* -j KUBE-FORWARD\b/m.test(filter);
}

/** iptables-nft's own FORWARD chains as `nft list chains` names them: checked through its save tool in ipvs mode. */
const IPTABLES_NFT_FORWARD = new Set(['table ip filter chain FORWARD', 'table ip6 filter chain FORWARD']);

/** The one-line warning, or undefined when nothing was found. */
export function forwardDropReport(
  chains: readonly string[],
  mode: 'nftables' | 'ipvs' = 'nftables',
): string | undefined {
  if (chains.length === 0) return undefined;
  if (mode === 'ipvs')
    return `forwarded Service traffic (NodePort/LoadBalancer/external IP to an endpoint in a pod or on another node, and IPVS replies) may be dropped on this node by ${chains.join(', ')} (forward hook, policy drop) and nothing of ours accepts it there: our KUBE-FORWARD accepts only from iptables' own FORWARD chain, through its jump; unless that chain accepts it, load balancer and NodePort traffic through this node fails while its own probe passes (docs/applier-ipvs.md "Forward drop")`;
  return `forwarded Service traffic (NodePort/LoadBalancer/external IP to an endpoint in a pod or on another node) may be dropped on this node by ${chains.join(', ')} (forward hook, policy drop): an accept in our table cannot override another table's drop; unless that chain accepts it (e.g. ct status dnat accept, or the pod CIDR), load balancer and NodePort traffic through this node fails while its own probe passes (docs/nftables-mode.md "Firewalls and reloads")`;
}

/**
 * Reads the node (a missing tool counts as empty). nftables mode: `nft list chains`,
 * iptables-legacy-save, ip6tables-legacy-save. ipvs mode: `nft list chains` but iptables-nft's own
 * FORWARD, and the four save tools' FORWARD without our jump (forwardDropsWithoutOurAccept).
 */
export async function findForwardDrops(exec: Exec, mode: 'nftables' | 'ipvs' = 'nftables'): Promise<string[]> {
  const found = nftForwardDropChains(await exec('nft', ['list', 'chains']).catch(() => ''));
  if (mode === 'ipvs') {
    const foreign = found.filter((c) => !IPTABLES_NFT_FORWARD.has(c));
    for (const [tool, name] of [
      ['iptables-nft-save', 'iptables-nft'],
      ['ip6tables-nft-save', 'ip6tables-nft'],
      ['iptables-legacy-save', 'iptables-legacy'],
      ['ip6tables-legacy-save', 'ip6tables-legacy'],
    ] as const)
      if (forwardDropsWithoutOurAccept(await exec(tool, ['-t', 'filter']).catch(() => '')))
        foreign.push(`${name} filter FORWARD (no jump to KUBE-FORWARD)`);
    return foreign;
  }
  for (const [tool, name] of [
    ['iptables-legacy-save', 'iptables-legacy'],
    ['ip6tables-legacy-save', 'ip6tables-legacy'],
  ] as const)
    if (legacyForwardDrops(await exec(tool, []).catch(() => ''))) found.push(`${name} filter FORWARD`);
  return found;
}

/** Names forward drops at the first apply and at resyncs (at most every minCheckIntervalMs), in notes and the log. */
export function withForwardDropCheck(dp: Dataplane, o: ForwardDropCheckOptions = {}): Dataplane {
  const exec = o.exec ?? execIn(o.netns);
  const every = o.minCheckIntervalMs ?? 10_000;
  let last: { at: number; mode: string; report?: string } | undefined;
  let checkedAtStart = false;
  const check = async (): Promise<string | undefined> => {
    const mode = dp.mode; // `--mode auto` switches: a check of the other mode's is stale
    if (mode !== 'nftables' && mode !== 'ipvs') return undefined;
    const now = performance.now();
    if (last && last.mode === mode && now - last.at < every) return last.report;
    const report = forwardDropReport(await findForwardDrops(exec, mode), mode);
    if (report !== last?.report) {
      if (report) o.log?.(report);
      else if (last?.report) o.log?.('the forward-hook drop policies named before are gone');
      o.onReport?.(report);
    }
    last = { at: now, mode, report };
    return report;
  };
  const noted = (r: ApplyResult, report: string | undefined): ApplyResult =>
    report ? { ...r, notes: [...r.notes, report] } : r;
  return {
    get mode() {
      return dp.mode;
    },
    get draining() {
      return dp.draining;
    },
    apply: async (s, change) => {
      const r = await dp.apply(s, change);
      if (checkedAtStart || !r.verified) return r;
      checkedAtStart = true;
      return noted(r, await check());
    },
    resync: async (o) => {
      const r = await dp.resync(o);
      return noted(r, await check());
    },
    cleanup: () => dp.cleanup(),
    close: () => dp.close(),
  };
}
