import type { Protocol } from './kube-objects.ts';

/**
 * The kernel object model: what one node must program, independent of how (netlink, nft text,
 * a recording fake). Identity keys are explicit: a virtual server is (protocol, address, port), a
 * real server is (address, port) within it — so a weight change is an edit, not a replace.
 */
export interface RealServer {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
}

/** Why a virtual server exists; nftables mode and audits need it, ipvsadm does not print it. */
export type VirtualServerRole = 'cluster-ip' | 'external-ip' | 'load-balancer' | 'node-port';

export interface VirtualServer {
  readonly protocol: Protocol;
  readonly address: string;
  readonly port: number;
  readonly scheduler: string;
  /** Scheduler flags as ipvsadm names them (e.g. mh-fallback, mh-port), sorted. */
  readonly schedulerFlags: readonly string[];
  /** Session persistence in seconds; 0 means none. */
  readonly persistenceTimeout: number;
  readonly role: VirtualServerRole;
  /** "namespace/name:portName" of the service port this serves. */
  readonly servicePort: string;
  /** Only node-local endpoints (externalTrafficPolicy/internalTrafficPolicy Local applied). */
  readonly localOnly: boolean;
  /** Source CIDRs allowed (LoadBalancer with loadBalancerSourceRanges); empty = all. */
  readonly sourceRanges: readonly string[];
  /**
   * Sorted by realServerKey. What IPVS programs: on a localOnly server the node-local endpoints,
   * or, when this node has none, the cluster-wide ones (kube-proxy ipvs, PR #97081: pods and the
   * node reach a Local service through any node).
   */
  readonly realServers: readonly RealServer[];
  /**
   * localOnly only, and only where it differs from realServers: the node-local endpoints (none:
   * realServers fell back to the cluster-wide ones). nftables mode sends traffic from outside
   * the cluster only to these (none: dropped), as kube-proxy's nftables mode does.
   */
  readonly localRealServers?: readonly RealServer[];
  /**
   * localOnly external addresses (externalTrafficPolicy Local) only, and only where it differs
   * from realServers: the cluster-wide endpoints, which nftables mode gives traffic from pods
   * (clusterCIDR) and from the node itself (kube-proxy's "short-circuit" rules).
   */
  readonly clusterRealServers?: readonly RealServer[];
}

export type IpsetType =
  | 'hash:ip'
  | 'hash:ip,port'
  | 'hash:ip,port,ip'
  | 'hash:ip,port,net'
  | 'hash:net'
  | 'bitmap:port';

export interface IpsetState {
  readonly name: string;
  readonly type: IpsetType;
  /** 'inet' | 'inet6'; bitmap:port sets have no family (undefined). */
  readonly family?: 'inet' | 'inet6';
  /** Entries in `ipset save` syntax ("10.0.0.1,tcp:80"), sorted, unique. */
  readonly entries: readonly string[];
}

/** Proxy knobs the applier needs beyond the rendered objects. */
export interface NodeProxySettings {
  /** The proxy mode the config asks for; `applier --mode auto` follows it. */
  readonly mode?: 'ipvs' | 'nftables';
  readonly strictARP: boolean;
  readonly masqueradeAll: boolean;
  readonly clusterCIDR: string;
  readonly tcpTimeout: number;
  readonly tcpFinTimeout: number;
  readonly udpTimeout: number;
  /** IPVS services inside these CIDRs are never deleted by the applier (kube-proxy --ipvs-exclude-cidrs). */
  readonly excludeCIDRs: readonly string[];
}

/** Everything one node must program; canonical (sorted) so that its hash is meaningful. */
export interface NodeState {
  readonly node: string;
  readonly virtualServers: readonly VirtualServer[];
  /** Addresses bound to the dummy device kube-ipvs0, sorted. */
  readonly boundAddresses: readonly string[];
  /** Every set kube-proxy keeps, empty ones included, sorted by name. */
  readonly ipsets: readonly IpsetState[];
  readonly settings: NodeProxySettings;
}

export function virtualServerKey(vs: Pick<VirtualServer, 'protocol' | 'address' | 'port'>): string {
  return `${vs.protocol}/${hostPort(vs.address, vs.port)}`;
}

export function realServerKey(rs: Pick<RealServer, 'address' | 'port'>): string {
  return hostPort(rs.address, rs.port);
}

/** "1.2.3.4:80" or "[fd00::1]:80", as ipvsadm prints them. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** hostPort's text back to address and port (undefined when it is not that form). */
export function parseHostPort(text: string): { address: string; port: number } | undefined {
  const colon = text.lastIndexOf(':');
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port)) return undefined;
  const host = text.slice(0, colon);
  return { address: host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port };
}

/** Compares strings by UTF-16 code unit, the same order as `LC_ALL=C sort` for ASCII. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Name of the dummy device the service addresses are bound to, as in kube-proxy. */
export const IPVS_DUMMY_DEVICE = 'kube-ipvs0';

/** The kernel's maxelem for a hash set created without one (kube-proxy creates its sets with it too). */
export const DEFAULT_IPSET_MAXELEM = 65_536;

/**
 * The maxelem to create a hash set of `entries` entries with: undefined (the kernel's default)
 * while they fit it, else twice as many, to the next power of two. A set over its maxelem refuses
 * every further entry ("hash is full"): KUBE-CLUSTER-IP holds one per service port, KUBE-EXTERNAL-IP
 * one per external IP and port, and kube-proxy's fixed 65,536 is a known ceiling (kubernetes
 * issue 129389: thousands of ports times external IPs).
 */
export function ipsetRoomFor(entries: number): number | undefined {
  return entries <= DEFAULT_IPSET_MAXELEM ? undefined : 2 ** Math.ceil(Math.log2(entries * 2));
}
