import { deleteFlow } from '../conntrack-cleanup.ts';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { byCodeUnit, virtualServerKey, type IpFamily } from '../../model/index.ts';
import {
  IpsetBatchError,
  IpsetClient,
  IPVS_LISTING_PATH,
  IpvsClient,
  LinkClient,
  NetlinkError,
  parseIpvsListing,
  entryFromText,
  entryToText,
  type IpsetEntry,
  type IpsetType,
  type IpvsDestination,
  type IpvsService,
  type IpvsServiceFlag,
  type Link,
} from '../../netlink/index.ts';
import { describeOp, type KernelOp, type VirtualServerSpec, type VsKey } from './kernel-op.ts';
import {
  concurrentGroups,
  type KernelTransaction,
  TransactionError,
  type KernelInterface,
} from './kernel-transaction.ts';
import { observeNetfilter } from './netfilter-glue.ts';
import { sysctlPath } from './node-sysctls.ts';
import type { ObservedIpset, ObservedKernel, ObservedRealServer, ObservedVirtualServer } from './observed-kernel.ts';

export interface NetlinkKernelOptions {
  /**
   * In-flight window per netlink socket (default 256, see DESIGN: the package aborts on
   * overflow). With one ack per datagram, 256 in flight are 2 datagrams and 2 acks; even if
   * every request were refused, the 256 errors (each echoing its ~150-byte request) stay well
   * under the ~416 KiB receive buffer the kernel grants at its default rmem_max.
   */
  readonly window?: number;
  /**
   * Requests per datagram (default 128, one ack for all of them: NetlinkConnection
   * coalesceAcks). Per datagram the kernel and the JS side pay a syscall and an ack; in the VM
   * bench 128 halved the time of the real-server writes against 32.
   */
  readonly batch?: number;
  /** iptables-save / iptables-restore binaries (default from PATH). */
  readonly iptablesSave?: string;
  readonly iptablesRestore?: string;
  /** ip6tables-save / ip6tables-restore binaries, for the IPv6 glue (default from PATH). */
  readonly ip6tablesSave?: string;
  readonly ip6tablesRestore?: string;
  /** IPVS sockets that share the destination dumps of a read (default 4). */
  readonly dumpSockets?: number;
  /**
   * Where a full read takes every service's destinations from: the kernel's text listing
   * (default /proc/self/net/ip_vs, one read) or, with false, one netlink dump per service. A
   * listing that cannot be read or parsed falls back to the dumps, and so does any service the
   * netlink service dump has that the listing lacks.
   */
  readonly ipvsListing?: string | false;
  /**
   * Bytes of the fixed buffer each IPVS socket reads a datagram into (default false: peek each
   * datagram's size first, the `netlink` package's default). With it a datagram costs one
   * recvmsg instead of two, and the kernel puts up to that much of a dump in one datagram: one
   * endpoint change's read-back (a service's destinations) comes as one datagram and NLMSG_DONE
   * instead of three. IPVS answers are bounded by it (NetlinkConnectionOptions.receiveBuffer).
   * Off by default: in the VM bench no gain showed through a loaded host, and each datagram then
   * holds a buffer of this size until collected (docs/benchmarks-history.md, Applier (ipvs), eighth round).
   */
  readonly ipvsReceiveBuffer?: number | false;
}

/** See NetlinkKernelOptions.ipvsReceiveBuffer. */
export const DEFAULT_IPVS_RECEIVE_BUFFER: number | false = false;

/**
 * The real kernel, in the current network namespace: IPVS and ipsets over netlink through the
 * bounded-window clients, kube-ipvs0 and its addresses over rtnetlink, the netfilter glue with
 * one `iptables-restore --noflush`, sysctls through /proc/sys, conntrack cleanup through the
 * conntrack tool. Runs of same-kind ops go out concurrently (the client windows them).
 */
export class NetlinkKernel implements KernelInterface {
  private nextDumper = 0;
  /** Most requests of a group queued in JS at once (4 windows: enough to keep every datagram full). */
  private readonly maxQueued: number;

  private constructor(
    private readonly ipvs: IpvsClient,
    /**
     * More IPVS sockets for the per-service destination dumps of a full read: the kernel runs one
     * dump per socket at a time, so on one socket 10k services meant 10k dumps back to back.
     */
    private readonly dumpers: readonly IpvsClient[],
    private readonly ipset: IpsetClient,
    private readonly links: LinkClient,
    private readonly options: NetlinkKernelOptions,
  ) {
    this.maxQueued = 4 * (options.window ?? DEFAULT_WINDOW);
  }

  static async open(o: NetlinkKernelOptions = {}): Promise<NetlinkKernel> {
    const window = o.window ?? DEFAULT_WINDOW;
    const batch = o.batch ?? DEFAULT_BATCH;
    const big = 8 << 20;
    const buffer = o.ipvsReceiveBuffer ?? DEFAULT_IPVS_RECEIVE_BUFFER;
    const receiveBuffer = buffer === false ? {} : { receiveBuffer: buffer };
    const opened: { close(): void }[] = [];
    try {
      const ipvs = await IpvsClient.open({ window, batch, recvBufferSize: big, sendBufferSize: big, ...receiveBuffer });
      opened.push(ipvs);
      const dumpers: IpvsClient[] = [ipvs];
      for (let i = 1; i < (o.dumpSockets ?? 4); i++) {
        dumpers.push(await IpvsClient.open({ window, recvBufferSize: big, ...receiveBuffer }));
        opened.push(dumpers[i]!);
      }
      const ipset = await IpsetClient.open({ window, batch, recvBufferSize: big, sendBufferSize: big });
      opened.push(ipset);
      return new NetlinkKernel(ipvs, dumpers, ipset, LinkClient.open({ window, batch }), o);
    } catch (e) {
      for (const c of opened) c.close();
      throw e;
    }
  }

  async read(
    opts: {
      ipsets: readonly string[];
      device: string;
      sysctls: readonly string[];
      netfilterChains: Readonly<Record<string, readonly string[]>>;
    },
    signal?: AbortSignal,
  ): Promise<ObservedKernel> {
    // Giving way (`signal`): between steps, never inside a dump (each finishes on its socket).
    // At 10k × 10 in the VM the steps at once took ~2.5 s, then the addresses' dump ~1 s.
    const [virtualServers, link, ipsets, netfilter, sysctls] = await Promise.all([
      this.readIpvs(signal),
      this.links.getLink(opts.device),
      this.readSets(opts.ipsets),
      this.readNetfilter(opts.netfilterChains),
      readSysctls(opts.sysctls),
    ]);
    signal?.throwIfAborted();
    const boundAddresses = link
      ? (await this.links.listAddresses(opts.device)).map((a) => a.address).sort(byCodeUnit)
      : [];
    return { virtualServers, dummyDevice: !!link, boundAddresses, ipsets, netfilter: { tables: netfilter }, sysctls };
  }

  async readVirtualServers(keys: readonly VsKey[]): Promise<ObservedVirtualServer[]> {
    const out = await Promise.all(
      keys.map(async (k): Promise<ObservedVirtualServer | undefined> => {
        // Both at once: one round trip. Whatever the dump says about a missing service does not
        // matter: getService says it is missing.
        const [s, dests] = await Promise.all([
          this.ipvs.getService(k, NO_STATS),
          this.dumper()
            .listDestinations(k, NO_STATS)
            .catch((e: Error) => e),
        ]);
        if (!s) return undefined;
        if (dests instanceof Error) throw dests;
        return { ...specOf(s), realServers: dests.map(observedDest) };
      }),
    );
    return out.filter((v): v is ObservedVirtualServer => !!v);
  }

  /**
   * Runs the groups of tx in order: each goes out at once, bounded by the socket window; a
   * failure stops before the next group, and what the kernel accepted stays applied (netlink has
   * no transactions).
   */
  async run(tx: KernelTransaction): Promise<void> {
    const err = tx.validate();
    if (err) throw new TransactionError(err, 0);
    let applied = 0;
    for (const group of concurrentGroups(tx.ops)) {
      // One lookup of the device for a run of address ops, not one per address.
      const first = group[0]!;
      const link = first.kind === 'address' ? await this.links.getLink(first.device) : undefined;
      let results: PromiseSettledResult<void>[];
      if (first.kind === 'ipset-entry') {
        results = await this.runSetEntries(group as SetEntryOp[]);
      } else if (group.length <= this.maxQueued) {
        results = await Promise.allSettled(group.map((op) => this.applyOp(op, link)));
      } else {
        // A bulk group (a from-empty load: 100k real servers) is fed a bounded number at a time:
        // queued all at once, its 100k requests, payloads and promises were live together and
        // the garbage collector's work on that heap grew faster than the load (1.6 ms per real
        // server at 10k services against 0.6 ms at 1k in the VM).
        results = await settleInLanes(group, (op) => this.applyOp(op, link), this.maxQueued);
      }
      const failed = results.findIndex((r) => r.status === 'rejected');
      applied += results.filter((r) => r.status === 'fulfilled').length;
      if (failed >= 0) {
        const reason = (results[failed] as PromiseRejectedResult).reason as Error;
        throw new TransactionError(`${describeOp(group[failed]!)}: ${reason.message}`, applied);
      }
    }
  }

  /**
   * A run of set-entry ops, up to ENTRIES_PER_MESSAGE consecutive elements of one set per
   * message (as `ipset restore` sends them; one request each was most of the JS cost of a load's
   * set entries). The outcome per op, like Promise.allSettled: the kernel stops a message at the
   * element it refuses, so the ops before it are applied and those after it were not tried.
   */
  private async runSetEntries(group: readonly SetEntryOp[]): Promise<PromiseSettledResult<void>[]> {
    const out = new Array<PromiseSettledResult<void>>(group.length);
    const chunks: [number, number][] = [];
    for (let i = 0; i < group.length; ) {
      const set = group[i]!.set;
      let j = i + 1;
      while (j < group.length && j - i < ENTRIES_PER_MESSAGE && group[j]!.set === set) j++;
      chunks.push([i, j]);
      i = j;
    }
    const sendChunk = async ([from, to]: [number, number]): Promise<void> => {
      let refused = 0;
      try {
        const entries: IpsetEntry[] = [];
        for (let i = from; i < to; i++) {
          refused = i - from;
          entries.push(entryFromText(group[i]!.type, group[i]!.entry));
        }
        refused = 0;
        const op = group[from]!;
        await (op.verb === 'add' ? this.ipset.addBatch(op.set, entries) : this.ipset.delBatch(op.set, entries));
        for (let i = from; i < to; i++) out[i] = FULFILLED;
      } catch (reason) {
        if (reason instanceof IpsetBatchError) refused = reason.index;
        for (let i = from; i < to; i++) {
          const k = i - from;
          out[i] =
            k < refused
              ? FULFILLED
              : {
                  status: 'rejected',
                  reason: k === refused ? reason : new Error('not tried: refused with its message'),
                };
        }
      }
    };
    await settleInLanes(chunks, sendChunk, this.maxQueued);
    return out;
  }

  async close(): Promise<void> {
    for (const d of this.dumpers) d.close();
    this.ipset.close();
    this.links.close();
  }

  /** The IPVS socket for the next dump, round robin. */
  private dumper(): IpvsClient {
    return this.dumpers[this.nextDumper++ % this.dumpers.length]!;
  }

  private async readIpvs(signal?: AbortSignal): Promise<ObservedVirtualServer[]> {
    // The services (with their flags, which the text listing lacks) from one netlink dump; their
    // destinations from the listing, read at the same time: one read instead of a dump per
    // service (10k dumps took ~30 s of a 10k x 10 load from empty in the VM; the listing ~1 s).
    const [all, listed] = await Promise.all([this.ipvs.listServices(NO_STATS), this.readListing(signal)]);
    signal?.throwIfAborted(); // before any dump per service a missing listing would cost
    const services = all.filter((s) => s.fwmark === undefined || s.fwmark === 0);
    return Promise.all(
      services.map(async (s) => ({
        ...specOf(s),
        realServers:
          listed?.get(virtualServerKey(s)) ?? (await this.dumper().listDestinations(s, NO_STATS)).map(observedDest),
      })),
    );
  }

  /** Every listed service's real servers by virtualServerKey, or undefined when the listing is off or unreadable. */
  private async readListing(signal?: AbortSignal): Promise<Map<string, ObservedRealServer[]> | undefined> {
    const path = this.options.ipvsListing ?? IPVS_LISTING_PATH;
    if (path === false) return undefined;
    let text: string;
    try {
      text = await readFile(path, { encoding: 'latin1', ...(signal ? { signal } : {}) });
    } catch (e) {
      if (signal?.aborted) throw e; // gave way: not "no listing", which would cost a dump per service
      return undefined; // no procfs, IPVS not loaded: the dumps say it all
    }
    signal?.throwIfAborted(); // before the parse (~0.6 s at 10k × 10 in the VM)
    try {
      const out = new Map<string, ObservedRealServer[]>();
      for (const s of parseIpvsListing(text)) {
        if (!s.protocol || s.address === undefined || s.port === undefined) continue;
        out.set(
          virtualServerKey({ protocol: s.protocol, address: s.address, port: s.port }),
          s.destinations.map(observedDest),
        );
      }
      return out;
    } catch {
      return undefined; // a format we do not know: the dumps say it all
    }
  }

  private async readSets(names: readonly string[]): Promise<ObservedIpset[]> {
    const out = await Promise.all(
      names.map(async (name): Promise<ObservedIpset | undefined> => {
        try {
          const [set] = await this.ipset.list(name);
          if (!set) return undefined;
          const type = set.header.type as IpsetType;
          return {
            name,
            type,
            ...(type === 'bitmap:port' ? {} : { family: set.header.family ?? 'inet' }),
            entries: set.entries.map((e) => entryToText(type, e)).sort(byCodeUnit),
            ...(set.header.maxElem === undefined ? {} : { maxElem: set.header.maxElem }),
          };
        } catch (e) {
          if (
            e instanceof NetlinkError &&
            (e.code === 'ENOENT' || e.code === 'IPSET_ERR_PROTOCOL' || /does not exist/.test(e.message))
          )
            return undefined;
          throw e;
        }
      }),
    );
    return out.filter((s): s is ObservedIpset => !!s);
  }

  private readNetfilter(
    chains: Readonly<Record<string, readonly string[]>>,
  ): Promise<Record<string, Record<string, string[]>>> {
    return observeNetfilter(chains, (family, table) => exec(this.tool(family, 'save'), ['-t', table]));
  }

  private tool(family: IpFamily, verb: 'save' | 'restore'): string {
    const o = this.options;
    if (family === 'IPv6') return (verb === 'save' ? o.ip6tablesSave : o.ip6tablesRestore) ?? `ip6tables-${verb}`;
    return (verb === 'save' ? o.iptablesSave : o.iptablesRestore) ?? `iptables-${verb}`;
  }

  /** See KernelInterface.ipv6Unsupported (the dataplane asks once and keeps the answer). */
  ipv6Unsupported(): Promise<string | undefined> {
    return probeIpv6Netfilter(this.tool('IPv6', 'save'));
  }

  private async applyOp(op: KernelOp, link: Link | undefined): Promise<void> {
    switch (op.kind) {
      case 'virtual-server':
        if (op.verb === 'delete') return this.ipvs.deleteService(op.vs);
        return op.verb === 'add' ? this.ipvs.addService(serviceOf(op.vs)) : this.ipvs.editService(serviceOf(op.vs));
      case 'real-server': {
        if (op.verb === 'delete') return this.ipvs.deleteDestination(op.vs, op.rs);
        if (op.verb === 'flush-conntrack')
          return deleteFlow({ protocol: op.vs.protocol, address: op.vs.address, port: op.vs.port, endpoint: op.rs });
        const dest: IpvsDestination = {
          address: op.rs.address,
          port: op.rs.port,
          weight: op.rs.weight,
          forward: 'masq',
          upperThreshold: 0,
          lowerThreshold: 0,
        };
        return op.verb === 'add' ? this.ipvs.addDestination(op.vs, dest) : this.ipvs.editDestination(op.vs, dest);
      }
      case 'dummy-device':
        if (op.verb === 'create') {
          await this.links.ensureDummy(op.name);
          return;
        }
        return this.links.deleteLink(op.name);
      case 'address': {
        const on = link?.name === op.device ? link : op.device;
        return op.verb === 'add' ? this.links.addAddress(on, op.address) : this.links.deleteAddress(on, op.address);
      }
      case 'ipset':
        if (op.verb === 'create') {
          return this.ipset.create({
            name: op.set.name,
            type: op.set.type,
            ...(op.set.type === 'bitmap:port'
              ? { range: { from: 0, to: 65535 } }
              : { family: op.set.family ?? 'inet', ...(op.maxElem === undefined ? {} : { maxElem: op.maxElem }) }),
          });
        }
        return op.verb === 'destroy' ? this.ipset.destroy(op.name) : this.ipset.swap(op.name, op.other);
      case 'ipset-entry':
        throw new Error('set entries run in batches (runSetEntries)');
      case 'netfilter':
        await exec(this.tool(op.family, 'restore'), ['--noflush'], op.text);
        return;
      case 'sysctl':
        return writeFile(sysctlPath(op.name), op.value + '\n');
    }
  }
}

const DEFAULT_WINDOW = 256;
/**
 * Set elements per ipset message. ipset restore packs a message buffer full; here a refused
 * message comes back echoed in full in its error, and a window (256) of 32-element messages
 * (~1.3 KiB each for hash:ip,port) stays under the ~416 KiB receive buffer the kernel grants at
 * its default rmem_max even if every one of them were refused.
 */
const ENTRIES_PER_MESSAGE = 32;
const FULFILLED: PromiseFulfilledResult<void> = { status: 'fulfilled', value: undefined };

type SetEntryOp = Extract<KernelOp, { kind: 'ipset-entry' }>;
const DEFAULT_BATCH = 128;

/**
 * Runs fn over items with at most `limit` pending at once, each next one started as one
 * settles; the outcomes in item order, like Promise.allSettled (every item runs, failed or not).
 */
export async function settleInLanes<T>(
  items: readonly T[],
  fn: (item: T) => Promise<void>,
  limit: number,
): Promise<PromiseSettledResult<void>[]> {
  const out = new Array<PromiseSettledResult<void>>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!);
        out[i] = FULFILLED;
      } catch (reason) {
        out[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** Listings for the dataplane: it reads specs and connection counts, never traffic counters. */
const NO_STATS = { stats: false } as const;

function observedDest(d: Omit<IpvsDestination, 'upperThreshold' | 'lowerThreshold'>): ObservedRealServer {
  return {
    address: d.address,
    port: d.port,
    weight: d.weight,
    activeConns: d.activeConns ?? 0,
    inactiveConns: d.inactiveConns ?? 0,
  };
}

const FLAG_BITS: Record<string, IpvsServiceFlag> = { fallback: 'sched-flag-1', port: 'sched-flag-2' };

export function serviceOf(vs: VirtualServerSpec): IpvsService {
  const flags: IpvsServiceFlag[] = vs.schedulerFlags
    .map((f) => FLAG_BITS[f.split('-')[1] ?? ''])
    .filter((f): f is IpvsServiceFlag => !!f);
  if (vs.persistenceTimeout > 0) flags.push('persistent');
  return {
    protocol: vs.protocol,
    address: vs.address,
    port: vs.port,
    scheduler: vs.scheduler,
    flags,
    timeout: vs.persistenceTimeout,
    netmask: vs.address.includes(':') ? 128 : 0xffffffff,
  };
}

export function specOf(s: IpvsService): VirtualServerSpec {
  const flags: string[] = [];
  if (s.flags.includes('sched-flag-1')) flags.push(`${s.scheduler}-fallback`);
  if (s.flags.includes('sched-flag-2')) flags.push(`${s.scheduler}-port`);
  return {
    protocol: s.protocol,
    address: s.address,
    port: s.port,
    scheduler: s.scheduler,
    schedulerFlags: flags.sort(),
    persistenceTimeout: s.flags.includes('persistent') ? s.timeout : 0,
  };
}

async function readSysctls(names: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  await Promise.all(
    names.map(async (n) => {
      try {
        out[n] = (await readFile(sysctlPath(n), 'utf8')).trim();
      } catch {
        /* absent: module not loaded */
      }
    }),
  );
  return out;
}

/**
 * Why this network namespace cannot have the IPv6 glue, or undefined when it can: IPv6 is off in
 * the kernel (no /proc/sys/net/ipv6: ipv6.disable=1) or for its interfaces
 * (net.ipv6.conf.all.disable_ipv6=1: no IPv6 address can be bound to kube-ipvs0), or
 * `ip6tables-save -t nat` fails (the tool or the kernel's ip6tables nat table is missing).
 */
export async function probeIpv6Netfilter(ip6tablesSave = 'ip6tables-save'): Promise<string | undefined> {
  let disabled: string;
  try {
    disabled = (await readFile(sysctlPath('net.ipv6.conf.all.disable_ipv6'), 'utf8')).trim();
  } catch {
    return 'IPv6 is disabled in this kernel (no /proc/sys/net/ipv6)';
  }
  if (disabled !== '0') return 'IPv6 is disabled here (net.ipv6.conf.all.disable_ipv6=1)';
  try {
    await exec(ip6tablesSave, ['-t', 'nat']);
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

function exec(file: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      if (err)
        reject(
          new Error(`${file} ${args.join(' ')}: ${(stderr || err.message).trim().split('\n').slice(0, 3).join(' | ')}`),
        );
      else resolve(stdout);
    });
    // A tool that exits before reading its input makes the write fail with EPIPE; its exit code
    // reports the failure, and an unhandled stream error would crash the process.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}
