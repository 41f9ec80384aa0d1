import { byCodeUnit, realServerKey, virtualServerKey } from '../../model/index.ts';
import { describeOp, type IpsetSpec, type KernelOp } from './kernel-op.ts';
import type { ObservedIpset, ObservedKernel, ObservedRealServer, ObservedVirtualServer } from './observed-kernel.ts';

interface ModelVirtualServer extends ObservedVirtualServer {
  realServers: ObservedRealServer[];
}

/**
 * What the dataplane believes the kernel holds between full reads: loaded from a dump, advanced
 * by every transaction the kernel accepted, corrected by the read-back of what a transaction
 * touched. Indexed by key so an incremental cycle looks up only the objects it changes.
 *
 * It is not a kernel and is never used as one: it keeps IPVS services, the dummy device and its
 * addresses, and our ipsets (what an incremental cycle plans against). Netfilter and sysctls are
 * not modelled: they change only with the settings, and a settings change runs a full cycle.
 * Tests run the dataplane against test/support/fake-ipvs-kernel.ts, a separate double.
 */
export class KernelModel {
  private readonly vs = new Map<string, ModelVirtualServer>();
  private readonly addresses = new Set<string>();
  private readonly sets = new Map<string, { readonly spec: IpsetSpec; entries: Set<string> }>();
  private device = false;

  static fromObserved(o: ObservedKernel): KernelModel {
    const m = new KernelModel();
    for (const v of o.virtualServers) m.putVirtualServer(v);
    m.device = o.dummyDevice;
    for (const a of o.boundAddresses) m.addresses.add(a);
    for (const s of o.ipsets) m.sets.set(s.name, { spec: specOfSet(s), entries: new Set(s.entries) });
    return m;
  }

  get dummyDevice(): boolean {
    return this.device;
  }

  virtualServer(key: string): ObservedVirtualServer | undefined {
    return this.vs.get(key);
  }

  hasAddress(address: string): boolean {
    return this.addresses.has(address);
  }

  /** The set as `ipset save` would list it (entries sorted): O(set size), for a set that changes. */
  ipset(name: string): ObservedIpset | undefined {
    const s = this.sets.get(name);
    return s && { ...s.spec, entries: [...s.entries].sort(byCodeUnit) };
  }

  /** Replaces (or adds) these services as read from the kernel. */
  putVirtualServers(fresh: readonly ObservedVirtualServer[]): void {
    for (const v of fresh) this.putVirtualServer(v);
  }

  /**
   * Advances the model by ops the kernel accepted. Returns why the model refuses one (it then
   * disagrees with the kernel and must be thrown away; it is left half-changed), or undefined.
   */
  apply(ops: readonly KernelOp[]): string | undefined {
    for (const op of ops) {
      const why = this.applyOp(op);
      if (why) return `${describeOp(op)}: ${why}`;
    }
    return undefined;
  }

  private putVirtualServer(v: ObservedVirtualServer): void {
    this.vs.set(virtualServerKey(v), {
      protocol: v.protocol,
      address: v.address,
      port: v.port,
      scheduler: v.scheduler,
      schedulerFlags: [...v.schedulerFlags].sort(),
      persistenceTimeout: v.persistenceTimeout,
      realServers: v.realServers.map((r) => ({ ...r })),
    });
  }

  private applyOp(op: KernelOp): string | undefined {
    switch (op.kind) {
      case 'virtual-server': {
        const k = virtualServerKey(op.vs);
        const have = this.vs.get(k);
        if (op.verb === 'add' && have) return 'exists in the model';
        if (op.verb !== 'add' && !have) return 'absent from the model';
        if (op.verb === 'delete') {
          this.vs.delete(k);
          return undefined;
        }
        const v = op.vs as ObservedVirtualServer;
        this.putVirtualServer({ ...v, realServers: have?.realServers ?? [] });
        return undefined;
      }
      case 'real-server': {
        if (op.verb === 'flush-conntrack') return undefined;
        const v = this.vs.get(virtualServerKey(op.vs));
        if (!v) return 'service absent from the model';
        const k = realServerKey(op.rs);
        const i = v.realServers.findIndex((r) => realServerKey(r) === k);
        if (op.verb === 'add' && i >= 0) return 'exists in the model';
        if (op.verb !== 'add' && i < 0) return 'absent from the model';
        if (op.verb === 'delete') {
          v.realServers.splice(i, 1);
          return undefined;
        }
        const weight = 'weight' in op.rs ? op.rs.weight : 1;
        if (op.verb === 'add')
          v.realServers.push({ address: op.rs.address, port: op.rs.port, weight, activeConns: 0, inactiveConns: 0 });
        else v.realServers[i] = { ...v.realServers[i]!, weight };
        return undefined;
      }
      case 'dummy-device':
        this.device = op.verb === 'create';
        if (!this.device) this.addresses.clear();
        return undefined;
      case 'address':
        if (op.verb === 'add') {
          if (this.addresses.has(op.address)) return 'exists in the model';
          this.addresses.add(op.address);
        } else if (!this.addresses.delete(op.address)) return 'absent from the model';
        return undefined;
      case 'ipset': {
        if (op.verb === 'create') {
          if (this.sets.has(op.set.name)) return 'exists in the model';
          this.sets.set(op.set.name, { spec: specOfSet(op.set), entries: new Set() });
          return undefined;
        }
        if (op.verb === 'destroy') return this.sets.delete(op.name) ? undefined : 'absent from the model';
        const a = this.sets.get(op.name),
          b = this.sets.get(op.other);
        if (!a || !b) return 'absent from the model';
        [a.entries, b.entries] = [b.entries, a.entries];
        return undefined;
      }
      case 'ipset-entry': {
        const set = this.sets.get(op.set);
        if (!set) return 'set absent from the model';
        if (op.verb === 'add') {
          if (set.entries.has(op.entry)) return 'exists in the model';
          set.entries.add(op.entry);
        } else if (!set.entries.delete(op.entry)) return 'absent from the model';
        return undefined;
      }
      case 'netfilter':
      case 'sysctl':
        return undefined; // not modelled (see the class comment)
    }
  }
}

function specOfSet(s: IpsetSpec): IpsetSpec {
  return { name: s.name, type: s.type, ...(s.family ? { family: s.family } : {}) };
}
