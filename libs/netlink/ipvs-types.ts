// Plain-data IPVS objects, close to what the kernel carries over generic netlink
// (linux/ip_vs.h). Identity: a service is (family, protocol, address, port) or
// (family, fwmark); a destination is (address, port) within its service.

import type { IpFamily } from './ip-address.ts';

export type IpvsProtocol = 'TCP' | 'UDP' | 'SCTP';

/**
 * IP_VS_SVC_F_* bits by name. 'sched-flag-1' is sh-fallback / mh-fallback and
 * 'sched-flag-2' is sh-port / mh-port (ipvsadm's names depend on the scheduler).
 * 'hashed' is kernel-owned: it appears on every listed service and is ignored on write.
 */
export type IpvsServiceFlag = 'persistent' | 'hashed' | 'one-packet' | 'sched-flag-1' | 'sched-flag-2' | 'sched-flag-3';

export type IpvsForward = 'masq' | 'local' | 'tunnel' | 'route' | 'bypass';

export interface IpvsStats {
  readonly conns: number;
  readonly inPkts: number;
  readonly outPkts: number;
  readonly inBytes: number;
  readonly outBytes: number;
  readonly cps: number;
  readonly inPps: number;
  readonly outPps: number;
  readonly inBps: number;
  readonly outBps: number;
}

/** What identifies a service: address+port+protocol, or a firewall mark. */
export interface IpvsServiceKey {
  readonly protocol: IpvsProtocol;
  /** IPv4 or IPv6 text. For fwmark services: the family's zero address. */
  readonly address: string;
  readonly port: number;
  /** Firewall-mark service when set (address/port are then ignored on the wire). */
  readonly fwmark?: number;
  /** Needed only for fwmark services; otherwise derived from `address`. */
  readonly family?: IpFamily;
}

export interface IpvsService extends IpvsServiceKey {
  readonly scheduler: string;
  readonly flags: readonly IpvsServiceFlag[];
  /** Persistence timeout in seconds (used when 'persistent' is set). */
  readonly timeout: number;
  /**
   * Persistence netmask as the kernel holds it: for IPv4 the 32-bit mask as an unsigned
   * number (0xffffffff = /32), for IPv6 the prefix length (128).
   */
  readonly netmask: number;
  /** Persistence engine name (e.g. "sip"), rarely used. */
  readonly pe?: string;
  /** Read-only: present on listed services. */
  readonly stats?: IpvsStats;
}

export interface IpvsDestinationKey {
  readonly address: string;
  readonly port: number;
}

export interface IpvsDestination extends IpvsDestinationKey {
  readonly forward: IpvsForward;
  readonly weight: number;
  readonly upperThreshold: number;
  readonly lowerThreshold: number;
  /** Read-only counters, present on listed destinations. */
  readonly activeConns?: number;
  readonly inactiveConns?: number;
  readonly persistConns?: number;
  readonly stats?: IpvsStats;
}

/** Connection timeouts in seconds; 0 on set means "leave unchanged" (kernel semantics). */
export interface IpvsTimeouts {
  readonly tcp: number;
  readonly tcpFin: number;
  readonly udp: number;
}

export interface IpvsInfo {
  /** "1.2.1" */
  readonly version: string;
  readonly versionCode: number;
  /** Connection hash table size (ipvsadm's "size=4096"). */
  readonly connTableSize: number;
}
