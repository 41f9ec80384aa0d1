// Test double of the ipvs dataplane's kernel (KernelInterface), faithful to how the real one
// (NetlinkKernel over netlink) fails: there are no transactions. Ops run in the same concurrent
// groups as NetlinkKernel.run; when one is refused, every op before it stays applied, the other
// ops of its group are applied too (they were already in flight), and nothing after the group
// runs. Refusals carry the kernel's errno as a NetlinkError, as the netlink clients raise them.
// Refusals can be injected at the K-th op or for chosen objects.
//
// Its state and error semantics are written here, apart from the dataplane's own KernelModel,
// so a wrong belief in the model cannot hide itself behind the same code in the fake.
import { constants } from 'node:os';
import { byCodeUnit, realServerKey, virtualServerKey, type IpFamily, type IpsetState } from '../../libs/model/index.ts';
import { formatIpsetSave, formatIpvsadm } from '../../libs/planner/index.ts';
import { describeIpsetError, NetlinkError } from '../../libs/netlink/index.ts';
import {
  concurrentGroups,
  describeOp,
  observeNetfilter,
  splitTableKey,
  tableKey,
  TransactionError,
  type KernelInterface,
  type KernelOp,
  type KernelTransaction,
  type NetfilterObservation,
  type ObservedIpset,
  type ObservedKernel,
  type ObservedRealServer,
  type ObservedVirtualServer,
  type VsKey,
} from '../../libs/dataplane/index.ts';

interface FakeState {
  vs: Map<string, ObservedVirtualServer & { realServers: ObservedRealServer[] }>;
  dummyDevice: boolean;
  addresses: Set<string>;
  sets: Map<string, ObservedIpset & { entries: string[] }>;
  /** table key (tableKey: "nat", "ip6:nat") → chain → rule lines. */
  netfilter: Record<string, Record<string, string[]>>;
  sysctls: Record<string, string>;
  conntrackFlushes: string[];
}

/** An injected refusal: which ops, with which errno (a name of os.constants.errno or an IPSET_ERR_* code). */
export interface Refusal {
  /** Refuse the op at this index of the next run (0-based). */
  readonly at?: number;
  /** Refuse every op this matches (e.g. `(op) => op.kind === 'real-server'`). */
  readonly match?: (op: KernelOp) => boolean;
  readonly errno: string;
  /** How many ops to refuse before the rule goes away (default: unlimited for `match`, 1 for `at`). */
  readonly times?: number;
}

type RefusalRule = { at?: number; match?: (op: KernelOp) => boolean; errno: string; left: number };

export class FakeIpvsKernel implements KernelInterface {
  private state: FakeState = {
    vs: new Map(),
    dummyDevice: false,
    addresses: new Set(),
    sets: new Map(),
    netfilter: {},
    sysctls: {
      'net.ipv4.vs.conntrack': '0',
      'net.ipv4.vs.expire_nodest_conn': '0',
      'net.ipv4.vs.expire_quiescent_template': '0',
      'net.ipv4.vs.conn_reuse_mode': '1',
      'net.ipv4.ip_forward': '0',
      'net.ipv4.conf.all.arp_ignore': '0',
      'net.ipv4.conf.all.arp_announce': '0',
      'net.ipv4.vs.run_estimation': '1', // the kernel's default (5.16+)
    },
    conntrackFlushes: [],
  };
  private refusals: RefusalRule[] = [];
  lastTransaction: KernelTransaction | undefined;
  /** Runs that reached the kernel (validated), failed or not. */
  transactions = 0;
  /** Ops applied over the fake's life (refused ones not counted). */
  writes = 0;

  /** Makes the fake refuse ops (see Refusal); rules add up until they are used up or cleared. */
  refuse(r: Refusal): this {
    this.refusals.push({
      at: r.at,
      match: r.match,
      errno: r.errno,
      left: r.times ?? (r.at !== undefined ? 1 : Infinity),
    });
    return this;
  }

  clearRefusals(): void {
    this.refusals = [];
  }

  async read(opts: {
    ipsets: readonly string[];
    sysctls: readonly string[];
    netfilterChains: Readonly<Record<string, readonly string[]>>;
  }): Promise<ObservedKernel> {
    const s = this.state;
    const nf: NetfilterObservation = {
      tables: await observeNetfilter(opts.netfilterChains, (family) => this.iptablesSave(family)),
    };
    return structuredClone({
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

  async run(tx: KernelTransaction): Promise<void> {
    const err = tx.validate();
    if (err) throw new TransactionError(err, 0);
    this.transactions++;
    this.lastTransaction = tx;
    let index = 0;
    let applied = 0;
    try {
      for (const group of concurrentGroups(tx.ops)) {
        let failed: { op: KernelOp; error: Error } | undefined;
        for (const op of group) {
          const error = this.refusalFor(op, index++) ?? applyOp(this.state, op);
          if (error) failed ??= { op, error };
          else applied++;
        }
        if (failed) throw new TransactionError(`${describeOp(failed.op)}: ${failed.error.message}`, applied);
      }
    } finally {
      this.writes += applied;
      // `at` rules count ops within one run: they end with it.
      this.refusals = this.refusals.filter((r) => r.left > 0 && r.at === undefined);
    }
  }

  /** What ipv6Unsupported answers (undefined: IPv6 glue can be programmed). */
  ipv6Missing: string | undefined;

  async ipv6Unsupported(): Promise<string | undefined> {
    return this.ipv6Missing;
  }

  async close(): Promise<void> {}

  /** `ipvsadm -Sn` text (sorted). */
  ipvsadmSave(): string {
    return formatIpvsadm({
      virtualServers: [...this.state.vs.values()].map((v) => ({
        ...v,
        realServers: [...v.realServers].sort((a, b) => byCodeUnit(realServerKey(a), realServerKey(b))),
      })) as never,
    });
  }

  /** `ipset save` text of every set, sorted by name, without initval. */
  ipsetSave(): string {
    const sets = [...this.state.sets.values()].sort((a, b) => byCodeUnit(a.name, b.name));
    return formatIpsetSave({ ipsets: sets as unknown as IpsetState[] });
  }

  /** `iptables-save`-like text of the tables we touched (`ip6tables-save` for IPv6). */
  iptablesSave(family: IpFamily = 'IPv4'): string {
    const out: string[] = [];
    for (const [key, chains] of Object.entries(this.state.netfilter)) {
      const { family: f, table } = splitTableKey(key);
      if (f !== family) continue;
      out.push(`*${table}`);
      for (const ch of Object.keys(chains)) out.push(`:${ch} - [0:0]`);
      for (const [ch, rules] of Object.entries(chains)) for (const r of rules) out.push(`-A ${ch} ${r}`);
      out.push('COMMIT');
    }
    return out.join('\n') + '\n';
  }

  addresses(): string[] {
    return [...this.state.addresses].sort(byCodeUnit);
  }
  sysctl(name: string): string | undefined {
    return this.state.sysctls[name];
  }
  conntrackFlushes(): readonly string[] {
    return this.state.conntrackFlushes;
  }

  /** Behind-our-back changes (foreign tools, drift): applied directly, not counted as our writes. */
  external(...ops: KernelOp[]): void {
    for (const op of ops) {
      const error = applyOp(this.state, op);
      if (error) throw new Error(`${describeOp(op)}: ${error.message}`);
    }
  }

  /** Sets a real server's connection counters (what traffic would do). */
  setConnections(vs: string, rs: string, activeConns: number, inactiveConns: number): void {
    const r = this.state.vs.get(vs)?.realServers.find((x) => realServerKey(x) === rs);
    if (!r) throw new Error(`no real server ${rs} in ${vs}`);
    Object.assign(r, { activeConns, inactiveConns });
  }

  private refusalFor(op: KernelOp, index: number): Error | undefined {
    const r = this.refusals.find((x) => x.left > 0 && (x.at !== undefined ? x.at === index : x.match!(op)));
    if (!r) return undefined;
    r.left--;
    return kernelError(op, r.errno);
  }
}

/** The error a netlink client raises for `code` on this op (NetlinkError with the kernel's errno). */
function kernelError(op: KernelOp, code: string): Error {
  const operation = describeOp(op);
  if (code.startsWith('IPSET_ERR_')) {
    const errno = IPSET_ERRNO[code];
    if (errno === undefined) throw new Error(`unknown ipset error ${code}`);
    const d = describeIpsetError(errno, op.kind === 'ipset-entry' ? (op.verb === 'add' ? 'add' : 'del') : 'create');
    return new NetlinkError(operation, errno, d.code, d.detail);
  }
  const errno = (constants.errno as Record<string, number>)[code];
  if (errno === undefined) throw new Error(`unknown errno ${code}`);
  return NetlinkError.fromErrno(operation, errno);
}

const IPSET_ERRNO: Record<string, number> = {
  IPSET_ERR_EXIST: 4103,
  IPSET_ERR_REFERENCED: 4108,
  IPSET_ERR_TYPE_MISMATCH: 4102,
  IPSET_ERR_HASH_FULL: 4352,
};

/** One op with the kernel's semantics (ip_vs_ctl.c, ip_set_core.c, rtnetlink), as NetlinkKernel drives it. */
function applyOp(s: FakeState, op: KernelOp): Error | undefined {
  const fail = (code: string) => kernelError(op, code);
  switch (op.kind) {
    case 'virtual-server': {
      const k = virtualServerKey(op.vs);
      const has = s.vs.has(k);
      if (op.verb === 'add' && has) return fail('EEXIST');
      if (op.verb !== 'add' && !has) return fail('ESRCH');
      if (op.verb === 'delete') {
        s.vs.delete(k);
        return undefined;
      }
      const v = op.vs as ObservedVirtualServer;
      s.vs.set(k, {
        protocol: v.protocol,
        address: v.address,
        port: v.port,
        scheduler: v.scheduler,
        schedulerFlags: [...v.schedulerFlags].sort(),
        persistenceTimeout: v.persistenceTimeout,
        realServers: has ? s.vs.get(k)!.realServers : [],
      });
      return undefined;
    }
    case 'real-server': {
      if (op.verb === 'flush-conntrack') {
        s.conntrackFlushes.push(`${virtualServerKey(op.vs)}>${realServerKey(op.rs)}`);
        return undefined;
      }
      const v = s.vs.get(virtualServerKey(op.vs));
      if (!v) return fail('ESRCH');
      const k = realServerKey(op.rs);
      const i = v.realServers.findIndex((r) => realServerKey(r) === k);
      if (op.verb === 'add' && i >= 0) return fail('EEXIST');
      if (op.verb !== 'add' && i < 0) return fail('ENOENT');
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
      // NetlinkKernel's create is LinkClient.ensureDummy: an existing dummy device is fine.
      if (op.verb === 'create') {
        s.dummyDevice = true;
        return undefined;
      }
      if (!s.dummyDevice) return fail('ENODEV');
      s.dummyDevice = false;
      s.addresses.clear();
      return undefined;
    case 'address':
      if (!s.dummyDevice) return fail('ENODEV');
      if (op.verb === 'add') {
        if (s.addresses.has(op.address)) return fail('EEXIST');
        s.addresses.add(op.address);
        return undefined;
      }
      return s.addresses.delete(op.address) ? undefined : fail('EADDRNOTAVAIL');
    case 'ipset':
      if (op.verb === 'create') {
        if (s.sets.has(op.set.name)) return fail('EEXIST');
        // as the kernel: a hash set takes at most its maxelem entries (65,536 unless given; the
        // kernel may take a few more before it refuses: this fake never does)
        s.sets.set(op.set.name, {
          ...op.set,
          entries: [],
          ...(op.set.type === 'bitmap:port' ? {} : { maxElem: op.maxElem ?? 65_536 }),
        });
        return undefined;
      }
      if (op.verb === 'destroy') {
        if (!s.sets.has(op.name)) return fail('ENOENT');
        if (referenced(s, op.name)) return fail('IPSET_ERR_REFERENCED');
        s.sets.delete(op.name);
        return undefined;
      } else {
        const a = s.sets.get(op.name),
          b = s.sets.get(op.other);
        if (!a || !b) return fail('ENOENT');
        if (a.type !== b.type || a.family !== b.family) return fail('IPSET_ERR_TYPE_MISMATCH');
        // the kernel swaps the sets under the names, their sizes with them
        [a.entries, b.entries] = [b.entries, a.entries];
        const room = a.maxElem;
        s.sets.set(op.name, { ...a, maxElem: b.maxElem });
        s.sets.set(op.other, { ...b, maxElem: room });
        return undefined;
      }
    case 'ipset-entry': {
      const set = s.sets.get(op.set);
      if (!set) return fail('ENOENT');
      // kept sorted: where the entry is or goes (a set of 70,000 entries loads in sorted order, at the end)
      const i = sortedIndex(set.entries, op.entry);
      const held = set.entries[i] === op.entry;
      if (op.verb === 'add') {
        if (held) return fail('IPSET_ERR_EXIST');
        if (set.maxElem !== undefined && set.entries.length >= set.maxElem) return fail('IPSET_ERR_HASH_FULL');
        set.entries.splice(i, 0, op.entry);
        return undefined;
      }
      if (!held) return fail('IPSET_ERR_EXIST');
      set.entries.splice(i, 1);
      return undefined;
    }
    case 'netfilter': {
      const why = restore(s, op.family, op.text);
      return why
        ? new Error(`${op.family === 'IPv6' ? 'ip6tables' : 'iptables'}-restore --noflush: ${why}`)
        : undefined;
    }
    case 'sysctl':
      if (!(op.name in s.sysctls)) return fail('ENOENT');
      s.sysctls[op.name] = op.value;
      return undefined;
  }
}

function referenced(s: FakeState, set: string): boolean {
  return Object.values(s.netfilter).some((t) =>
    Object.values(t).some((rules) => rules.some((r) => r.includes(`--match-set ${set} `))),
  );
}

/**
 * The subset of iptables-restore --noflush the planner emits: declare (flush), -A, -I, -D, -X.
 * Atomic per restore, like iptables-restore: a bad line leaves every table as it was.
 */
function restore(s: FakeState, family: IpFamily, text: string): string | undefined {
  const next = structuredClone(s.netfilter);
  let table: Record<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (line === '' || line === 'COMMIT') continue;
    if (line.startsWith('*')) {
      table = next[tableKey(family, line.slice(1))] ??= {};
      continue;
    }
    if (!table) return 'rule outside a table';
    const m = /^(:|-A |-I |-D |-X )(\S+)(?: (?:1 )?(.*))?$/.exec(
      line.startsWith(':') ? line.replace(/^:(\S+).*$/, ':$1') : line,
    );
    if (!m) return `cannot parse ${line}`;
    const [, verb, chain, rule] = m as unknown as [string, string, string, string | undefined];
    if (verb === ':') {
      table[chain] = [];
      continue;
    }
    if (verb === '-X ') {
      if (!(chain in table)) return `no chain ${chain}`;
      delete table[chain];
      continue;
    }
    const rules = (table[chain] ??= []);
    // Like iptables: a rule cannot match on a set that does not exist.
    for (const m of (verb === '-D ' ? '' : (rule ?? '')).matchAll(/--match-set (\S+)/g))
      if (!s.sets.has(m[1]!)) return `Set ${m[1]} doesn't exist`;
    if (verb === '-A ') rules.push(rule!);
    else if (verb === '-I ') rules.unshift(rule!);
    else {
      const i = rules.indexOf(rule!);
      if (i < 0) return `no rule ${line}`;
      rules.splice(i, 1);
    }
  }
  s.netfilter = next;
  return undefined;
}

/** The first index of sorted `xs` (by code unit) whose entry is not below `x`. */
function sortedIndex(xs: readonly string[], x: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (byCodeUnit(xs[mid] ?? '', x) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
