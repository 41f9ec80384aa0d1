import { byCodeUnit, realServerKey, virtualServerKey, type IpsetState } from '../../model/index.ts';
import { formatIpsetSave, formatIpvsadm } from '../../planner/index.ts';
import { describeOp, type KernelOp, type VsKey } from './kernel-op.ts';
import { type KernelTransaction, TransactionError, type KernelInterface } from './kernel-transaction.ts';
import type { NetfilterObservation, ObservedIpset, ObservedKernel, ObservedRealServer, ObservedVirtualServer } from './observed-kernel.ts';
import { parseIptablesSave } from './netfilter-glue.ts';

interface FakeState {
  vs: Map<string, ObservedVirtualServer & { realServers: ObservedRealServer[] }>;
  dummyDevice: boolean;
  addresses: Set<string>;
  sets: Map<string, ObservedIpset & { entries: string[] }>;
  /** table → chain → rule lines. */
  netfilter: Record<string, Record<string, string[]>>;
  sysctls: Record<string, string>;
  conntrackFlushes: string[];
}

/**
 * Recording fake of the kernel (knftables' fake.go): runs a transaction on a copy and keeps the
 * copy only when every op succeeded, with the kernel's error semantics (add of an existing object
 * fails, delete of a missing one fails). Remembers the last transaction and dumps its state as
 * `ipvsadm -Sn` / `ipset save` text so tests compare text.
 */
export class FakeKernel implements KernelInterface {
  private state: FakeState = {
    vs: new Map(), dummyDevice: false, addresses: new Set(), sets: new Map(), netfilter: {},
    sysctls: {
      'net.ipv4.vs.conntrack': '0', 'net.ipv4.vs.expire_nodest_conn': '0', 'net.ipv4.vs.expire_quiescent_template': '0',
      'net.ipv4.vs.conn_reuse_mode': '1', 'net.ipv4.ip_forward': '0', 'net.ipv4.conf.all.arp_ignore': '0', 'net.ipv4.conf.all.arp_announce': '0',
    },
    conntrackFlushes: [],
  };
  lastTransaction: KernelTransaction | undefined;
  transactions = 0;
  /** Total ops applied over the fake's life. */
  writes = 0;
  /** When set, the op at this index (0-based, in the next run) fails, to test atomicity. */
  failAt: number | undefined;

  async read(opts: { ipsets: readonly string[]; sysctls: readonly string[]; netfilterChains: Readonly<Record<string, readonly string[]>> }): Promise<ObservedKernel> {
    return structuredClone(this.view(opts));
  }

  /** Like read() but without the defensive copy: a read-only view, valid until the next run. */
  view(opts: { ipsets: readonly string[]; sysctls: readonly string[]; netfilterChains: Readonly<Record<string, readonly string[]>> }): ObservedKernel {
    const s = this.state;
    const nf: NetfilterObservation = { tables: parseIptablesSave(this.iptablesSave(), opts.netfilterChains) };
    return ({
      virtualServers: [...s.vs.values()],
      dummyDevice: s.dummyDevice,
      boundAddresses: [...s.addresses].sort(byCodeUnit),
      ipsets: opts.ipsets.filter((n) => s.sets.has(n)).map((n) => s.sets.get(n)!),
      netfilter: nf,
      sysctls: Object.fromEntries(opts.sysctls.filter((k) => k in s.sysctls).map((k) => [k, s.sysctls[k]!])),
    });
  }

  async readVirtualServers(keys: readonly VsKey[]): Promise<ObservedVirtualServer[]> {
    return structuredClone(keys.map((k) => this.state.vs.get(virtualServerKey(k))).filter((v) => !!v));
  }

  /**
   * A fake holding exactly what was observed. The dataplane keeps one as its model of the kernel
   * between full reads: it plans against it and runs each transaction on it after the kernel
   * accepted it, so an incremental change costs O(change), not a full dump.
   */
  /** Replaces (or adds) these services as read from the real kernel. */
  putVirtualServers(fresh: readonly ObservedVirtualServer[]): void {
    for (const v of structuredClone(fresh)) this.state.vs.set(virtualServerKey(v), { ...v, realServers: [...v.realServers] });
  }

  static fromObserved(o: ObservedKernel): FakeKernel {
    const k = new FakeKernel();
    const c = structuredClone(o);
    k.state = {
      vs: new Map(c.virtualServers.map((v) => [virtualServerKey(v), { ...v, realServers: [...v.realServers] }])),
      dummyDevice: c.dummyDevice, addresses: new Set(c.boundAddresses),
      sets: new Map(c.ipsets.map((s) => [s.name, { ...s, entries: [...s.entries] }])),
      netfilter: Object.fromEntries(Object.entries(c.netfilter.tables).map(([t, chains]) => [t, Object.fromEntries(Object.entries(chains).map(([ch, r]) => [ch, [...r]]))])),
      sysctls: { ...c.sysctls }, conntrackFlushes: [],
    };
    return k;
  }

  async run(tx: KernelTransaction): Promise<void> {
    const err = tx.validate();
    if (err) throw new TransactionError(err, 0);
    const copy = structuredClone(this.state);
    tx.ops.forEach((op, n) => {
      if (n === this.failAt) { this.failAt = undefined; throw new TransactionError(`${describeOp(op)}: injected failure`, 0); }
      const why = applyOp(copy, op);
      if (why) throw new TransactionError(`${describeOp(op)}: ${why}`, 0);
    });
    this.state = copy;
    this.lastTransaction = tx;
    this.transactions++;
    this.writes += tx.size;
  }

  /**
   * Applies without the atomic copy (O(change)); on error the fake is left half-changed, so only
   * for a model that is thrown away when it disagrees with the kernel.
   */
  runInPlace(tx: KernelTransaction): void {
    for (const op of tx.ops) {
      const why = applyOp(this.state, op);
      if (why) throw new TransactionError(`${describeOp(op)}: ${why}`, 0);
    }
    this.lastTransaction = tx;
    this.transactions++;
    this.writes += tx.size;
  }

  async close(): Promise<void> {}

  /** `ipvsadm -Sn` text (sorted). */
  ipvsadmSave(): string {
    return formatIpvsadm({ virtualServers: [...this.state.vs.values()].map((v) => ({ ...v, realServers: [...v.realServers].sort((a, b) => byCodeUnit(realServerKey(a), realServerKey(b))) })) as never });
  }

  /** `ipset save` text of every set, sorted by name, without initval. */
  ipsetSave(): string {
    const sets = [...this.state.sets.values()].sort((a, b) => byCodeUnit(a.name, b.name));
    return formatIpsetSave({ ipsets: sets as unknown as IpsetState[] });
  }

  /** `iptables-save`-like text of the tables we touched. */
  iptablesSave(): string {
    const out: string[] = [];
    for (const [table, chains] of Object.entries(this.state.netfilter)) {
      out.push(`*${table}`);
      for (const ch of Object.keys(chains)) out.push(`:${ch} - [0:0]`);
      for (const [ch, rules] of Object.entries(chains)) for (const r of rules) out.push(`-A ${ch} ${r}`);
      out.push('COMMIT');
    }
    return out.join('\n') + '\n';
  }

  addresses(): string[] { return [...this.state.addresses].sort(byCodeUnit); }
  sysctl(name: string): string | undefined { return this.state.sysctls[name]; }
  conntrackFlushes(): readonly string[] { return this.state.conntrackFlushes; }

  /** Behind-our-back changes (foreign tools, drift): applied directly, not counted as our writes. */
  external(...ops: KernelOp[]): void {
    for (const op of ops) {
      const why = applyOp(this.state, op);
      if (why) throw new Error(`${describeOp(op)}: ${why}`);
    }
  }

  /** Sets a real server's connection counters (what traffic would do). */
  setConnections(vs: string, rs: string, activeConns: number, inactiveConns: number): void {
    const r = this.state.vs.get(vs)?.realServers.find((x) => realServerKey(x) === rs);
    if (!r) throw new Error(`no real server ${rs} in ${vs}`);
    Object.assign(r, { activeConns, inactiveConns });
  }
}

function applyOp(s: FakeState, op: KernelOp): string | undefined {
  switch (op.kind) {
    case 'virtual-server': {
      const k = virtualServerKey(op.vs);
      const has = s.vs.has(k);
      if (op.verb === 'add' && has) return 'EEXIST';
      if (op.verb !== 'add' && !has) return 'ESRCH';
      if (op.verb === 'delete') { s.vs.delete(k); return; }
      const v = op.vs as ObservedVirtualServer;
      s.vs.set(k, {
        protocol: v.protocol, address: v.address, port: v.port, scheduler: v.scheduler,
        schedulerFlags: [...v.schedulerFlags].sort(), persistenceTimeout: v.persistenceTimeout,
        realServers: has ? s.vs.get(k)!.realServers : [],
      });
      return;
    }
    case 'real-server': {
      const v = s.vs.get(virtualServerKey(op.vs));
      if (!v) return 'ESRCH';
      const k = realServerKey(op.rs);
      const i = v.realServers.findIndex((r) => realServerKey(r) === k);
      if (op.verb === 'flush-conntrack') { s.conntrackFlushes.push(`${virtualServerKey(op.vs)}>${k}`); return; }
      if (op.verb === 'add' && i >= 0) return 'EEXIST';
      if (op.verb !== 'add' && i < 0) return 'ENOENT';
      if (op.verb === 'delete') { v.realServers.splice(i, 1); return; }
      const weight = 'weight' in op.rs ? op.rs.weight : 1;
      if (op.verb === 'add') v.realServers.push({ address: op.rs.address, port: op.rs.port, weight, activeConns: 0, inactiveConns: 0 });
      else v.realServers[i] = { ...v.realServers[i]!, weight };
      return;
    }
    case 'dummy-device':
      if (op.verb === 'create') { if (s.dummyDevice) return 'EEXIST'; s.dummyDevice = true; return; }
      if (!s.dummyDevice) return 'ENODEV';
      s.dummyDevice = false; s.addresses.clear(); return;
    case 'address':
      if (!s.dummyDevice) return 'ENODEV';
      if (op.verb === 'add') { if (s.addresses.has(op.address)) return 'EEXIST'; s.addresses.add(op.address); return; }
      if (!s.addresses.delete(op.address)) return 'EADDRNOTAVAIL';
      return;
    case 'ipset':
      if (op.verb === 'create') {
        if (s.sets.has(op.set.name)) return 'set already exists';
        s.sets.set(op.set.name, { ...op.set, entries: [] });
        return;
      }
      if (op.verb === 'destroy') {
        if (!s.sets.has(op.name)) return 'set does not exist';
        if (referenced(s, op.name)) return 'set is in use by a rule';
        s.sets.delete(op.name);
        return;
      } else {
        const a = s.sets.get(op.name), b = s.sets.get(op.other);
        if (!a || !b) return 'set does not exist';
        if (a.type !== b.type || a.family !== b.family) return 'incompatible set types';
        [a.entries, b.entries] = [b.entries, a.entries];
        return;
      }
    case 'ipset-entry': {
      const set = s.sets.get(op.set);
      if (!set) return 'set does not exist';
      const i = set.entries.indexOf(op.entry);
      if (op.verb === 'add') { if (i >= 0) return 'element already added'; set.entries.push(op.entry); set.entries.sort(byCodeUnit); return; }
      if (i < 0) return 'element not added';
      set.entries.splice(i, 1);
      return;
    }
    case 'netfilter': return restore(s, op.text);
    case 'sysctl':
      if (!(op.name in s.sysctls)) return 'ENOENT';
      s.sysctls[op.name] = op.value;
      return;
  }
}

function referenced(s: FakeState, set: string): boolean {
  return Object.values(s.netfilter).some((t) => Object.values(t).some((rules) => rules.some((r) => r.includes(`--match-set ${set} `))));
}

/** The subset of iptables-restore --noflush the planner emits: declare (flush), -A, -I, -D, -X. */
function restore(s: FakeState, text: string): string | undefined {
  let table: Record<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line === 'COMMIT') continue;
    if (line.startsWith('*')) { table = (s.netfilter[line.slice(1)] ??= {}); continue; }
    if (!table) return 'rule outside a table';
    const m = /^(:|-A |-I |-D |-X )(\S+)(?: (?:1 )?(.*))?$/.exec(line.startsWith(':') ? line.replace(/^:(\S+).*$/, ':$1') : line);
    if (!m) return `cannot parse ${line}`;
    const [, verb, chain, rule] = m as unknown as [string, string, string, string | undefined];
    if (verb === ':') { table[chain] = []; continue; }
    if (verb === '-X ') { if (!(chain in table)) return `no chain ${chain}`; delete table[chain]; continue; }
    const rules = (table[chain] ??= []);
    // Like iptables: a rule cannot match on a set that does not exist.
    for (const m of (verb === '-D ' ? '' : rule ?? '').matchAll(/--match-set (\S+)/g)) if (!s.sets.has(m[1]!)) return `Set ${m[1]} doesn't exist`;
    if (verb === '-A ') rules.push(rule!);
    else if (verb === '-I ') rules.unshift(rule!);
    else { const i = rules.indexOf(rule!); if (i < 0) return `no rule ${line}`; rules.splice(i, 1); }
  }
  return undefined;
}
