import {
  byCodeUnit,
  cidrContains,
  DEFAULT_PROXY_CONFIG,
  ipFamily,
  parseCidr,
  virtualServerKey,
  type Cidr,
  type EndpointEntry,
  type IpFamily,
  type IpsetState,
  type NodeFacts,
  type NodeState,
  type Protocol,
  type ProxyConfig,
  type RealServer,
  type Rejection,
  type ServiceEntry,
  type VirtualServer,
  type VirtualServerRole,
} from '../model/index.ts';
import type { ClusterDataSource } from './cluster-data-index.ts';
import {
  IPSET_TABLE,
  ipPortEntry,
  ipPortNetEntry,
  ipsetName,
  nodePortSetBase,
  type IpsetBaseName,
} from './ipset-names.ts';
import { selectEndpoints, type EndpointSelection } from './select-endpoints.ts';

/** What one service contributes to a node's state; merged by renderNodeState. */
export interface ServiceContribution {
  readonly virtualServers: VirtualServer[];
  readonly boundAddresses: string[];
  /** [set name, entry] pairs. */
  readonly ipsetEntries: [string, string][];
}

export interface RenderContext {
  readonly nodeName: string;
  readonly node: NodeFacts | undefined;
  readonly config: ProxyConfig;
  /** Node addresses NodePorts are served on (after the nodePortAddresses filter). */
  readonly nodePortIPs: readonly string[];
  /** Every node's addresses (ClusterDataSource.nodeAddressOwners): not for a Service's externalIPs. */
  readonly nodeAddresses: ReadonlyMap<string, readonly string[]>;
}

/** A context for no node in particular: no NodePorts, no own addresses, no endpoints here. */
export function neutralContext(
  config: ProxyConfig,
  nodeAddresses: ReadonlyMap<string, readonly string[]> = new Map(),
): RenderContext {
  return { nodeName: '', node: undefined, config, nodePortIPs: [], nodeAddresses };
}

export function renderContext(data: ClusterDataSource, nodeName: string, config: ProxyConfig): RenderContext {
  const node = data.node(nodeName);
  const filters = config.nodePortAddresses.map((c) => parseCidr(c)).filter((c): c is Cidr => !!c);
  const nodePortIPs = (node?.addresses ?? []).filter(
    (a) => filters.length === 0 || filters.some((c) => cidrContains(c, a)),
  );
  return { nodeName, node, config, nodePortIPs, nodeAddresses: data.nodeAddressOwners() };
}

/**
 * Renders everything one node must program from cluster data and proxy config, with kube-proxy's
 * ipvs-mode semantics. Pure: same inputs, same (canonically ordered) output.
 */
export function renderNodeState(data: ClusterDataSource, nodeName: string, config: ProxyConfig): NodeState {
  const ctx = renderContext(data, nodeName, config);
  return mergeContributions(
    ctx,
    [...data.services()].map((s) => renderServiceForNode(s, ctx)),
  );
}

/**
 * Which claim on one protocol/VIP:port wins when two service ports claim it (review3 K1): by role
 * first — the ClusterIP the allocator gave a service, then an address a load balancer controller
 * published, then a spec.externalIPs entry (any user who may create a Service can write one:
 * CVE-2020-8554), then a NodePort — and only among equal roles by "namespace/name:port" in code-unit
 * order, so a tenant can never take over another service's ClusterIP (cluster DNS) by listing it.
 * Negative: `a` wins. The one rule for the full merge, the incremental renderer and vipConflicts.
 */
export function claimOrder(
  a: Pick<VipClaim, 'role' | 'servicePort'>,
  b: Pick<VipClaim, 'role' | 'servicePort'>,
): number {
  return ROLE_RANK[a.role] - ROLE_RANK[b.role] || byCodeUnit(a.servicePort, b.servicePort);
}

const ROLE_RANK: Readonly<Record<VirtualServerRole, number>> = {
  'cluster-ip': 0,
  'load-balancer': 1,
  'external-ip': 2,
  'node-port': 3,
};

export function mergeContributions(ctx: RenderContext, parts: Iterable<ServiceContribution>): NodeState {
  const vsByKey = new Map<string, VirtualServer>();
  const bound = new Set<string>();
  const families = new Set<IpFamily>(['IPv4']);
  const sets = new Map<string, Set<string>>();
  for (const p of parts) {
    for (const vs of p.virtualServers) {
      families.add(ipFamily(vs.address));
      const k = virtualServerKey(vs);
      const prev = vsByKey.get(k);
      // Two services claiming one VIP:port: the rule of claimOrder (vipConflicts reports the losers).
      if (!prev || claimOrder(vs, prev) < 0) vsByKey.set(k, vs);
    }
    for (const a of p.boundAddresses) bound.add(a);
    for (const [set, entry] of p.ipsetEntries) {
      let s = sets.get(set);
      if (!s) sets.set(set, (s = new Set()));
      s.add(entry);
    }
  }
  const ipsets: IpsetState[] = [];
  for (const family of families) {
    for (const [base, type] of IPSET_TABLE) {
      const name = ipsetName(base, family);
      ipsets.push({
        name,
        type,
        ...(type === 'bitmap:port' ? {} : { family: family === 'IPv4' ? ('inet' as const) : ('inet6' as const) }),
        entries: [...(sets.get(name) ?? [])].sort(byCodeUnit),
      });
    }
  }
  ipsets.sort((a, b) => byCodeUnit(a.name, b.name));
  const c = ctx.config;
  return {
    node: ctx.nodeName,
    virtualServers: [...vsByKey.keys()].sort(byCodeUnit).map((k) => vsByKey.get(k)!),
    boundAddresses: [...bound].sort(byCodeUnit),
    ipsets,
    settings: {
      mode: c.mode,
      strictARP: c.strictARP,
      masqueradeAll: c.masqueradeAll,
      clusterCIDR: c.clusterCIDR,
      tcpTimeout: c.tcpTimeout,
      tcpFinTimeout: c.tcpFinTimeout,
      udpTimeout: c.udpTimeout,
      excludeCIDRs: c.excludeCIDRs,
    },
  };
}

/** One service's share of a node's state, for every address family it has a cluster IP in. */
export function renderServiceForNode(svc: ServiceEntry, ctx: RenderContext): ServiceContribution {
  const out: ServiceContribution = { virtualServers: [], boundAddresses: [], ipsetEntries: [] };
  for (const clusterIP of svc.clusterIPs) renderFamily(svc, clusterIP, ctx, out);
  return out;
}

/**
 * The addresses one family of a service is served on, on the node `ctx` names: the one reading of
 * them that rendering and vipConflicts (through serviceClaims) share.
 */
interface FamilyAddresses {
  readonly family: IpFamily;
  readonly externalIPs: readonly string[];
  readonly lbIPs: readonly string[];
  readonly ranges: readonly string[];
  readonly nodeIPs: readonly string[];
  readonly externalLocal: boolean;
  readonly internalLocal: boolean;
}

function familyAddresses(svc: ServiceEntry, clusterIP: string, ctx: RenderContext): FamilyAddresses {
  const family = ipFamily(clusterIP);
  const inFamily = (a: string) => ipFamily(a) === family;
  // No node's address is a Service's to take (probe6 P7): on its owner its :22 and :10250 would
  // go to the tenant's pods, and every other node would bind it (ipvs) or capture it (nftables),
  // cutting them off from that node. Left out on every node alike; vipConflicts says who asked.
  const externalIPs = svc.externalIPs.filter((a) => inFamily(a) && !ctx.nodeAddresses.has(a));
  const lbIPs = svc.loadBalancerIngress.filter(inFamily);
  return {
    family,
    externalIPs,
    lbIPs,
    ranges: svc.loadBalancerSourceRanges.filter(inFamily),
    nodeIPs: ctx.nodePortIPs.filter(inFamily),
    externalLocal:
      svc.externalTrafficPolicy === 'Local' && (externalIPs.length > 0 || lbIPs.length > 0 || svc.nodePorts),
    internalLocal: svc.internalTrafficPolicy === 'Local',
  };
}

/** One protocol/address:port a service port asks for, and in which role (what claimOrder ranks). */
export interface VipClaim {
  readonly address: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly role: VirtualServerRole;
  readonly servicePort: string;
}

/**
 * The virtual servers renderServiceForNode makes for `svc` on the node `ctx` names, without their
 * endpoints: what vipConflicts needs, at O(ports × addresses) instead of rendering every endpoint
 * of the cluster (0.6–1.8 s at 10,000 services × 250 endpoints, on the planner's thread, when
 * /status asked). Same order as the rendering's; a test holds the two equal.
 */
export function* serviceClaims(svc: ServiceEntry, ctx: RenderContext): Generator<VipClaim> {
  for (const clusterIP of svc.clusterIPs) {
    const { externalIPs, lbIPs, nodeIPs } = familyAddresses(svc, clusterIP, ctx);
    for (const port of svc.ports) {
      const servicePort = `${svc.key}:${port.name}`;
      const claim = (address: string, p: number, role: VirtualServerRole): VipClaim => ({
        address,
        port: p,
        protocol: port.protocol,
        role,
        servicePort,
      });
      yield claim(clusterIP, port.port, 'cluster-ip');
      for (const ip of externalIPs) yield claim(ip, port.port, 'external-ip');
      for (const ip of lbIPs) yield claim(ip, port.port, 'load-balancer');
      if (svc.nodePorts && port.nodePort !== 0) for (const n of nodeIPs) yield claim(n, port.nodePort, 'node-port');
    }
  }
}

function renderFamily(svc: ServiceEntry, clusterIP: string, ctx: RenderContext, out: ServiceContribution): void {
  const { family, externalIPs, lbIPs, ranges, nodeIPs, externalLocal, internalLocal } = familyAddresses(
    svc,
    clusterIP,
    ctx,
  );
  const set = (base: IpsetBaseName, entry: string) => out.ipsetEntries.push([ipsetName(base, family), entry]);

  for (const addr of [clusterIP, ...externalIPs, ...lbIPs]) {
    // A load balancer that hands out node addresses (k3s servicelb, some MetalLB setups) makes a
    // node's address a Service's ingress IP: served on every node, but bound on none and in no
    // node's KUBE-IPVS-IPS. Its owner has it already, and KUBE-IPVS-FILTER would drop every other
    // port of it there (ssh, kubelet: kube-proxy's 1.26 regression #117613, fixed by #115019,
    // probe6 P15). Bound on another node it would be local there, so that node's own traffic to
    // the owner on any port stays home (KUBE-IPVS-FILTER drops it): kube-proxy binds it there,
    // which cuts nodes off one another. Unbound, it is routed to its owner, which serves the port.
    if (addr !== clusterIP && ctx.nodeAddresses.has(addr)) continue;
    out.boundAddresses.push(addr);
    set('KUBE-IPVS-IPS', addr);
  }
  if (svc.healthCheckNodePort !== 0 && externalLocal)
    set('KUBE-HEALTH-CHECK-NODE-PORT', String(svc.healthCheckNodePort));

  for (const port of svc.ports) {
    const sel = selectEndpoints(port, family, ctx.nodeName, ctx.node?.zone ?? '');
    const servicePort = `${svc.key}:${port.name}`;
    const vs = (
      address: string,
      p: number,
      role: VirtualServerRole,
      localOnly: boolean,
      sourceRanges: readonly string[] = [],
    ) =>
      out.virtualServers.push(
        virtualServer({
          svc,
          ctx,
          address,
          port: p,
          protocol: port.protocol,
          role,
          servicePort,
          localOnly,
          sourceRanges,
          sel,
        }),
      );
    const entry = (ip: string) => ipPortEntry(ip, port.protocol, port.port);

    set('KUBE-CLUSTER-IP', entry(clusterIP));
    vs(clusterIP, port.port, 'cluster-ip', internalLocal);
    for (const ep of sel.allLocal) set('KUBE-LOOP-BACK', loopBackEntry(ep, port.protocol));

    for (const ip of externalIPs) {
      set(externalLocal ? 'KUBE-EXTERNAL-IP-LOCAL' : 'KUBE-EXTERNAL-IP', entry(ip));
      vs(ip, port.port, 'external-ip', externalLocal);
    }
    for (const ip of lbIPs) {
      set('KUBE-LOAD-BALANCER', entry(ip));
      if (externalLocal) set('KUBE-LOAD-BALANCER-LOCAL', entry(ip));
      if (ranges.length > 0) {
        set('KUBE-LOAD-BALANCER-FW', entry(ip));
        for (const r of ranges) set('KUBE-LOAD-BALANCER-SOURCE-CIDR', ipPortNetEntry(ip, port.protocol, port.port, r));
        // Traffic from the node itself to its LB VIP must pass the firewall when a range covers it.
        const cidrs = ranges.map((r) => parseCidr(r)!);
        if (nodeIPs.some((n) => cidrs.some((c) => cidrContains(c, n))))
          set('KUBE-LOAD-BALANCER-SOURCE-IP', `${entry(ip)},${ip}`);
      }
      vs(ip, port.port, 'load-balancer', externalLocal, ranges);
    }
    if (svc.nodePorts && port.nodePort !== 0) {
      const bases = [
        nodePortSetBase(port.protocol, false),
        ...(externalLocal ? [nodePortSetBase(port.protocol, true)] : []),
      ];
      for (const base of bases) {
        if (port.protocol === 'SCTP') for (const n of nodeIPs) set(base, ipPortEntry(n, 'SCTP', port.nodePort));
        else set(base, String(port.nodePort));
      }
      for (const n of nodeIPs) vs(n, port.nodePort, 'node-port', externalLocal);
    }
  }
}

/** The KUBE-LOOP-BACK member of an endpoint on the node (a pod reaching itself through its service). */
export function loopBackEntry(ep: EndpointEntry, protocol: Protocol): string {
  return `${ipPortEntry(ep.ip, protocol, ep.port)},${ep.ip}`;
}

interface VsInput {
  svc: ServiceEntry;
  ctx: RenderContext;
  address: string;
  port: number;
  protocol: VirtualServer['protocol'];
  role: VirtualServerRole;
  servicePort: string;
  localOnly: boolean;
  sourceRanges: readonly string[];
  sel: EndpointSelection;
}

const realServersOf = (eps: readonly EndpointEntry[]): RealServer[] =>
  eps
    .map((e) => ({ address: e.ip, port: e.port, weight: 1 }))
    .sort((a, b) => byCodeUnit(a.address, b.address) || a.port - b.port);

const sameServers = (a: readonly RealServer[], b: readonly RealServer[]): boolean =>
  a.length === b.length && a.every((r, k) => r.address === b[k]!.address && r.port === b[k]!.port);

/**
 * The real servers of one virtual server. Cluster policy: the cluster-wide selection. Local
 * policy: this node's endpoints; none here but some elsewhere: the cluster-wide ones, as kube-proxy's
 * ipvs mode programs them (PR #97081), with `localRealServers: []` so nftables mode can still drop
 * what comes from outside; an externally reached one also carries the cluster-wide list when it
 * differs, for nftables mode's pod and node short-circuits (probe6 P2). Both lists are left out
 * where they equal realServers, so the state of every other service is what it was.
 */
function endpointLists(i: VsInput): Pick<VirtualServer, 'realServers' | 'localRealServers' | 'clusterRealServers'> {
  const cluster = realServersOf(i.sel.cluster);
  if (!i.localOnly) return { realServers: cluster };
  const local = realServersOf(i.sel.local);
  if (local.length === 0 && cluster.length > 0) return { realServers: cluster, localRealServers: local };
  if (i.role === 'cluster-ip' || sameServers(local, cluster)) return { realServers: local };
  return { realServers: local, clusterRealServers: cluster };
}

/**
 * Built with its keys in code-unit order (as a RealServer's are): its canonical text is then
 * JSON.stringify's, which contentHash takes natively (canonicalJsonOf) instead of sorting every
 * object's keys; a node hashes each virtual server it renders, on every event.
 */
function virtualServer(i: VsInput): VirtualServer {
  const { realServers, localRealServers, clusterRealServers } = endpointLists(i);
  return {
    address: i.address,
    ...(clusterRealServers ? { clusterRealServers } : {}),
    localOnly: i.localOnly,
    ...(localRealServers ? { localRealServers } : {}),
    persistenceTimeout: i.svc.affinityTimeoutSeconds,
    port: i.port,
    protocol: i.protocol,
    realServers,
    role: i.role,
    scheduler: i.ctx.config.scheduler,
    schedulerFlags: i.ctx.config.schedulerFlags,
    servicePort: i.servicePort,
    sourceRanges: i.sourceRanges,
  };
}

/**
 * Every claim the rendering leaves out, as rejections naming the Service that lost, what it
 * claimed and why (review3 K1): a VIP:port another service port won by claimOrder, and an
 * externalIP that is any node's address (served on no node: probe6 P7), a NodePort (protocol and
 * port) another Service's port won, on every node alike (probe10 H6). Node-independent claims
 * (ClusterIPs, externalIPs, LB addresses) are resolved as every node resolves them; a claim a
 * service makes twice on itself (its own ClusterIP listed in externalIPs) is no conflict. Pure,
 * O(services × ports × addresses), no endpoint read: the planner computes it once per published
 * content, when asked.
 */
export function vipConflicts(data: ClusterDataSource, config: ProxyConfig = DEFAULT_PROXY_CONFIG): Rejection[] {
  // no node: no NodePorts and no own addresses, only the claims every node renders alike
  const byAddress = data.nodeAddressOwners();
  const ctx = neutralContext(config, byAddress);
  const claims = new Map<string, { vs: VipClaim; service: string }[]>();
  const nodePorts = new Map<string, { servicePort: string; service: string }[]>();
  const out: Rejection[] = [];
  for (const svc of data.services()) {
    // NodePorts are rendered per node, so claimed here by protocol/port alone (probe10 H6)
    for (const p of svc.nodePorts ? svc.ports : [])
      if (p.nodePort !== 0) {
        const k = `${p.protocol}/:${p.nodePort}`;
        nodePorts.set(k, [...(nodePorts.get(k) ?? []), { servicePort: `${svc.key}:${p.name}`, service: svc.key }]);
      }
    for (const vs of serviceClaims(svc, ctx)) {
      const k = virtualServerKey(vs);
      const list = claims.get(k);
      if (list) list.push({ vs, service: svc.key });
      else claims.set(k, [{ vs, service: svc.key }]);
    }
    for (const ip of svc.externalIPs) {
      const owners = byAddress.get(ip);
      if (owners)
        out.push(
          rejection(
            svc.key,
            `externalIP ${ip} is the address of node ${owners.join(', ')}: served on no node (a Service may not take a node's address)`,
          ),
        );
    }
  }
  for (const [k, list] of claims) {
    if (list.length < 2) continue;
    const win = list.reduce((best, c) => (claimOrder(c.vs, best.vs) < 0 ? c : best));
    for (const c of list) {
      if (c.service === win.service) continue;
      const port = c.vs.servicePort.slice(c.service.length + 1);
      out.push(
        rejection(
          c.service,
          `${c.vs.role} claim on ${k} (port ${port}) lost to ${win.vs.servicePort} (${win.vs.role})`,
        ),
      );
    }
  }
  // every node's NodePort virtual servers: the same role, so claimOrder's service-port order decides
  for (const [k, list] of nodePorts) {
    if (list.length < 2) continue;
    const win = list.reduce((best, c) => (byCodeUnit(c.servicePort, best.servicePort) < 0 ? c : best));
    for (const c of list)
      if (c.service !== win.service)
        out.push(
          rejection(
            c.service,
            `node-port claim on ${k} (port ${c.servicePort.slice(c.service.length + 1)}) lost to ${win.servicePort}`,
          ),
        );
  }
  return out.sort((a, b) => byCodeUnit(a.ref, b.ref) || byCodeUnit(a.reason, b.reason));
}

const rejection = (service: string, reason: string): Rejection => ({
  ref: `Service ${service}`,
  source: 'VIP claims',
  reason,
});
