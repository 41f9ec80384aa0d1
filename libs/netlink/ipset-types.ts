// Plain-data ipset objects (linux/netfilter/ipset/ip_set.h) for the set types kube-proxy uses.

import type { IpFamily } from './ip-address.ts';

export const IPSET_TYPES = [
  'hash:ip',
  'hash:ip,port',
  'hash:ip,port,ip',
  'hash:ip,port,net',
  'hash:net',
  'bitmap:port',
] as const;
export type IpsetType = (typeof IPSET_TYPES)[number];

/** Transport protocol names ipset prints; others travel as numbers. */
export type IpsetProto = 'tcp' | 'udp' | 'sctp' | 'udplite';

/**
 * One element. Which fields apply depends on the set type:
 * hash:ip {ip} · hash:ip,port {ip, proto, port} · hash:ip,port,ip {ip, proto, port, ip2} ·
 * hash:ip,port,net {ip, proto, port, ip2, cidr2} · hash:net {ip, cidr} · bitmap:port {port}.
 */
export interface IpsetEntry {
  readonly ip?: string;
  readonly cidr?: number;
  readonly proto?: IpsetProto;
  readonly port?: number;
  readonly ip2?: string;
  readonly cidr2?: number;
  /** Only for sets created with `comment: true`. */
  readonly comment?: string;
  /** Seconds; only for sets created with a timeout. */
  readonly timeout?: number;
}

/** What `create` takes. Omitted sizes take the kernel defaults (hashsize 1024, maxelem 65536). */
export interface IpsetCreate {
  readonly name: string;
  readonly type: IpsetType;
  /** Address family for hash types (default 'inet'); ignored for bitmap:port. */
  readonly family?: IpFamily;
  readonly hashSize?: number;
  readonly maxElem?: number;
  /** bitmap:port only: inclusive port range. */
  readonly range?: { readonly from: number; readonly to: number };
  /** Enable per-element comments. */
  readonly comment?: boolean;
  /** Default element timeout in seconds (enables timeouts). */
  readonly timeout?: number;
  readonly bucketSize?: number;
  readonly initval?: number;
}

/** What the kernel reports about a set (LIST header). */
export interface IpsetHeader {
  readonly name: string;
  readonly type: IpsetType | string;
  /** undefined for family-less types (bitmap:port). */
  readonly family?: IpFamily;
  readonly revision: number;
  readonly hashSize?: number;
  readonly maxElem?: number;
  readonly bucketSize?: number;
  readonly initval?: number;
  readonly range?: { readonly from: number; readonly to: number };
  readonly comment: boolean;
  readonly timeout?: number;
  readonly references?: number;
  readonly memSize?: number;
  readonly elements?: number;
}

export interface IpsetSet {
  readonly header: IpsetHeader;
  readonly entries: readonly IpsetEntry[];
}

export interface IpsetProtocolVersion {
  /** Highest protocol the kernel speaks. */
  readonly protocol: number;
  /** Lowest it accepts (absent on old kernels). */
  readonly protocolMin?: number;
}

export interface IpsetTypeRevisions {
  readonly max: number;
  readonly min: number;
}
