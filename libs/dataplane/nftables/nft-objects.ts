import { ipFamily, type NodeState, type RealServer, type VirtualServer } from '../../model/index.ts';
import { nftObjectName } from './nft-names.ts';

/**
 * The part of our nftables table that depends on the node's state: per-service chains, affinity
 * sets and the elements of the dispatch maps. The fixed skeleton (base chains, maps, helpers)
 * lives in nft-skeleton.ts. Each chain is identified by name and its content is the list of rule
 * texts, so two NftObjects can be diffed chain by chain and element by element.
 */
export interface NftObjects {
  /** Chain name → rules (nft syntax, without `add rule ...`). */
  readonly chains: ReadonlyMap<string, readonly string[]>;
  /**
   * Per-group set or map name → declaration body: affinity sets
   * (`type ipv4_addr; flags dynamic,timeout; timeout 10800s;`) and endpoint maps
   * (ENDPOINT_MAP_DECL; a `:` in the body makes it a map).
   */
  readonly sets: ReadonlyMap<string, string>;
  /**
   * Set or map name → element key → value, for every set whose elements we own (all but the
   * affinity sets, whose entries the packet path learns): the dispatch maps
   * (`10.0.0.1 . tcp . 80` → `goto service-...`), the endpoint maps (`0-21845` →
   * `10.1.0.1 . 8080`) and the hairpin sets (`10.1.0.1 . 10.1.0.1` → '': a set has no value).
   */
  readonly elements: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /**
   * How many groups need each element of a SHARED_SETS set (two services with the same pod
   * share its hairpin entry): a sliced apply removes an entry only when no group needs it.
   */
  readonly shared: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

/**
 * Hairpin sets: `ip saddr . ip daddr` of every endpoint address (EP . EP), matched in nat
 * postrouting for DNATed connections, so a pod that reaches itself through a service is
 * masqueraded (its reply must come back through the node). Shared by all groups.
 */
export const SHARED_SETS = ['hairpin', 'hairpin6'] as const;

/**
 * Endpoint maps (groups without session affinity): `numgen random mod 65536` → endpoint
 * address . port, 0..65535 split into one interval per endpoint. An endpoint change is then a
 * change of map elements that hold data, not verdicts: nf_tables re-validates the table's whole
 * jump graph at commit when a batch adds a jump/goto or a rule with a validating expression,
 * and skips that for data elements (138 ms against a few ms at 10k services).
 */
export const ENDPOINT_SLOTS = 65536;
// The data part names the group's protocol (`tcp dport`, not `th dport`): nft refuses to add a
// `meta l4proto tcp dnat … map @m` rule to a map typed `th dport` that it reads from the kernel.
export const endpointMapDecl = (v6: boolean, proto: string): string =>
  `typeof numgen random mod ${ENDPOINT_SLOTS} : ${v6 ? 'ip6' : 'ip'} daddr . ${proto} dport; flags interval;`;
export const isMapDecl = (decl: string): boolean => decl.includes(' : ');
/** Endpoint maps are named `endpoints-…` (nftObjectName), so a name says which kind of set it is. */
export const isEndpointMap = (name: string): boolean => name.startsWith('endpoints-');
/** Sets whose entries the packet path learns (`update @affinity-…`): their elements are never compared. */
export const isLearnedSet = (name: string): boolean => name.startsWith('affinity-');

/** An endpoint map's key for slots a..b (nft prints a one-slot range as its number). */
export const slotRangeText = (a: number, b: number): string => (a === b ? String(a) : `${a}-${b}`);

/** Slot range of endpoint i of n: 0..65535 split into n near-equal intervals, in order. */
export function slotRange(i: number, n: number): [number, number] {
  return [Math.floor((i * ENDPOINT_SLOTS) / n), Math.floor(((i + 1) * ENDPOINT_SLOTS) / n) - 1];
}

/** Dispatch maps of the skeleton; each has an IPv4 and an IPv6 flavour. */
export const DISPATCH_MAPS = ['service-ips', 'firewall-ips', 'no-endpoint-services'] as const;
export type DispatchMap = (typeof DISPATCH_MAPS)[number];

export function mapName(map: DispatchMap, v6: boolean): string {
  return v6 ? `${map}6` : map;
}

interface Family {
  v6: boolean;
  ip: 'ip' | 'ip6';
  addrType: 'ipv4_addr' | 'ipv6_addr';
}

function familyOf(address: string): Family {
  const v6 = ipFamily(address) === 'IPv6';
  return { v6, ip: v6 ? 'ip6' : 'ip', addrType: v6 ? 'ipv6_addr' : 'ipv4_addr' };
}

/** Virtual servers that share one endpoint list: same service port, family and traffic policy. */
interface Group {
  key: string;
  readable: string;
  fam: Family;
  proto: string;
  persistence: number;
  /** The endpoints of the group's policy: this node's for a Local group (none: drop). */
  realServers: readonly RealServer[];
  /**
   * A Local group's cluster-wide endpoints, for traffic from pods and from the node itself to
   * its external addresses (kube-proxy's short-circuit); the same array as realServers when
   * they are equal.
   */
  clusterServers: readonly RealServer[];
  members: VirtualServer[];
}

/** Virtual servers with the same key share one endpoint list and their chains (see Group). */
export function groupKey(vs: VirtualServer): string {
  return `${ipFamily(vs.address)}|${vs.protocol}|${vs.servicePort}|${vs.localOnly ? 'local' : 'cluster'}`;
}

function groups(state: NodeState): Group[] {
  const byKey = new Map<string, Group>();
  for (const vs of state.virtualServers) {
    const key = groupKey(vs);
    let g = byKey.get(key);
    if (!g) {
      const proto = vs.protocol.toLowerCase();
      const readable = `${vs.servicePort.replace(':', '/')}/${proto}${vs.localOnly ? '/local' : ''}`;
      // The renderer selects one endpoint list per (service port, family, policy); the first
      // member's list stands for the group (all members carry the same one; of a Local group's
      // cluster-wide list, see below, every external member carries the same one).
      const realServers = (vs.localRealServers ?? vs.realServers).filter((r) => r.weight > 0);
      g = {
        key,
        readable,
        fam: familyOf(vs.address),
        proto,
        persistence: vs.persistenceTimeout,
        realServers,
        clusterServers: vs.localRealServers ? vs.realServers.filter((r) => r.weight > 0) : realServers,
        members: [],
      };
      byKey.set(key, g);
    }
    g.members.push(vs);
    if (vs.clusterRealServers) g.clusterServers = vs.clusterRealServers.filter((r) => r.weight > 0);
  }
  return [...byKey.values()];
}

function elementKey(vs: VirtualServer): string {
  return `${vs.address} . ${vs.protocol.toLowerCase()} . ${vs.port}`;
}

function dnatTarget(fam: Family, rs: RealServer): string {
  return fam.v6 ? `[${rs.address}]:${rs.port}` : `${rs.address}:${rs.port}`;
}

/**
 * Renders the state-dependent objects with the same semantics as ipvs mode, structured after
 * kube-proxy's nftables mode: `service-ips` → (external chain →) service chain → DNAT through
 * the group's endpoint map (with session affinity: numgen vmap → endpoint chain → DNAT). Pure.
 */
export function renderNftObjects(state: NodeState): NftObjects {
  const chains = new Map<string, string[]>();
  const sets = new Map<string, string>();
  const elements = new Map<string, Map<string, string>>();
  for (const m of DISPATCH_MAPS) for (const v6 of [false, true]) elements.set(mapName(m, v6), new Map());
  const shared = new Map<string, Map<string, number>>();
  for (const s of SHARED_SETS) {
    elements.set(s, new Map());
    shared.set(s, new Map());
  }
  const element = (map: DispatchMap, fam: Family, vs: VirtualServer, verdict: string) =>
    elements.get(mapName(map, fam.v6))!.set(elementKey(vs), verdict);
  const { masqueradeAll, clusterCIDR } = state.settings;
  const cidrFamilyOk = (fam: Family) =>
    clusterCIDR !== '' && (ipFamily(clusterCIDR.split('/')[0]!) === 'IPv6') === fam.v6;

  /**
   * The DNAT rules of one endpoint list (`key`/`readable` name its objects): with no affinity
   * through an endpoint map, so endpoint changes are elements; with session affinity, kube-proxy's
   * shape (a learned set and a chain per endpoint, checked before a numgen verdict map), whose
   * endpoint changes add jumps and pay nf_tables' table-wide validation.
   */
  const dnat = (g: Group, key: string, readable: string, servers: readonly RealServer[]): string[] => {
    const { fam, proto } = g;
    if (g.persistence === 0) {
      if (servers.length > ENDPOINT_SLOTS)
        throw new Error(`${readable}: ${servers.length} endpoints, more than ${ENDPOINT_SLOTS} slots`);
      const map = nftObjectName('endpoints', key, readable);
      sets.set(map, endpointMapDecl(fam.v6, proto));
      const slots = new Map<string, string>();
      servers.forEach((rs, i) => {
        slots.set(slotRangeText(...slotRange(i, servers.length)), `${rs.address} . ${rs.port}`);
      });
      elements.set(map, slots);
      return [`meta l4proto ${proto} dnat ${fam.ip} to numgen random mod ${ENDPOINT_SLOTS} map @${map}`];
    }
    const rules: string[] = [];
    const endpointChains: string[] = [];
    for (const rs of servers) {
      const epKey = `${key}|${rs.address}|${rs.port}`;
      const epReadable = `${readable}__${rs.address}/${rs.port}`;
      const ep = nftObjectName('endpoint', epKey, epReadable);
      endpointChains.push(ep);
      // The timeout is part of the name: a changed timeout makes a new set (sets cannot be
      // re-declared in place), swapped in by the same transaction that refills the chains.
      const aff = nftObjectName('affinity', `${epKey}|${g.persistence}`, epReadable);
      sets.set(aff, `type ${fam.addrType}; flags dynamic,timeout; timeout ${g.persistence}s;`);
      rules.push(`${fam.ip} saddr @${aff} goto ${ep}`);
      chains.set(ep, [
        `update @${aff} { ${fam.ip} saddr }`,
        `meta l4proto ${proto} dnat ${fam.ip} to ${dnatTarget(fam, rs)}`,
      ]);
    }
    rules.push(
      `numgen random mod ${endpointChains.length} vmap { ${endpointChains.map((c, i) => `${i} : goto ${c}`).join(', ')} }`,
    );
    return rules;
  };

  for (const g of groups(state)) {
    const { fam, proto } = g;
    const external = g.members.filter((m) => m.role !== 'cluster-ip');
    for (const vs of g.members.filter((m) => m.sourceRanges.length > 0 && m.role === 'load-balancer')) {
      const fw = nftObjectName('firewall', `${g.key}|${vs.address}|${vs.port}`, `${g.readable}/${vs.address}`);
      chains.set(fw, [`${fam.ip} saddr != { ${vs.sourceRanges.join(', ')} } drop`]);
      element('firewall-ips', fam, vs, `goto ${fw}`);
    }
    if (g.clusterServers.length === 0) {
      // No endpoints anywhere: reject new connections, as kube-proxy does for every address.
      for (const vs of g.members) element('no-endpoint-services', fam, vs, 'goto reject-chain');
      continue;
    }
    // Endpoints elsewhere but none here (Local policy): what is not short-circuited below, and
    // so not DNATed, is dropped (kube-proxy: "traffic ... will be dropped").
    if (g.realServers.length === 0) for (const vs of g.members) element('no-endpoint-services', fam, vs, 'drop');
    // Hairpin: one EP . EP entry per endpoint address, counted once per group that needs it.
    const hairpin = fam.v6 ? 'hairpin6' : 'hairpin';
    for (const a of new Set([...g.realServers, ...g.clusterServers].map((r) => r.address))) {
      const k = `${a} . ${a}`;
      elements.get(hairpin)!.set(k, '');
      const counts = shared.get(hairpin)!;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    let svcChain: string | undefined;
    if (g.realServers.length > 0) {
      svcChain = nftObjectName('service', g.key, g.readable);
      const rules: string[] = [];
      for (const vs of g.members.filter((m) => m.role === 'cluster-ip')) {
        const match = `${fam.ip} daddr ${vs.address} ${proto} dport ${vs.port}`;
        if (masqueradeAll) rules.push(`${match} jump mark-for-masquerade`);
        else if (cidrFamilyOk(fam)) rules.push(`${match} ${fam.ip} saddr != ${clusterCIDR} jump mark-for-masquerade`);
        element('service-ips', fam, vs, `goto ${svcChain}`);
      }
      chains.set(svcChain, [...rules, ...dnat(g, g.key, g.readable, g.realServers)]);
    }
    if (external.length === 0) continue;
    const ext = nftObjectName('external', g.key, g.readable);
    const extRules: string[] = [];
    if (!g.members[0]!.localOnly) {
      // Cluster policy: masquerade so replies come back through this node.
      extRules.push('jump mark-for-masquerade', `goto ${svcChain}`);
    } else {
      // Local policy keeps the client address for traffic from outside, which goes to this
      // node's endpoints only. Traffic from pods and from the node itself goes to the
      // cluster-wide endpoints (kube-proxy's "short-circuit pod/local traffic"); the node's own
      // needs masquerading (its source is a local address, possibly the VIP itself).
      let cluster = svcChain;
      if (g.clusterServers !== g.realServers) {
        const key = `${g.key}|short-circuit`;
        const readable = `${g.readable}/cluster`;
        cluster = nftObjectName('service', key, readable);
        chains.set(cluster, dnat(g, key, readable, g.clusterServers));
      }
      extRules.push(masqueradeAll ? 'jump mark-for-masquerade' : 'fib saddr type local jump mark-for-masquerade');
      if (cluster !== svcChain) {
        if (cidrFamilyOk(fam)) extRules.push(`${fam.ip} saddr ${clusterCIDR} goto ${cluster}`);
        extRules.push(`fib saddr type local goto ${cluster}`);
      }
      if (svcChain) extRules.push(`goto ${svcChain}`);
    }
    chains.set(ext, extRules);
    for (const vs of external) element('service-ips', fam, vs, `goto ${ext}`);
  }
  return { chains, sets, elements, shared };
}
