import { isIPv4, isIPv6 } from 'node:net';
import { ipFamily } from '../../model/index.ts';
import { describeOp, type KernelOp, type VsKey } from './kernel-op.ts';
import type { ObservedKernel, ObservedVirtualServer } from './observed-kernel.ts';

/**
 * A queue of kernel writes in the knftables style: queuing never throws (the first invalid op is
 * remembered), and KernelInterface.run() refuses the whole transaction before any write when one
 * op is invalid — so a corrupt input can never half-apply or drop what is programmed.
 */
export class KernelTransaction {
  readonly ops: KernelOp[] = [];
  private firstError: string | undefined;

  add(op: KernelOp): this {
    this.ops.push(op);
    if (this.firstError === undefined) {
      const why = validateOp(op);
      if (why) this.firstError = `${describeOp(op)}: ${why}`;
    }
    return this;
  }

  addAll(ops: Iterable<KernelOp>): this {
    for (const op of ops) this.add(op);
    return this;
  }

  get size(): number {
    return this.ops.length;
  }

  /** The first invalid op's error, or undefined when every op is well-formed. */
  validate(): string | undefined {
    return this.firstError;
  }
}

export class TransactionError extends Error {
  constructor(
    message: string,
    readonly applied: number,
  ) {
    super(message);
  }
}

/** What runs transactions and reads the kernel: the netlink implementation or the recording fake. */
export interface KernelInterface {
  /**
   * Reads the kernel; `sets` limits which ipsets are listed (ours by name/record). Once `signal`
   * fires, a read may stop between its steps and reject with the signal's reason (a resync giving
   * way to an apply).
   */
  read(
    opts: {
      readonly ipsets: readonly string[];
      readonly device: string;
      readonly sysctls: readonly string[];
      readonly netfilterChains: Readonly<Record<string, readonly string[]>>;
    },
    signal?: AbortSignal,
  ): Promise<ObservedKernel>;
  /** Just these IPVS services with their real servers and counters (absent ones are left out). */
  readVirtualServers(keys: readonly VsKey[]): Promise<ObservedVirtualServer[]>;
  /** Validates, then applies every op in order. Throws TransactionError (with how many ops were applied). */
  run(tx: KernelTransaction): Promise<void>;
  /**
   * Why the IPv6 netfilter glue cannot be programmed here (no IPv6, no ip6tables), or undefined
   * when it can. Absent = it can.
   */
  ipv6Unsupported?(): Promise<string | undefined>;
  close(): Promise<void>;
}

/**
 * The runs of a transaction that may go to the kernel at once: consecutive ops of the same kind
 * and verb never depend on each other (the planner orders dependencies across runs). Netfilter,
 * sysctl, device and set create/destroy/swap ops always run alone.
 */
export function concurrentGroups(ops: readonly KernelOp[]): KernelOp[][] {
  const out: KernelOp[][] = [];
  let key = '';
  for (const op of ops) {
    const k = `${op.kind}:${op.verb}`;
    if (k !== key || SERIAL_KINDS.has(op.kind)) {
      out.push([]);
      key = k;
    }
    out[out.length - 1]!.push(op);
  }
  return out;
}

const SERIAL_KINDS: ReadonlySet<KernelOp['kind']> = new Set(['netfilter', 'sysctl', 'dummy-device', 'ipset']);

const SET_NAME = /^[A-Za-z0-9_.:-]{1,31}$/;
const SYSCTL = /^[a-z0-9_./-]+$/;

// Module-level rather than inside validateOp, which runs for every op of a 140k-op transaction:
// a closure made per call is an allocation (and, under tsx's keepNames, a defineProperty) per op.
const port = (p: number) => Number.isInteger(p) && p >= 0 && p <= 65535;
// Same verdict as canonicalIp(a) !== undefined (node's IPv4 check already refuses leading
// zeros) without building the canonical text.
const addr = (a: string) => typeof a === 'string' && (isIPv4(a) || (isIPv6(a) && !a.includes('%')));

function validateOp(op: KernelOp): string | undefined {
  switch (op.kind) {
    case 'virtual-server':
      if (!addr(op.vs.address)) return `invalid address ${JSON.stringify(op.vs.address)}`;
      if (!port(op.vs.port)) return `invalid port ${op.vs.port}`;
      if (op.verb !== 'delete') {
        if (!/^[a-z]{1,15}$/.test(op.vs.scheduler)) return `invalid scheduler ${JSON.stringify(op.vs.scheduler)}`;
        if (!Number.isInteger(op.vs.persistenceTimeout) || op.vs.persistenceTimeout < 0)
          return 'invalid persistence timeout';
      }
      return undefined;
    case 'real-server':
      if (!addr(op.vs.address) || !addr(op.rs.address)) return 'invalid address';
      if (ipFamily(op.vs.address) !== ipFamily(op.rs.address))
        return 'real server family differs from its virtual server';
      if (!port(op.vs.port) || !port(op.rs.port)) return 'invalid port';
      if ('weight' in op.rs && (!Number.isInteger(op.rs.weight) || op.rs.weight < 0 || op.rs.weight > 65535))
        return `invalid weight ${op.rs.weight}`;
      return undefined;
    case 'dummy-device':
      return /^[a-zA-Z0-9_.-]{1,15}$/.test(op.name) ? undefined : 'invalid device name';
    case 'address':
      return addr(op.address) ? undefined : `invalid address ${JSON.stringify(op.address)}`;
    case 'ipset':
      if (op.verb === 'create') return SET_NAME.test(op.set.name) ? undefined : 'invalid set name';
      if (op.verb === 'swap') return SET_NAME.test(op.name) && SET_NAME.test(op.other) ? undefined : 'invalid set name';
      return SET_NAME.test(op.name) ? undefined : 'invalid set name';
    case 'ipset-entry':
      return SET_NAME.test(op.set) && op.entry.length > 0 && !/\s/.test(op.entry) ? undefined : 'invalid entry';
    case 'netfilter':
      return op.text.trimEnd().endsWith('COMMIT') ? undefined : 'restore text must end with COMMIT';
    case 'sysctl':
      return SYSCTL.test(op.name) && /^[0-9]+$/.test(op.value) ? undefined : 'invalid sysctl';
  }
}
