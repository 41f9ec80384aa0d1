import type { IpsetSpec, VirtualServerSpec } from './kernel-op.ts';

/**
 * What a KernelInterface reads back: everything relevant in this network namespace, ours and
 * foreign alike. The planner decides what is ours (OwnershipRecord + naming), never the reader.
 */
export interface ObservedRealServer {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  /** Connection counters, for draining removed TCP real servers. */
  readonly activeConns: number;
  readonly inactiveConns: number;
  /**
   * The counters above were not read (0 stands in): a real server from the dataplane's model of
   * the kernel, not from a dump. A removal decided on it drains (graceful-termination.ts).
   */
  readonly countersUnknown?: true;
}

export interface ObservedVirtualServer extends VirtualServerSpec {
  readonly realServers: readonly ObservedRealServer[];
}

export interface ObservedIpset extends IpsetSpec {
  /** `ipset save` element text, sorted. */
  readonly entries: readonly string[];
  /** The most entries the kernel takes in it (its header's maxelem; absent: unknown or none, bitmap:port). */
  readonly maxElem?: number;
}

export interface ObservedKernel {
  readonly virtualServers: readonly ObservedVirtualServer[];
  /** Whether the dummy device exists, and the addresses on it. */
  readonly dummyDevice: boolean;
  readonly boundAddresses: readonly string[];
  /** Sets the reader was asked about (ours by name or record); absent ones are simply missing. */
  readonly ipsets: readonly ObservedIpset[];
  /**
   * Our netfilter rules as `iptables-save` prints them, per table: the "-A CHAIN ..." lines of our
   * chains, and the jump lines from other chains into them. Missing chains are absent keys.
   */
  readonly netfilter: NetfilterObservation;
  /** Current values of the sysctls we manage (absent when the key does not exist). */
  readonly sysctls: Readonly<Record<string, string>>;
}

export interface NetfilterObservation {
  /**
   * table → chain → rule lines (without the "-A CHAIN " prefix): our chains, and the rules of
   * other chains that jump into them (built-in chains' jumps are ours; any other chain's are not).
   */
  readonly tables: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
}

export const EMPTY_OBSERVED: ObservedKernel = Object.freeze({
  virtualServers: [],
  dummyDevice: false,
  boundAddresses: [],
  ipsets: [],
  netfilter: { tables: {} },
  sysctls: {},
});
