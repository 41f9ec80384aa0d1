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
  /** Set name → declaration body (`type ipv4_addr; flags dynamic,timeout; timeout 10800s;`). */
  readonly sets: ReadonlyMap<string, string>;
  /** Map name → element key (`10.0.0.1 . tcp . 80`) → verdict (`goto service-...`, `drop`). */
  readonly elements: ReadonlyMap<string, ReadonlyMap<string, string>>;
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
  realServers: readonly RealServer[];
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
      // member's list stands for the group (all members carry the same one).
      g = {
        key,
        readable,
        fam: familyOf(vs.address),
        proto,
        persistence: vs.persistenceTimeout,
        realServers: vs.realServers.filter((r) => r.weight > 0),
        members: [],
      };
      byKey.set(key, g);
    }
    g.members.push(vs);
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
 * Renders the state-dependent objects with the same semantics as ipvs mode, structured as
 * kube-proxy's nftables mode: `service-ips` → (external chain →) service chain → numgen vmap →
 * endpoint chain → DNAT. Pure.
 */
export function renderNftObjects(state: NodeState): NftObjects {
  const chains = new Map<string, string[]>();
  const sets = new Map<string, string>();
  const elements = new Map<string, Map<string, string>>();
  for (const m of DISPATCH_MAPS) for (const v6 of [false, true]) elements.set(mapName(m, v6), new Map());
  const element = (map: DispatchMap, fam: Family, vs: VirtualServer, verdict: string) =>
    elements.get(mapName(map, fam.v6))!.set(elementKey(vs), verdict);
  const { masqueradeAll, clusterCIDR } = state.settings;
  const cidrFamilyOk = (fam: Family) =>
    clusterCIDR !== '' && (ipFamily(clusterCIDR.split('/')[0]!) === 'IPv6') === fam.v6;

  for (const g of groups(state)) {
    const { fam, proto } = g;
    const external = g.members.filter((m) => m.role !== 'cluster-ip');
    for (const vs of g.members.filter((m) => m.sourceRanges.length > 0 && m.role === 'load-balancer')) {
      const fw = nftObjectName('firewall', `${g.key}|${vs.address}|${vs.port}`, `${g.readable}/${vs.address}`);
      chains.set(fw, [`${fam.ip} saddr != { ${vs.sourceRanges.join(', ')} } drop`]);
      element('firewall-ips', fam, vs, `goto ${fw}`);
    }
    if (g.realServers.length === 0) {
      // Like kube-proxy: no endpoints → reject new connections; externally reached Local
      // services without a local endpoint → drop, so a load balancer's health check moves on.
      for (const vs of g.members)
        element(
          'no-endpoint-services',
          fam,
          vs,
          vs.role !== 'cluster-ip' && vs.localOnly ? 'drop' : 'goto reject-chain',
        );
      continue;
    }
    const svcChain = nftObjectName('service', g.key, g.readable);
    const rules: string[] = [];
    for (const vs of g.members.filter((m) => m.role === 'cluster-ip')) {
      const match = `${fam.ip} daddr ${vs.address} ${proto} dport ${vs.port}`;
      if (masqueradeAll) rules.push(`${match} jump mark-for-masquerade`);
      else if (cidrFamilyOk(fam)) rules.push(`${match} ${fam.ip} saddr != ${clusterCIDR} jump mark-for-masquerade`);
      element('service-ips', fam, vs, `goto ${svcChain}`);
    }
    const endpointChains: string[] = [];
    for (const rs of g.realServers) {
      const key = `${g.key}|${rs.address}|${rs.port}`;
      const readable = `${g.readable}__${rs.address}/${rs.port}`;
      const ep = nftObjectName('endpoint', key, readable);
      endpointChains.push(ep);
      const epRules = [`${fam.ip} saddr ${rs.address} jump mark-for-masquerade`]; // hairpin
      if (g.persistence > 0) {
        // The timeout is part of the name: a changed timeout makes a new set (sets cannot be
        // re-declared in place), swapped in by the same transaction that refills the chains.
        const aff = nftObjectName('affinity', `${key}|${g.persistence}`, readable);
        sets.set(aff, `type ${fam.addrType}; flags dynamic,timeout; timeout ${g.persistence}s;`);
        rules.push(`${fam.ip} saddr @${aff} goto ${ep}`);
        epRules.push(`update @${aff} { ${fam.ip} saddr }`);
      }
      epRules.push(`meta l4proto ${proto} dnat ${fam.ip} to ${dnatTarget(fam, rs)}`);
      chains.set(ep, epRules);
    }
    rules.push(
      `numgen random mod ${endpointChains.length} vmap { ${endpointChains.map((c, i) => `${i} : goto ${c}`).join(', ')} }`,
    );
    chains.set(svcChain, rules);
    if (external.length > 0) {
      const ext = nftObjectName('external', g.key, g.readable);
      // Cluster policy: masquerade so replies come back through this node. Local policy keeps
      // the client address, except for traffic from the node itself (it needs a routable source).
      chains.set(ext, [
        g.members[0]!.localOnly && !masqueradeAll
          ? 'fib saddr type local jump mark-for-masquerade'
          : 'jump mark-for-masquerade',
        `goto ${svcChain}`,
      ]);
      for (const vs of external) element('service-ips', fam, vs, `goto ${ext}`);
    }
  }
  return { chains, sets, elements };
}
