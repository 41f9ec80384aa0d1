import type { IpFamily, IpsetState, IpsetType, RealServer, VirtualServer } from '../../model/index.ts';

/**
 * One kernel write, as plain data (the knftables (verb, object) pair). The planner emits these,
 * a transaction queues them, and a KernelInterface (real netlink or the recording fake) runs them.
 */
/** The kernel-level part of a virtual server (what IPVS stores); roles and owners stay in the model. */
export type VirtualServerSpec = Pick<
  VirtualServer,
  'protocol' | 'address' | 'port' | 'scheduler' | 'schedulerFlags' | 'persistenceTimeout'
>;

export type VsKey = Pick<VirtualServerSpec, 'protocol' | 'address' | 'port'>;

export type RealServerSpec = RealServer;

export type IpsetSpec = Pick<IpsetState, 'name' | 'type' | 'family'>;

export type KernelOp =
  | { readonly verb: 'add' | 'edit'; readonly kind: 'virtual-server'; readonly vs: VirtualServerSpec }
  | { readonly verb: 'delete'; readonly kind: 'virtual-server'; readonly vs: VsKey }
  | { readonly verb: 'add' | 'edit'; readonly kind: 'real-server'; readonly vs: VsKey; readonly rs: RealServerSpec }
  | {
      readonly verb: 'delete';
      readonly kind: 'real-server';
      readonly vs: VsKey;
      readonly rs: Omit<RealServerSpec, 'weight'>;
    }
  /** Clears conntrack entries of a removed UDP/SCTP real server (so clients stop hitting it). */
  | {
      readonly verb: 'flush-conntrack';
      readonly kind: 'real-server';
      readonly vs: VsKey;
      readonly rs: Omit<RealServerSpec, 'weight'>;
    }
  | { readonly verb: 'create' | 'delete'; readonly kind: 'dummy-device'; readonly name: string }
  | { readonly verb: 'add' | 'delete'; readonly kind: 'address'; readonly device: string; readonly address: string }
  | {
      readonly verb: 'create';
      readonly kind: 'ipset';
      readonly set: IpsetSpec;
      /** Room for more than the kernel's default 65,536 entries (ipsetRoomFor); absent: the default. */
      readonly maxElem?: number;
    }
  | { readonly verb: 'destroy'; readonly kind: 'ipset'; readonly name: string }
  | { readonly verb: 'swap'; readonly kind: 'ipset'; readonly name: string; readonly other: string }
  | {
      readonly verb: 'add' | 'delete';
      readonly kind: 'ipset-entry';
      readonly set: string;
      readonly type: IpsetType;
      readonly entry: string;
    }
  /**
   * Atomically replaces the rules of our netfilter chains of one family (`iptables-restore
   * --noflush` text, run by ip6tables-restore for IPv6).
   */
  | { readonly verb: 'restore'; readonly kind: 'netfilter'; readonly family: IpFamily; readonly text: string }
  | { readonly verb: 'set'; readonly kind: 'sysctl'; readonly name: string; readonly value: string };

/** Short human text of an op, for errors, logs and test failure messages. */
export function describeOp(op: KernelOp): string {
  const vs = (k: VsKey) => `${k.protocol}/${hp(k.address, k.port)}`;
  switch (op.kind) {
    case 'virtual-server':
      return `${op.verb} virtual server ${vs(op.vs)}`;
    case 'real-server':
      return `${op.verb} real server ${hp(op.rs.address, op.rs.port)}${'weight' in op.rs ? ` weight ${op.rs.weight}` : ''} of ${vs(op.vs)}`;
    case 'dummy-device':
      return `${op.verb} dummy device ${op.name}`;
    case 'address':
      return `${op.verb} address ${op.address} on ${op.device}`;
    case 'ipset':
      return op.verb === 'create'
        ? `create ipset ${op.set.name} ${op.set.type}`
        : op.verb === 'swap'
          ? `swap ipsets ${op.name} ${op.other}`
          : `destroy ipset ${op.name}`;
    case 'ipset-entry':
      return `${op.verb} ${op.entry} in ipset ${op.set}`;
    case 'netfilter':
      return `restore ${op.family} netfilter rules (${op.text.split('\n').length} lines)`;
    case 'sysctl':
      return `set sysctl ${op.name}=${op.value}`;
  }
}

function hp(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
