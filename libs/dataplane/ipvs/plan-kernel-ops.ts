import { createHash } from 'node:crypto';
import {
  byCodeUnit,
  cidrContains,
  DEFAULT_IPSET_MAXELEM,
  ipsetRoomFor,
  parseCidr,
  realServerKey,
  virtualServerKey,
  type Cidr,
  type IpsetState,
  type NodeState,
  type VirtualServer,
} from '../../model/index.ts';
import { decideRemoval, drainingKey } from './graceful-termination.ts';
import type { KernelOp, VirtualServerSpec } from './kernel-op.ts';
import type { NetfilterGlue } from './netfilter-glue.ts';
import type { ObservedIpset, ObservedKernel, ObservedVirtualServer } from './observed-kernel.ts';
import type { OwnershipRecord } from './ownership-record.ts';
import { planNetfilter } from './plan-netfilter.ts';

/**
 * BULK_LOOPS: why the planner (and the validation and verification that run beside it) walks
 * whole states with forEach/map/filter rather than with for-loops in its own body. The same
 * function plans a from-empty load (10k services: its loops run long enough for V8 to compile
 * them on-stack, "OSR") and then every one-endpoint change. Node 20's V8 keeps such OSR code
 * cached per loop and enters it again on the next call's first loop iteration, even after that
 * code deoptimized: it was compiled halfway through the big load, before the code after the loop
 * had ever run, so each later call deoptimized at once ("insufficient type feedback"), every
 * change, forever (3-4 deoptimizations per change on the host, `node --trace-deopt
 * --trace-osr`; each one much dearer under emulation). A builtin's loop is never compiled
 * on-stack, and a callback is optimized and, when it deoptimizes, replaced like any function.
 */

/** Everything the diff needs; all plain data, so the plan is a pure function of it. */
export interface PlanInput {
  /** undefined = cleanup: remove everything we own. */
  readonly desired: NodeState | undefined;
  readonly observed: ObservedKernel;
  readonly record: OwnershipRecord;
  readonly glue: NetfilterGlue | undefined;
  readonly sysctls: Readonly<Record<string, string>>;
  readonly device: string;
  readonly now: number;
  readonly drainTimeoutMs: number;
  /** Membership changes larger than this rebuild the set in a temp set and swap it in. */
  readonly swapThreshold: number;
}

export interface Plan {
  readonly ops: KernelOp[];
  /** Save this before running the ops (a superset: what we may own once they ran). */
  readonly recordBefore: OwnershipRecord;
  /** Save this after the ops succeeded. */
  readonly recordAfter: OwnershipRecord;
  /** Real servers still draining (weight 0, connections open). */
  readonly draining: number;
  /**
   * Of `ops`, the deletions of real servers whose drain an earlier cycle started and which has
   * now ended (no connections left, or the deadline): the dataplane's own schedule, not drift.
   */
  readonly drainsEnded: number;
  readonly notes: string[];
}

/** Name of the temporary set used to rebuild `name` and swap it in (<= 31 chars, deterministic). */
export function tempSetName(name: string): string {
  return `SBT-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

/** The spec fields alone (of a VirtualServer, or of any object that has them). */
export function vsSpec(vs: VirtualServerSpec): VirtualServerSpec {
  return {
    protocol: vs.protocol,
    address: vs.address,
    port: vs.port,
    scheduler: vs.scheduler,
    schedulerFlags: vs.schedulerFlags,
    persistenceTimeout: vs.persistenceTimeout,
  };
}

export function sameVsSpec(a: VirtualServerSpec, b: VirtualServerSpec): boolean {
  return (
    a.scheduler === b.scheduler &&
    a.persistenceTimeout === b.persistenceTimeout &&
    a.schedulerFlags.join(',') === [...b.schedulerFlags].sort().join(',')
  );
}

/** observed kernel + desired node state + what we own → the minimal ordered list of writes. */
export function planKernelOps(i: PlanInput): Plan {
  const notes: string[] = [];
  const d = i.desired;
  const excluded = (d?.settings.excludeCIDRs ?? []).map((c) => parseCidr(c)).filter((c): c is Cidr => !!c);
  const isExcluded = (addr: string) => excluded.some((c) => cidrContains(c, addr));
  const ownedVs = new Set(i.record.virtualServers);
  const ownedAddr = new Set(i.record.addresses);
  const ownedSets = new Set(i.record.ipsets);

  const pre: KernelOp[] = [],
    sets: KernelOp[] = [],
    vsOps: KernelOp[] = [],
    rsOps: KernelOp[] = [];
  const vsDel: KernelOp[] = [],
    addrOps: KernelOp[] = [],
    nf: KernelOp[] = [],
    post: KernelOp[] = [];

  // Sysctls (only keys that exist: absent ones mean the module is not loaded; say so).
  if (d) {
    for (const [name, value] of Object.entries(i.sysctls)) {
      const cur = i.observed.sysctls[name];
      if (cur === undefined) notes.push(`sysctl ${name} not present; not set`);
      else if (cur.trim() !== value) pre.push({ verb: 'set', kind: 'sysctl', name, value });
    }
  }

  // Dummy device.
  let createdDevice = i.record.dummyDevice;
  if (d && !i.observed.dummyDevice) {
    pre.push({ verb: 'create', kind: 'dummy-device', name: i.device });
    createdDevice = true;
  }

  // ipsets: ours are the desired ones plus those in the record (and leftover temp sets).
  const observedSets = new Map(i.observed.ipsets.map((s) => [s.name, s]));
  const desiredSets = new Map((d?.ipsets ?? []).map((s) => [s.name, s]));
  const tempNames: string[] = [];
  for (const set of desiredSets.values())
    planSet(set, observedSets.get(set.name), i.swapThreshold, sets, post, tempNames, notes);
  for (const name of ownedSets) {
    if (!desiredSets.has(name) && observedSets.has(name)) post.push({ verb: 'destroy', kind: 'ipset', name });
  }

  // IPVS.
  // The loops over state-sized collections below (and in the helpers) go through callbacks
  // (forEach, map, filter, concat), not for-loops of this function's own: see BULK_LOOPS.
  const observedVs = new Map(i.observed.virtualServers.map((v) => [virtualServerKey(v), v]));
  const draining: Record<string, number> = {};
  let drainsEnded = 0;
  (d?.virtualServers ?? []).forEach((vs) => {
    const key = virtualServerKey(vs);
    const have = observedVs.get(key);
    if (!have) {
      vsOps.push({ verb: 'add', kind: 'virtual-server', vs: vsSpec(vs) });
      vs.realServers.forEach((rs) => {
        rsOps.push({ verb: 'add', kind: 'real-server', vs, rs });
      });
      return;
    }
    if (!ownedVs.has(key)) notes.push(`adopted existing IPVS service ${key}`);
    if (!sameVsSpec(have, vsSpec(vs))) vsOps.push({ verb: 'edit', kind: 'virtual-server', vs: vsSpec(vs) });
    drainsEnded += planRealServers(vs, have, i, rsOps, draining);
  });
  const desiredVs = new Set((d?.virtualServers ?? []).map((v) => virtualServerKey(v)));
  observedVs.forEach((have, key) => {
    if (desiredVs.has(key) || !ownedVs.has(key)) return;
    if (isExcluded(have.address)) {
      notes.push(`kept ${key}: inside excludeCIDRs`);
      return;
    }
    vsDel.push({ verb: 'delete', kind: 'virtual-server', vs: have });
  });

  // Addresses on the dummy device.
  const bound = new Set(i.observed.boundAddresses);
  const want = new Set(d?.boundAddresses ?? []);
  want.forEach((a) => {
    if (!bound.has(a)) addrOps.push({ verb: 'add', kind: 'address', device: i.device, address: a });
  });
  bound.forEach((a) => {
    if (want.has(a) || !ownedAddr.has(a)) return;
    if (isExcluded(a)) {
      notes.push(`kept address ${a}: inside excludeCIDRs`);
      return;
    }
    addrOps.push({ verb: 'delete', kind: 'address', device: i.device, address: a });
  });

  // Netfilter glue (one atomic restore), before set destroys so no rule still references them.
  for (const family of ['IPv4', 'IPv6'] as const) {
    const text = planNetfilter(i.glue, i.observed.netfilter, i.record.netfilterChains, family);
    if (text) nf.push({ verb: 'restore', kind: 'netfilter', family, text });
  }

  if (!d && i.record.dummyDevice && i.observed.dummyDevice)
    post.push({ verb: 'delete', kind: 'dummy-device', name: i.device });

  const chains = i.glue
    ? Object.fromEntries(Object.entries(i.glue.chains).map(([t, c]) => [t, Object.keys(c).sort()]))
    : {};
  const recordAfter: OwnershipRecord = {
    version: 1,
    virtualServers: Array.from(desiredVs).sort(byCodeUnit),
    addresses: Array.from(want).sort(byCodeUnit),
    ipsets: [...desiredSets.keys()].sort(byCodeUnit),
    dummyDevice: d ? createdDevice : false,
    netfilterChains: chains,
    draining,
  };
  const u = sortedUnion;
  const recordBefore: OwnershipRecord = {
    version: 1,
    virtualServers: u(i.record.virtualServers, recordAfter.virtualServers),
    addresses: u(i.record.addresses, recordAfter.addresses),
    ipsets: u(u(i.record.ipsets, recordAfter.ipsets), tempNames),
    dummyDevice: i.record.dummyDevice || recordAfter.dummyDevice,
    netfilterChains: mergeChains(i.record.netfilterChains, chains),
    draining: { ...i.record.draining, ...draining },
  };
  // Order: settings and device, sets (rules may reference them), services, their real servers,
  // removed services, addresses (a VIP is bound once its service exists), glue, set teardown.
  const ops = pre.concat(sets, vsOps, rsOps, vsDel, addrOps, nf, post);
  return { ops, recordBefore, recordAfter, draining: Object.keys(draining).length, drainsEnded, notes };
}

function planRealServers(
  vs: VirtualServer,
  have: ObservedVirtualServer,
  i: PlanInput,
  out: KernelOp[],
  draining: Record<string, number>,
): number {
  const vsKey = virtualServerKey(vs);
  let drainsEnded = 0;
  const observed = new Map(have.realServers.map((r) => [realServerKey(r), r]));
  for (const rs of vs.realServers) {
    const cur = observed.get(realServerKey(rs));
    if (!cur) out.push({ verb: 'add', kind: 'real-server', vs, rs });
    else if (cur.weight !== rs.weight) out.push({ verb: 'edit', kind: 'real-server', vs, rs });
  }
  const wanted = new Set(vs.realServers.map((r) => realServerKey(r)));
  for (const [rsKey, cur] of observed) {
    if (wanted.has(rsKey)) continue;
    const dk = drainingKey(vsKey, rsKey);
    const r = decideRemoval({
      protocol: vs.protocol,
      observed: cur,
      drainingSince: i.record.draining[dk],
      now: i.now,
      drainTimeoutMs: i.drainTimeoutMs,
    });
    const rs = { address: cur.address, port: cur.port };
    switch (r.action) {
      case 'delete':
        out.push({ verb: 'delete', kind: 'real-server', vs, rs });
        if (i.record.draining[dk] !== undefined) drainsEnded++;
        break;
      case 'delete-and-flush-conntrack':
        out.push(
          { verb: 'delete', kind: 'real-server', vs, rs },
          { verb: 'flush-conntrack', kind: 'real-server', vs, rs },
        );
        break;
      case 'set-weight-zero':
        out.push({ verb: 'edit', kind: 'real-server', vs, rs: { ...rs, weight: 0 } });
        draining[dk] = r.since;
        break;
      case 'wait':
        draining[dk] = r.since;
        break;
    }
  }
  return drainsEnded;
}

function planSet(
  set: IpsetState,
  have: ObservedIpset | undefined,
  threshold: number,
  out: KernelOp[],
  post: KernelOp[],
  temps: string[],
  notes: string[],
): void {
  const spec = { name: set.name, type: set.type, ...(set.family ? { family: set.family } : {}) };
  const add = (name: string, entry: string): KernelOp => ({
    verb: 'add',
    kind: 'ipset-entry',
    set: name,
    type: set.type,
    entry,
  });
  if (have && (have.type !== set.type || have.family !== set.family)) {
    notes.push(`ipset ${set.name} has type ${have.type} ${have.family ?? ''}; recreating`);
    out.push({ verb: 'destroy', kind: 'ipset', name: set.name });
    have = undefined;
  }
  const maxElem = set.type === 'bitmap:port' ? undefined : ipsetRoomFor(set.entries.length);
  const room = maxElem === undefined ? {} : { maxElem };
  if (!have) {
    out.push({ verb: 'create', kind: 'ipset', set: spec, ...room });
    set.entries.forEach((e) => {
      out.push(add(set.name, e));
    });
    return;
  }
  const cur = new Set(have.entries);
  const want = new Set(set.entries);
  const adds = set.entries.filter((e) => !cur.has(e));
  const dels = have.entries.filter((e) => !want.has(e));
  // a set created for fewer entries than now wanted would refuse the rest: rebuilt with room
  const full =
    set.type !== 'bitmap:port' && set.entries.length > (have.maxElem ?? DEFAULT_IPSET_MAXELEM) && adds.length > 0;
  if (full)
    notes.push(
      `ipset ${set.name} takes at most ${have.maxElem ?? DEFAULT_IPSET_MAXELEM} entries, ${set.entries.length} wanted: rebuilt with maxelem ${maxElem ?? DEFAULT_IPSET_MAXELEM}`,
    );
  if (full || (adds.length + dels.length > threshold && adds.length + dels.length > set.entries.length / 2)) {
    // Rebuild aside and swap: referencing rules see the old or the new set, never a half-changed one.
    const tmp = tempSetName(set.name);
    temps.push(tmp);
    out.push({ verb: 'create', kind: 'ipset', set: { ...spec, name: tmp }, ...room });
    set.entries.forEach((e) => {
      out.push(add(tmp, e));
    });
    out.push(
      { verb: 'swap', kind: 'ipset', name: set.name, other: tmp },
      { verb: 'destroy', kind: 'ipset', name: tmp },
    );
    return;
  }
  adds.forEach((e) => {
    out.push(add(set.name, e));
  });
  dels.forEach((e) => {
    out.push({ verb: 'delete', kind: 'ipset-entry', set: set.name, type: set.type, entry: e });
  });
}

/** a ∪ b, sorted. */
function sortedUnion(a: readonly string[], b: readonly string[]): string[] {
  const all = new Set(a);
  b.forEach((x) => {
    all.add(x);
  });
  return Array.from(all).sort(byCodeUnit);
}

function mergeChains(
  a: Readonly<Record<string, readonly string[]>>,
  b: Readonly<Record<string, readonly string[]>>,
): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [t, c] of [...Object.entries(a), ...Object.entries(b)])
    out[t] = [...new Set([...(out[t] ?? []), ...c])].sort();
  return out;
}
