import type { IpFamily, NodeState } from '../model/index.ts';
import type { DataplaneMode } from './dataplane.ts';
import { glueChains, glueFamilies, netfilterGlue, splitTableKey } from './ipvs/netfilter-glue.ts';
import { defaultExec, KUBE_PROXY_CHAINS, type Exec } from './kube-proxy-ipvs-takeover.ts';

/**
 * kube-proxy's state of ANY mode left on a node Switchboard runs (probe7 C4, C6): it competes
 * with ours, since its nat hooks sit at the same priority (the first NAT binding wins, i.e. the
 * table registered first) and its filter rules run before IPVS (a stale "has no endpoints" REJECT
 * keeps rejecting a ClusterIP). kube-proxy itself removes the other modes' leftovers at every start
 * (CleanupLeftovers); Switchboard names them (withKubeProxyLeftoverCheck) and removes them with
 * `--take-over-kube-proxy` (kube-proxy-takeover.ts), this module being the one home of what
 * counts as kube-proxy's:
 *  - nftables mode: the tables `ip kube-proxy` and `ip6 kube-proxy` (it owns exactly these);
 *  - iptables mode (pkg/proxy/iptables/proxier.go) and ipvs mode (KUBE_PROXY_CHAINS): its chains
 *    by name, in iptables-nft and iptables-legacy, IPv4 and IPv6. Not the kubelet's
 *    (KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT, filter KUBE-FIREWALL, KUBE-MARK-DROP) nor anything
 *    else. In ipvs mode the ipvs-mode names in iptables-nft (IPv4) are our glue's (adopted in
 *    place, the rest removed by kube-proxy-ipvs-takeover.ts), so they are not leftovers there; in
 *    ip6tables-nft only those our glue declares for IPv6 are (its IPv6 half exists only on nodes
 *    with IPv6 services: a dual-stack kube-proxy's IPv6 chains on a node we serve over IPv4 only
 *    are all leftovers, and hooked ones compete).
 * A leftover chain that a foreign chain still jumps to (a CNI's portmap chain jumping to
 * KUBE-MARK-MASQ) is kept, with every leftover it reaches: deleting it would need deleting
 * another program's rule (kube-proxy's own cleanup does; we do not).
 */
export const KUBE_PROXY_NFT_TABLES = [
  ['ip', 'kube-proxy'],
  ['ip6', 'kube-proxy'],
] as const;

/** kube-proxy iptables mode's fixed chain names per table (its per-service chains: SERVICE_CHAIN_PREFIXES). */
const IPTABLES_MODE_CHAINS: Readonly<Record<string, readonly string[]>> = {
  nat: ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-PROXY-CANARY'],
  filter: [
    'KUBE-SERVICES',
    'KUBE-EXTERNAL-SERVICES',
    'KUBE-NODEPORTS',
    'KUBE-FORWARD',
    'KUBE-PROXY-FIREWALL',
    'KUBE-PROXY-CANARY',
  ],
  mangle: ['KUBE-PROXY-CANARY'],
};
const SERVICE_CHAIN_PREFIXES = ['KUBE-SVC-', 'KUBE-SVL-', 'KUBE-EXT-', 'KUBE-FW-', 'KUBE-SEP-'];
const BUILT_IN = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

export type IptablesBackend = 'nft' | 'legacy';

/** The iptables tool sets whose state is looked at: both backends, both families. */
export const IPTABLES_TOOLS = [
  { backend: 'nft', family: 'IPv4', save: 'iptables-nft-save', restore: 'iptables-nft-restore' },
  { backend: 'nft', family: 'IPv6', save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' },
  { backend: 'legacy', family: 'IPv4', save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' },
  { backend: 'legacy', family: 'IPv6', save: 'ip6tables-legacy-save', restore: 'ip6tables-legacy-restore' },
] as const;
export type IptablesTool = (typeof IPTABLES_TOOLS)[number];

/** Whether `chain` of `table` is named as kube-proxy names its chains (any mode). */
export function isKubeProxyChain(table: string, chain: string): boolean {
  if (IPTABLES_MODE_CHAINS[table]?.includes(chain) || KUBE_PROXY_CHAINS[table]?.includes(chain)) return true;
  return table === 'nat' && SERVICE_CHAIN_PREFIXES.some((p) => chain.startsWith(p));
}

/** The chains our ipvs glue declares in ip6tables for `state`, per table ({} when it has no IPv6 half). */
export type Ipv6GlueChains = Readonly<Record<string, readonly string[]>>;

/** Pure: the IPv6 chains the ipvs glue programs for `state` (netfilter-glue.ts), per table. */
export function ipv6GlueChains(state: NodeState): Ipv6GlueChains {
  const out: Record<string, string[]> = {};
  for (const [key, chains] of Object.entries(glueChains(netfilterGlue(state.settings, glueFamilies(state))))) {
    const { family, table } = splitTableKey(key);
    if (family === 'IPv6') out[table] = chains;
  }
  return out;
}

/**
 * Whether a kube-proxy chain is a leftover for a node running `mode` (see the module note).
 * `ipv6Glue`: ipvs mode, what our glue declares in ip6tables; undefined when not known (no state
 * applied yet): then every ipvs-mode name counts as the glue's, as in IPv4 (nothing is removed or
 * reported that could be ours).
 */
export function isLeftoverChain(
  mode: 'ipvs' | 'nftables',
  backend: IptablesBackend,
  table: string,
  chain: string,
  family: IpFamily = 'IPv4',
  ipv6Glue?: Ipv6GlueChains,
) {
  if (!isKubeProxyChain(table, chain)) return false;
  if (mode !== 'ipvs' || backend !== 'nft' || !KUBE_PROXY_CHAINS[table]?.includes(chain)) return true;
  return family === 'IPv6' && ipv6Glue !== undefined && !ipv6Glue[table]?.includes(chain);
}

/** One table of one iptables tool: its leftover chains and how to remove them. */
export interface IptablesLeftoverTable {
  readonly table: string;
  /** Leftover chains that go: "nat/KUBE-SVC-ABC". */
  readonly removed: readonly string[];
  /** Leftover chains kept, and why: "nat/KUBE-MARK-MASQ (jumped to from CNI-DN-1)". */
  readonly kept: readonly string[];
  /** Leftover chains a built-in chain jumps to: they see traffic, so they compete with ours. */
  readonly hooked: readonly string[];
  /** The `-D`/`-F`/`-X` lines (iptables-restore --noflush, without *table/COMMIT); empty: nothing goes. */
  readonly lines: readonly string[];
}

const jumpTarget = (rule: string) => /(?:^|\s)(?:-j|-g|--jump|--goto) (\S+)/.exec(rule)?.[1];

/**
 * Pure: the leftovers in `iptables-save` text and the restore lines that remove them: jumps from
 * built-in chains deleted, then the chains flushed and deleted. Chains a foreign chain jumps to
 * are kept (so are the leftovers those reach): no foreign rule is ever deleted.
 */
export function planIptablesLeftovers(
  save: string,
  isLeftover: (table: string, chain: string) => boolean,
): IptablesLeftoverTable[] {
  const out: IptablesLeftoverTable[] = [];
  for (const part of save.split(/^\*/m).slice(1)) {
    const nl = part.indexOf('\n');
    const table = part.slice(0, nl).trim();
    const text = part.slice(nl + 1);
    const leftovers = [...text.matchAll(/^:(\S+)/gm)].map((m) => m[1]!).filter((c) => isLeftover(table, c));
    if (leftovers.length === 0) continue;
    const rules = [...text.matchAll(/^-A (\S+) (.*)$/gm)].map((m) => ({ chain: m[1]!, spec: m[2]! }));
    const left = new Set(leftovers);
    const keptBy = new Map<string, string>();
    for (const r of rules) {
      const t = jumpTarget(r.spec);
      if (t && left.has(t) && !left.has(r.chain) && !BUILT_IN.has(r.chain) && !keptBy.has(t)) keptBy.set(t, r.chain);
    }
    // what a kept chain jumps to stays too (its rules stay)
    for (let grew = true; grew; ) {
      grew = false;
      for (const r of rules) {
        const t = jumpTarget(r.spec);
        if (t && keptBy.has(r.chain) && left.has(t) && !keptBy.has(t)) {
          keptBy.set(t, r.chain);
          grew = true;
        }
      }
    }
    const removed = leftovers.filter((c) => !keptBy.has(c));
    const gone = new Set(removed);
    const hooked = leftovers.filter((c) => rules.some((r) => BUILT_IN.has(r.chain) && jumpTarget(r.spec) === c));
    const deletes = rules
      .filter((r) => BUILT_IN.has(r.chain) && gone.has(jumpTarget(r.spec) ?? ''))
      .map((r) => `-D ${r.chain} ${r.spec}`);
    out.push({
      table,
      removed: removed.map((c) => `${table}/${c}`),
      kept: [...keptBy].map(([c, by]) => `${table}/${c} (jumped to from ${by})`),
      hooked: hooked.map((c) => `${table}/${c}`),
      lines: removed.length ? [...deletes, ...removed.map((c) => `-F ${c}`), ...removed.map((c) => `-X ${c}`)] : [],
    });
  }
  return out;
}

/** What kube-proxy left on this node, per place. */
export interface KubeProxyLeftovers {
  /** "ip kube-proxy", "ip6 kube-proxy". */
  readonly nftTables: readonly string[];
  readonly iptables: readonly { readonly tool: IptablesTool; readonly tables: readonly IptablesLeftoverTable[] }[];
}

export const NO_LEFTOVERS: KubeProxyLeftovers = { nftTables: [], iptables: [] };

/**
 * Reads the node (nft list tables, the four iptables saves; a missing tool counts as empty).
 * `ipv6Glue`: ipvs mode, the chains our glue declares in ip6tables (ipv6GlueChains of the state
 * applied), see isLeftoverChain.
 */
export async function findKubeProxyLeftovers(
  mode: 'ipvs' | 'nftables',
  exec: Exec = defaultExec,
  ipv6Glue?: Ipv6GlueChains,
): Promise<KubeProxyLeftovers> {
  const listed = await exec('nft', ['list', 'tables']).catch(() => '');
  const nftTables = KUBE_PROXY_NFT_TABLES.filter(([fam, name]) =>
    new RegExp(`^table ${fam} ${name}$`, 'm').test(listed),
  ).map(([fam, name]) => `${fam} ${name}`);
  const iptables: { tool: IptablesTool; tables: IptablesLeftoverTable[] }[] = [];
  for (const tool of IPTABLES_TOOLS) {
    // a tool that is missing, or a kernel without that backend, holds nothing of kube-proxy's
    const save = await exec(tool.save, []).catch(() => '');
    const tables = planIptablesLeftovers(save, (t, c) =>
      isLeftoverChain(mode, tool.backend, t, c, tool.family, ipv6Glue),
    );
    if (tables.length) iptables.push({ tool, tables });
  }
  return { nftTables, iptables };
}

/** Leftovers that see traffic (a kube-proxy table, a chain a built-in chain jumps to): they compete with ours. */
export function competingLeftovers(l: KubeProxyLeftovers): string[] {
  return [
    ...l.nftTables.map((t) => `table ${t}`),
    ...l.iptables.flatMap(({ tool, tables }) =>
      tables.flatMap((t) => t.hooked.map((c) => `${tool.save.replace(/-save$/, '')} ${c}`)),
    ),
  ];
}

/** Every leftover, one short phrase each (chains of one tool and table counted). */
export function describeLeftovers(l: KubeProxyLeftovers): string[] {
  const out = l.nftTables.map((t) => `table ${t}`);
  for (const { tool, tables } of l.iptables)
    for (const t of tables) {
      const all = [...t.removed, ...t.kept.map((k) => k.split(' ')[0]!)].map((c) => c.split('/')[1]!);
      const shown = all.slice(0, 3).join(', ') + (all.length > 3 ? ` and ${all.length - 3} more` : '');
      out.push(`${tool.save.replace(/-save$/, '')} ${t.table} chains ${shown}`);
    }
  return out;
}

/**
 * Removes the leftovers `l` names: the kube-proxy nft tables in one `nft -f`, then per iptables
 * tool one `iptables-restore --noflush` of the planned lines. Returns what it removed and kept.
 */
export async function removeKubeProxyLeftovers(
  l: KubeProxyLeftovers,
  exec: Exec = defaultExec,
): Promise<{ removed: string[]; kept: string[] }> {
  const removed: string[] = [];
  const kept: string[] = [];
  if (l.nftTables.length) {
    await exec('nft', ['-f', '-'], l.nftTables.map((t) => `delete table ${t}\n`).join(''));
    removed.push(...l.nftTables.map((t) => `table ${t}`));
  }
  for (const { tool, tables } of l.iptables) {
    const name = tool.save.replace(/-save$/, '');
    const text = tables
      .filter((t) => t.lines.length)
      .map((t) => [`*${t.table}`, ...t.lines, 'COMMIT', ''].join('\n'))
      .join('');
    if (text) await exec(tool.restore, ['--noflush'], text);
    for (const t of tables) {
      removed.push(...t.removed.map((c) => `${name} ${c}`));
      kept.push(...t.kept.map((c) => `${name} ${c}`));
    }
  }
  return { removed, kept };
}

/** Runs commands inside `netns` when given (`ip netns exec NS ...`), else directly. */
export function execIn(netns: string | undefined): Exec {
  return netns ? (cmd, args, input) => defaultExec('ip', ['netns', 'exec', netns, cmd, ...args], input) : defaultExec;
}

/** The modes whose nodes are checked (dry-run programs nothing, so nothing competes with it). */
export function checkedMode(mode: DataplaneMode): 'ipvs' | 'nftables' | undefined {
  return mode === 'ipvs' || mode === 'nftables' ? mode : undefined;
}
