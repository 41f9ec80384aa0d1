import {
  byCodeUnit,
  type IpsetState,
  type IpsetType,
  type NodeProxySettings,
  type NodeState,
} from '../../model/index.ts';
import { IPSET_TABLE } from '../../planner/index.ts';

/**
 * The fixed netfilter rule set of kube-proxy's ipvs mode (IPv4), in the exact text `iptables-save`
 * prints, so read-back compares lines. Per-service data lives in the ipsets; these rules only
 * change with the proxy settings (masqueradeAll, clusterCIDR). Applied with
 * `iptables-restore --noflush`: only our chains are declared (and so flushed), built-in chains
 * get just our jump rules, and foreign rules are never touched.
 */
export interface NetfilterGlue {
  /** table → our chain → rule lines (without "-A CHAIN "). */
  readonly chains: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
  /** table → built-in chain → our jump lines, in order, inserted at the top. */
  readonly jumps: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
}

const MASQ_MARK = '0x4000/0x4000';
const DROP_MARK = '0x8000/0x8000';
const c = (text: string) => `-m comment --comment "${text}"`;
const set = (name: string, dirs: string) => `-m set --match-set ${name} ${dirs}`;

export function netfilterGlue(settings: Pick<NodeProxySettings, 'masqueradeAll' | 'clusterCIDR'>): NetfilterGlue {
  const services: string[] = [];
  if (settings.masqueradeAll) {
    services.push(
      `${c('Kubernetes service cluster ip + port for masquerade purpose')} ${set('KUBE-CLUSTER-IP', 'dst,dst')} -j KUBE-MARK-MASQ`,
    );
  } else if (settings.clusterCIDR !== '') {
    services.push(
      `! -s ${settings.clusterCIDR} ${c('Kubernetes service cluster ip + port for masquerade purpose')} ${set('KUBE-CLUSTER-IP', 'dst,dst')} -j KUBE-MARK-MASQ`,
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
  for (const p of ['tcp', 'udp'] as const) {
    const P = p.toUpperCase();
    nodePort.push(`-p ${p} ${set(`KUBE-NODE-PORT-LOCAL-${P}`, 'dst')} -j RETURN`);
    nodePort.push(`-p ${p} ${set(`KUBE-NODE-PORT-${P}`, 'dst')} -j KUBE-MARK-MASQ`);
  }
  nodePort.push(`-p sctp ${set('KUBE-NODE-PORT-LOCAL-SCTP-HASH', 'dst,dst')} -j RETURN`);
  nodePort.push(`-p sctp ${set('KUBE-NODE-PORT-SCTP-HASH', 'dst,dst')} -j KUBE-MARK-MASQ`);

  return {
    chains: {
      nat: {
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
      filter: {
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
          `-m conntrack --ctstate NEW ${set('KUBE-IPVS-IPS', 'dst')} -j DROP`,
        ],
      },
    },
    jumps: {
      nat: {
        PREROUTING: [`${c('kubernetes service portals')} -j KUBE-SERVICES`],
        OUTPUT: [`${c('kubernetes service portals')} -j KUBE-SERVICES`],
        POSTROUTING: [`${c('kubernetes postrouting rules')} -j KUBE-POSTROUTING`],
      },
      filter: {
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
 * Extracts from `iptables-save` text the rules of `ours` chains and the jumps into them from
 * built-in chains. Returns table → chain → lines (without "-A CHAIN ").
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
    const target = /-j (\S+)$/.exec(rule)?.[1];
    if (mine.has(chain) || (target !== undefined && mine.has(target))) ((out[table] ??= {})[chain] ??= []).push(rule);
  }
  return out;
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

/**
 * The state plus an empty set for every set the glue references but the state lacks (a state
 * rendered for a subset of families or by an older planner), so the rules always load.
 */
export function withGlueSets(state: NodeState, glue: NetfilterGlue | undefined): NodeState {
  if (!glue) return state;
  const have = new Set(state.ipsets.map((s) => s.name));
  const types = new Map<string, IpsetType>(IPSET_TABLE.map(([n, t]) => [n, t]));
  const extra: IpsetState[] = [];
  for (const name of glueSetNames(glue)) {
    const type = types.get(name);
    if (have.has(name) || !type) continue;
    extra.push({ name, type, ...(type === 'bitmap:port' ? {} : { family: 'inet' as const }), entries: [] });
  }
  if (extra.length === 0) return state;
  return { ...state, ipsets: [...state.ipsets, ...extra].sort((a, b) => byCodeUnit(a.name, b.name)) };
}
