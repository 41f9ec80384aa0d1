import {
  byCodeUnit,
  DEFAULT_IPSET_MAXELEM,
  realServerKey,
  virtualServerKey,
  type RealServer,
} from '../../model/index.ts';
import { describeOp, type IpsetSpec, type KernelOp, type VirtualServerSpec } from './kernel-op.ts';
import { vsSpec } from './plan-kernel-ops.ts';
import type { RealServerSet } from './narrowed-service.ts';
import type { IndexedState } from './state-change.ts';
import type { ObservedIpset, ObservedKernel, ObservedRealServer, ObservedVirtualServer } from './observed-kernel.ts';

/**
 * A service as the model keeps it: spec and real servers (address, port, weight), never changed
 * in place (a change replaces the entry), so an entry may be an object the model shares, e.g. the
 * desired state's own VirtualServer.
 */
interface ModelVirtualServer extends VirtualServerSpec {
  readonly realServers: readonly RealServer[];
}

/**
 * What the dataplane believes the kernel holds between full reads: loaded from a dump, advanced
 * by every transaction the kernel accepted, checked against the read-back of what a transaction
 * touched (a cycle whose read-back differs drops it). Indexed by key so an incremental cycle looks up only the objects it changes.
 *
 * It is not a kernel and is never used as one: it keeps IPVS services, the dummy device and its
 * addresses, and our ipsets (what an incremental cycle plans against). Netfilter and sysctls are
 * not modelled: they change only with the settings, and a settings change runs a full cycle.
 * Connection counters are not modelled either (they move without us): `virtualServer()` reports
 * them unknown; an incremental cycle reads live a small service it removes real servers from, and
 * drains those of a large one without reading (narrowed-service.ts).
 * Tests run the dataplane against test/support/fake-ipvs-kernel.ts, a separate double.
 */
export class KernelModel {
  private readonly vs = new Map<string, ModelVirtualServer>();
  /**
   * The real servers of a service of at least INDEX_MIN_REAL_SERVERS that a change looked at part
   * of, owned by the model and indexed (its entry's list is then stale: see listed()). Without it
   * each such change scanned the service's list for the few real servers it touched, twice, and
   * copied the whole list for each real server it wrote: O(service) a change, ~0.1 ms of
   * JavaScript on the host at 5,000 real servers (a DaemonSet's Service on a 5,000-node cluster).
   */
  private readonly indexed = new Map<string, IndexedRealServers>();
  private readonly addresses = new Set<string>();
  private readonly sets = new Map<string, { readonly spec: IpsetSpec; entries: Set<string>; maxElem?: number }>();
  private device = false;

  /**
   * The model of a dump. With `same`, the state a verified cycle just programmed (indexed): where the dump
   * holds exactly what it holds (a service with the same spec and real servers, a set with the
   * same entries, an address), the model keeps the state's objects rather than the dump's. Same
   * content; but the state's objects are long-lived while the dump's were all allocated at the
   * end of the cycle, and keeping those (100k real servers at 10k x 10) made the first garbage
   * collections after a large load copy and promote all of them, paid by the first changes.
   */
  static fromObserved(o: ObservedKernel, same?: IndexedState): KernelModel {
    const m = new KernelModel();
    const read = new Map(o.virtualServers.map((v) => [virtualServerKey(v), v]));
    // the state's services first, under the index's own key strings (long-lived too)
    for (const [key, d] of same?.byKey ?? []) {
      const v = read.get(key);
      if (!v) continue;
      m.vs.set(key, sameContent(d, v) ? d : modelEntry(v));
      read.delete(key);
    }
    for (const [key, v] of read) m.vs.set(key, modelEntry(v));
    m.device = o.dummyDevice;
    // the dump's addresses, each as the state's own string where the state has it
    const wantedAddresses = new Map((same?.state.boundAddresses ?? []).map((a) => [a, a]));
    for (const a of o.boundAddresses) m.addresses.add(wantedAddresses.get(a) ?? a);
    const wantedSets = new Map((same?.state.ipsets ?? []).map((s) => [s.name, s]));
    for (const s of o.ipsets) {
      const d = wantedSets.get(s.name);
      const entries = d && sameEntries(d.entries, s.entries) ? d.entries : s.entries;
      m.sets.set(s.name, { spec: specOfSet(s), entries: new Set(entries), ...roomOf(s.maxElem) });
    }
    return m;
  }

  get dummyDevice(): boolean {
    return this.device;
  }

  /**
   * The service as the kernel holds it, connection counters unknown (not modelled); with `only`, just
   * those of its real servers (a narrowed service: see narrowed-service.ts).
   */
  virtualServer(key: string, only?: RealServerSet): ObservedVirtualServer | undefined {
    const v = this.vs.get(key);
    if (!v) return undefined;
    const index = only && this.indexOf(key, v);
    if (index) {
      // O(only): each asked-for real server looked up, in the order asked
      const realServers: ObservedRealServer[] = [];
      only!.forEach((address, port) => {
        const r = index.get(address, port);
        if (r) realServers.push(withoutCounters(r));
      });
      return { ...specOf(v), realServers };
    }
    const all = this.listed(key, v).realServers;
    return { ...specOf(v), realServers: (only ? all.filter((r) => only.has(r)) : all).map(withoutCounters) };
  }

  /**
   * Whether the model holds exactly `read` (same spec, same real servers with the same weights,
   * in any order), compared in place: the read-back check of a service whose spec a change wrote,
   * so it copies nothing for the kernel's usual order (the reverse of the model's).
   */
  holds(read: ObservedVirtualServer): boolean {
    const key = virtualServerKey(read);
    const v = this.vs.get(key);
    return !!v && sameContent(this.listed(key, v), read);
  }

  hasVirtualServer(key: string): boolean {
    return this.vs.has(key);
  }

  hasAddress(address: string): boolean {
    return this.addresses.has(address);
  }

  /** The set as `ipset save` would list it (entries sorted): O(set size), for a set that changes. */
  ipset(name: string): ObservedIpset | undefined {
    const s = this.sets.get(name);
    return s && { ...s.spec, entries: [...s.entries].sort(byCodeUnit), ...roomOf(s.maxElem) };
  }

  /**
   * The index of the service's real servers when it has one or is large enough for one (made
   * here, once: the list copied into it), else undefined (a scan of its list costs less).
   */
  private indexOf(key: string, v: ModelVirtualServer): IndexedRealServers | undefined {
    const have = this.indexed.get(key);
    if (have || v.realServers.length < INDEX_MIN_REAL_SERVERS) return have;
    const made = new IndexedRealServers(v.realServers);
    this.indexed.set(key, made);
    // the entry's list is the index's now (made again from it when the whole is asked for)
    this.vs.set(key, { ...specOf(v), realServers: STALE });
    return made;
  }

  /** The entry with its whole list: for an indexed service, made from the index (O(service), rare). */
  private listed(key: string, v: ModelVirtualServer): ModelVirtualServer {
    const index = this.indexed.get(key);
    return index ? { ...specOf(v), realServers: index.list() } : v;
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

  private applyOp(op: KernelOp): string | undefined {
    switch (op.kind) {
      case 'virtual-server': {
        const k = virtualServerKey(op.vs);
        const have = this.vs.get(k);
        if (op.verb === 'add' && have) return 'exists in the model';
        if (op.verb !== 'add' && !have) return 'absent from the model';
        if (op.verb === 'delete') {
          this.vs.delete(k);
          this.indexed.delete(k);
          return undefined;
        }
        // (an edit keeps the real servers, and an index of them with them)
        this.vs.set(k, { ...specOf(op.vs), realServers: have?.realServers ?? [] });
        return undefined;
      }
      case 'real-server': {
        if (op.verb === 'flush-conntrack') return undefined;
        const vsKey = virtualServerKey(op.vs);
        const v = this.vs.get(vsKey);
        if (!v) return 'service absent from the model';
        const { address, port } = op.rs;
        const index = this.indexOf(vsKey, v);
        if (index) {
          const have = index.get(address, port);
          if (op.verb === 'add' && have) return 'exists in the model';
          if (op.verb !== 'add' && !have) return 'absent from the model';
          if (op.verb === 'delete') index.delete(address, port);
          else index.set({ address, port, weight: 'weight' in op.rs ? op.rs.weight : 1 });
          return undefined;
        }
        const i = v.realServers.findIndex((r) => r.address === address && r.port === port);
        if (op.verb === 'add' && i >= 0) return 'exists in the model';
        if (op.verb !== 'add' && i < 0) return 'absent from the model';
        // entries are never changed in place (they may be shared): a new list, O(its endpoints)
        const realServers = [...v.realServers];
        if (op.verb === 'delete') realServers.splice(i, 1);
        else {
          const weight = 'weight' in op.rs ? op.rs.weight : 1;
          if (op.verb === 'add') realServers.push({ address, port, weight });
          else realServers[i] = { address, port, weight };
        }
        this.vs.set(vsKey, { ...specOf(v), realServers });
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
          // as the kernel makes it: a hash set without a maxelem gets the default
          const maxElem = op.set.type === 'bitmap:port' ? undefined : (op.maxElem ?? DEFAULT_IPSET_MAXELEM);
          this.sets.set(op.set.name, { spec: specOfSet(op.set), entries: new Set(), ...roomOf(maxElem) });
          return undefined;
        }
        if (op.verb === 'destroy') return this.sets.delete(op.name) ? undefined : 'absent from the model';
        const a = this.sets.get(op.name),
          b = this.sets.get(op.other);
        if (!a || !b) return 'absent from the model';
        // the kernel swaps the sets under their names, each with its own size
        [a.entries, b.entries] = [b.entries, a.entries];
        [a.maxElem, b.maxElem] = [b.maxElem, a.maxElem];
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

/**
 * Services with at least this many real servers get an index once a change looks at part of
 * them (KernelModel.indexed). Below it a scan costs less than an index's memory: at 10,000
 * services of 250 real servers (the scalability envelope) every service would have one.
 */
export const INDEX_MIN_REAL_SERVERS = 1024;

/** An indexed service's entry list: never read (listed() makes the whole from the index). */
const STALE: readonly RealServer[] = Object.freeze([]);

/**
 * A large service's real servers by address, then port: found, added, reweighted and removed in
 * O(1); listed whole (in the order they were first set) only when asked.
 */
class IndexedRealServers {
  private readonly byAddress = new Map<string, Map<number, RealServer>>();
  private whole: readonly RealServer[] | undefined;

  constructor(realServers: readonly RealServer[]) {
    let count = 0;
    for (const r of realServers) {
      if (!this.get(r.address, r.port)) count++;
      this.set(r);
    }
    // the list as it came is the whole only where it held no real server twice
    this.whole = count === realServers.length ? realServers : undefined;
  }

  get(address: string, port: number): RealServer | undefined {
    return this.byAddress.get(address)?.get(port);
  }

  /** Adds the real server or replaces the one at its address and port (which keeps its place). */
  set(r: RealServer): void {
    let ports = this.byAddress.get(r.address);
    if (!ports) this.byAddress.set(r.address, (ports = new Map()));
    ports.set(r.port, r);
    this.whole = undefined;
  }

  delete(address: string, port: number): void {
    const ports = this.byAddress.get(address);
    if (!ports?.delete(port)) return;
    if (ports.size === 0) this.byAddress.delete(address);
    this.whole = undefined;
  }

  list(): readonly RealServer[] {
    if (this.whole) return this.whole;
    const out: RealServer[] = [];
    for (const ports of this.byAddress.values()) for (const r of ports.values()) out.push(r);
    this.whole = out;
    return out;
  }
}

/** The spec fields alone, scheduler flags sorted (sameVsSpec compares them so). */
function specOf(v: VirtualServerSpec): VirtualServerSpec {
  const spec = vsSpec(v);
  return isSorted(spec.schedulerFlags) ? spec : { ...spec, schedulerFlags: [...spec.schedulerFlags].sort(byCodeUnit) };
}

/** A read service as the model keeps it: the spec and each real server's address, port, weight. */
function modelEntry(v: ObservedVirtualServer): ModelVirtualServer {
  return {
    ...specOf(v),
    realServers: v.realServers.map((r) => ({ address: r.address, port: r.port, weight: r.weight })),
  };
}

function withoutCounters(r: RealServer): ObservedRealServer {
  return {
    address: r.address,
    port: r.port,
    weight: r.weight,
    activeConns: 0,
    inactiveConns: 0,
    countersUnknown: true,
  };
}

/**
 * Whether `have` (read) holds exactly `want`: same spec, same real servers with the same weights.
 * Without allocating for the usual orders (the state's, or the reverse, which is how the kernel
 * lists destinations it was given in order); a Map otherwise.
 */
function sameContent(want: ModelVirtualServer, have: ObservedVirtualServer): boolean {
  if (
    want.scheduler !== have.scheduler ||
    want.persistenceTimeout !== have.persistenceTimeout ||
    !isSorted(want.schedulerFlags) ||
    !sameEntries(
      want.schedulerFlags,
      isSorted(have.schedulerFlags) ? have.schedulerFlags : [...have.schedulerFlags].sort(byCodeUnit),
    )
  )
    return false;
  const a = want.realServers,
    b = have.realServers;
  const n = a.length;
  if (b.length !== n) return false;
  const same = (x: RealServer, y: RealServer) => x.address === y.address && x.port === y.port && x.weight === y.weight;
  let forward = true,
    backward = true;
  for (let i = 0; i < n && (forward || backward); i++) {
    if (forward && !same(a[i]!, b[i]!)) forward = false;
    if (backward && !same(a[i]!, b[n - 1 - i]!)) backward = false;
  }
  if (forward || backward) return true;
  const byKey = new Map(b.map((r) => [realServerKey(r), r]));
  return (
    byKey.size === n &&
    a.every((r) => {
      const h = byKey.get(realServerKey(r));
      return !!h && h.weight === r.weight;
    })
  );
}

function sameEntries(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isSorted(xs: readonly string[]): boolean {
  for (let i = 1; i < xs.length; i++) if (byCodeUnit(xs[i - 1]!, xs[i]!) > 0) return false;
  return true;
}

function specOfSet(s: IpsetSpec): IpsetSpec {
  return { name: s.name, type: s.type, ...(s.family ? { family: s.family } : {}) };
}

const roomOf = (maxElem: number | undefined) => (maxElem === undefined ? {} : { maxElem });
