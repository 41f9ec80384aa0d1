import {
  byCodeUnit,
  ipFamily,
  parseCidr,
  type IpFamily,
  type IpsetState,
  type IpsetType,
  type NodeProxySettings,
  type NodeState,
} from '../../model/index.ts';
import { IPSET_TABLE, ipsetName, nodePortSetBase, type IpsetBaseName } from '../../planner/index.ts';

/**
 * The fixed netfilter rule set of kube-proxy's ipvs mode for one address family, in the exact text
 * `iptables-save` / `ip6tables-save` prints, so read-back compares lines. As kube-proxy's
 * dual-stack ipvs mode (one proxier per family), the IPv6 rules are the IPv4 ones over the
 * KUBE-6-* sets, written with ip6tables. Per-service data lives in the ipsets; these rules only
 * change with the proxy settings (masqueradeAll, clusterCIDR). Applied with
 * `iptables-restore --noflush` (`ip6tables-restore` for IPv6): only our chains are declared (and so
 * flushed), built-in chains get just our jump rules, and foreign rules are never touched.
 */
export interface NetfilterGlue {
  /** table key (see tableKey) → our chain → rule lines (without "-A CHAIN "). */
  readonly chains: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
  /** table key → built-in chain → our jump lines, in order, inserted at the top. */
  readonly jumps: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
}

/**
 * How the glue, the observation and the ownership record name a table of one family: IPv4 tables
 * by their name (as records written before the IPv6 half have them), IPv6 ones as "ip6:<table>".
 */
export function tableKey(family: IpFamily, table: string): string {
  return family === 'IPv4' ? table : `${IP6_PREFIX}${table}`;
}

/** The family and table a table key names (the inverse of tableKey). */
export function splitTableKey(key: string): { family: IpFamily; table: string } {
  return key.startsWith(IP6_PREFIX)
    ? { family: 'IPv6', table: key.slice(IP6_PREFIX.length) }
    : { family: 'IPv4', table: key };
}

const IP6_PREFIX = 'ip6:';
const MASQ_MARK = '0x4000/0x4000';
const DROP_MARK = '0x8000/0x8000';
const c = (text: string) => `-m comment --comment "${text}"`;

/**
 * The pod CIDR of `family` in a clusterCIDR setting (one CIDR, or kube-proxy's dual-stack
 * "v4,v6" pair), canonical as the save tools print it; '' when it has none of that family.
 */
export function clusterCidrOf(clusterCIDR: string, family: IpFamily): string {
  for (const part of clusterCIDR.split(',')) {
    const cidr = parseCidr(part);
    if (cidr?.family === family) return cidr.text;
  }
  return '';
}

/** The glue of each of `families`, in one (their table keys differ). */
export function netfilterGlue(
  settings: Pick<NodeProxySettings, 'masqueradeAll' | 'clusterCIDR'>,
  families: readonly IpFamily[],
): NetfilterGlue {
  const parts = families.map((f) => familyGlue(settings, f));
  return {
    chains: Object.assign({}, ...parts.map((p) => p.chains)),
    jumps: Object.assign({}, ...parts.map((p) => p.jumps)),
  };
}

function familyGlue(
  settings: Pick<NodeProxySettings, 'masqueradeAll' | 'clusterCIDR'>,
  family: IpFamily,
): NetfilterGlue {
  const set = (base: IpsetBaseName, dirs: string) => `-m set --match-set ${ipsetName(base, family)} ${dirs}`;
  const clusterCIDR = clusterCidrOf(settings.clusterCIDR, family);
  const services: string[] = [];
  if (settings.masqueradeAll) {
    services.push(
      `${c('Kubernetes service cluster ip + port for masquerade purpose')} ${set('KUBE-CLUSTER-IP', 'dst,dst')} -j KUBE-MARK-MASQ`,
    );
  } else if (clusterCIDR !== '') {
    services.push(
      `! -s ${clusterCIDR} ${c('Kubernetes service cluster ip + port for masquerade purpose')} ${set('KUBE-CLUSTER-IP', 'dst,dst')} -j KUBE-MARK-MASQ`,
    );
  }
  services.push(
    `${c('Kubernetes service external ip + port for masquerade and filter purpose')} ${set('KUBE-EXTERNAL-IP', 'dst,dst')} -j KUBE-MARK-MASQ`,
    `${c('Kubernetes service load balancer ip + port for load balancer with sourceRange')} ${set('KUBE-LOAD-BALANCER', 'dst,dst')} -j KUBE-LOAD-BALANCER`,
    `${c('kubernetes service nodeports; NOTE: this must be the last rule in this chain')} -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT`,
    `${set('KUBE-CLUSTER-IP', 'dst,dst')} -j ACCEPT`,
    `${set('KUBE-LOAD-BALANCER', 'dst,dst')} -j ACCEPT`,
  );
  const nodePort: string[] = [];
  for (const p of ['TCP', 'UDP'] as const) {
    nodePort.push(`-p ${p.toLowerCase()} ${set(nodePortSetBase(p, true), 'dst')} -j RETURN`);
    nodePort.push(`-p ${p.toLowerCase()} ${set(nodePortSetBase(p, false), 'dst')} -j KUBE-MARK-MASQ`);
  }
  nodePort.push(`-p sctp ${set(nodePortSetBase('SCTP', true), 'dst,dst')} -j RETURN`);
  nodePort.push(`-p sctp ${set(nodePortSetBase('SCTP', false), 'dst,dst')} -j KUBE-MARK-MASQ`);

  const nat = tableKey(family, 'nat');
  const filter = tableKey(family, 'filter');
  return {
    chains: {
      [nat]: {
        'KUBE-SERVICES': services,
        'KUBE-NODE-PORT': nodePort,
        'KUBE-LOAD-BALANCER': [
          `${set('KUBE-LOAD-BALANCER-FW', 'dst,dst')} -j KUBE-FIREWALL`,
          `${set('KUBE-LOAD-BALANCER-LOCAL', 'dst,dst')} -j RETURN`,
          '-j KUBE-MARK-MASQ',
        ],
        'KUBE-FIREWALL': [
          `${set('KUBE-LOAD-BALANCER-SOURCE-CIDR', 'dst,dst,src')} -j RETURN`,
          `${set('KUBE-LOAD-BALANCER-SOURCE-IP', 'dst,dst,src')} -j RETURN`,
          `-j MARK --set-xmark ${DROP_MARK}`,
        ],
        'KUBE-MARK-MASQ': [`-j MARK --set-xmark ${MASQ_MARK}`],
        'KUBE-POSTROUTING': [
          `${c('Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose')} ${set('KUBE-LOOP-BACK', 'dst,dst,src')} -j MASQUERADE`,
          `-m mark ! --mark ${MASQ_MARK} -j RETURN`,
          '-j MARK --set-xmark 0x4000/0x0',
          `${c('kubernetes service traffic requiring SNAT')} -j MASQUERADE`,
        ],
      },
      [filter]: {
        'KUBE-FORWARD': [
          `${c('kubernetes forwarding rules')} -m mark --mark ${MASQ_MARK} -j ACCEPT`,
          `${c('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
        ],
        'KUBE-PROXY-FIREWALL': [`${c('load balancer source range not allowed')} -m mark --mark ${DROP_MARK} -j DROP`],
        // Traffic to addresses bound to kube-ipvs0 that no service port serves must not reach
        // host sockets listening on those addresses.
        'KUBE-IPVS-FILTER': [
          `${set('KUBE-LOAD-BALANCER', 'dst,dst')} -j RETURN`,
          `${set('KUBE-CLUSTER-IP', 'dst,dst')} -j RETURN`,
          `${set('KUBE-EXTERNAL-IP', 'dst,dst')} -j RETURN`,
          `${set('KUBE-EXTERNAL-IP-LOCAL', 'dst,dst')} -j RETURN`,
          `${set('KUBE-HEALTH-CHECK-NODE-PORT', 'dst')} -j RETURN`,
          // Refused, not dropped (kube-proxy REJECTs here): a client of a port no service serves
          // (a port changed or removed, a typo) fails at once instead of timing out. TCP gets a
          // reset, which the kernel does not rate-limit; the rest ICMP port unreachable, which it
          // does (net.ipv4.icmp_ratelimit: about 1 per second per client after a burst of 6).
          `-p tcp -m conntrack --ctstate NEW ${set('KUBE-IPVS-IPS', 'dst')} -j REJECT --reject-with tcp-reset`,
          `-m conntrack --ctstate NEW ${set('KUBE-IPVS-IPS', 'dst')} -j REJECT --reject-with ${family === 'IPv4' ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`,
        ],
      },
    },
    jumps: {
      [nat]: {
        PREROUTING: [`${c('kubernetes service portals')} -j KUBE-SERVICES`],
        OUTPUT: [`${c('kubernetes service portals')} -j KUBE-SERVICES`],
        POSTROUTING: [`${c('kubernetes postrouting rules')} -j KUBE-POSTROUTING`],
      },
      [filter]: {
        INPUT: [
          `${c('kubernetes ipvs access filter')} -j KUBE-IPVS-FILTER`,
          `${c('kube-proxy firewall rules')} -j KUBE-PROXY-FIREWALL`,
        ],
        FORWARD: [`${c('kubernetes forwarding rules')} -j KUBE-FORWARD`],
      },
    },
  };
}

/** Chain names per table, for the ownership record and the reader. */
export function glueChains(glue: NetfilterGlue): Record<string, string[]> {
  return Object.fromEntries(Object.entries(glue.chains).map(([t, chains]) => [t, Object.keys(chains)]));
}

/**
 * Extracts from `iptables-save` text the rules of `ours` chains and every rule of another chain
 * that jumps into one of them. Returns table → chain → lines (without "-A CHAIN "). Of the rules
 * outside our chains, planNetfilter manages only those in the built-in chains; the others belong
 * to other programs and only keep the chain they jump to from being deleted.
 */
export function parseIptablesSave(
  text: string,
  ours: Readonly<Record<string, readonly string[]>>,
): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      continue;
    }
    const mine = new Set(ours[table] ?? []);
    if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0]!;
      if (mine.has(chain)) (out[table] ??= {})[chain] ??= [];
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const sp = line.indexOf(' ', 3);
    const chain = line.slice(3, sp);
    const rule = line.slice(sp + 1);
    const target = jumpTarget(rule);
    if (mine.has(chain) || (target !== undefined && mine.has(target))) ((out[table] ??= {})[chain] ??= []).push(rule);
  }
  return out;
}

/** The chain a rule line jumps (-j) or goes (-g) to, if any. */
export function jumpTarget(rule: string): string | undefined {
  return /-[jg] (\S+)$/.exec(rule)?.[1];
}

/** Names of the ipsets the glue's rules match on (iptables refuses a rule whose set is missing). */
export function glueSetNames(glue: NetfilterGlue): string[] {
  const names = new Set<string>();
  for (const chains of Object.values(glue.chains)) {
    for (const rules of Object.values(chains))
      for (const r of rules) for (const m of r.matchAll(/--match-set (\S+)/g)) names.add(m[1]!);
  }
  return [...names].sort();
}

/** Every kube-proxy set name of both families, with its type and family. */
const SET_INFO = new Map<string, { readonly type: IpsetType; readonly family: IpFamily }>(
  (['IPv4', 'IPv6'] as const).flatMap((family) =>
    IPSET_TABLE.map(([base, type]) => [ipsetName(base, family), { type, family }] as const),
  ),
);

/**
 * The state plus an empty set for every set the glue references but the state lacks (a state
 * rendered for a subset of families or by an older planner), so the rules always load.
 */
export function withGlueSets(state: NodeState, glue: NetfilterGlue | undefined): NodeState {
  if (!glue) return state;
  const have = new Set(state.ipsets.map((s) => s.name));
  const extra: IpsetState[] = [];
  for (const name of glueSetNames(glue)) {
    const info = SET_INFO.get(name);
    if (have.has(name) || !info) continue;
    const { type } = info;
    const family = info.family === 'IPv4' ? ('inet' as const) : ('inet6' as const);
    extra.push({ name, type, ...(type === 'bitmap:port' ? {} : { family }), entries: [] });
  }
  if (extra.length === 0) return state;
  return { ...state, ipsets: [...state.ipsets, ...extra].sort((a, b) => byCodeUnit(a.name, b.name)) };
}

/** Whether `name` is one of kube-proxy's IPv6 sets (KUBE-6-*). */
export function isIPv6Set(name: string): boolean {
  return SET_INFO.get(name)?.family === 'IPv6';
}

/**
 * The families whose glue a state needs: IPv4 always, IPv6 when the state has the KUBE-6-* sets,
 * which the renderer emits exactly when the node has IPv6 services (a change of the list of sets
 * is a full cycle, so the IPv6 half comes and goes with them, not on every IPv4-only node).
 */
export function glueFamilies(state: NodeState): IpFamily[] {
  return state.ipsets.some((s) => isIPv6Set(s.name)) ? ['IPv4', 'IPv6'] : ['IPv4'];
}

/**
 * The state without its IPv6 part (services, addresses, KUBE-6-* sets): what a node whose IPv6
 * netfilter cannot be programmed serves. Unchanged objects are shared, as the renderer does.
 */
export function withoutIPv6(state: NodeState): { state: NodeState; left: number } {
  const virtualServers = state.virtualServers.filter((v) => ipFamily(v.address) === 'IPv4');
  const left = state.virtualServers.length - virtualServers.length;
  return {
    state: {
      ...state,
      virtualServers,
      boundAddresses: state.boundAddresses.filter((a) => ipFamily(a) === 'IPv4'),
      ipsets: state.ipsets.filter((s) => !isIPv6Set(s.name)),
    },
    left,
  };
}

/**
 * Reads the observation of `ours` (table key → our chain names): each table's save text, from
 * the family's save tool (`save`), parsed with parseIptablesSave. Keyed by table key.
 */
export async function observeNetfilter(
  ours: Readonly<Record<string, readonly string[]>>,
  save: (family: IpFamily, table: string) => Promise<string> | string,
): Promise<Record<string, Record<string, string[]>>> {
  const out: Record<string, Record<string, string[]>> = {};
  for (const [key, chains] of Object.entries(ours)) {
    const { family, table } = splitTableKey(key);
    const parsed = parseIptablesSave(await save(family, table), { [table]: chains })[table];
    if (parsed) out[key] = parsed;
  }
  return out;
}
