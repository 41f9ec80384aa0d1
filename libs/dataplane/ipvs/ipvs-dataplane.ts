import { release } from 'node:os';
import { Counter, register as defaultRegistry, type Registry } from 'prom-client';
import { IPVS_DUMMY_DEVICE, realServerKey, virtualServerKey, type NodeState } from '../../model/index.ts';
import {
  gaveWayOr,
  NOTHING_VERIFIED,
  ResyncYielded,
  type ApplyResult,
  type Dataplane,
  type NodeStateChange,
  type ResyncOptions,
  type RetireResult,
} from '../dataplane.ts';
import {
  extendsRecord,
  ownedIndex,
  recordAfterChange,
  recordWith,
  sameRecord,
  sliceChange,
  type OwnedIndex,
} from './change-slice.ts';
import { DEFAULT_DRAIN_TIMEOUT_MS } from './graceful-termination.ts';
import { KernelModel } from './kernel-model.ts';
import { narrowChange, type NarrowedService } from './narrowed-service.ts';
import type { KernelOp, VsKey } from './kernel-op.ts';
import { KernelTransaction, type KernelInterface } from './kernel-transaction.ts';
import type { ObservedKernel, ObservedVirtualServer } from './observed-kernel.ts';
import {
  glueChains,
  glueFamilies,
  isIPv6Set,
  netfilterGlue,
  splitTableKey,
  withGlueSets,
  withoutIPv6,
  type NetfilterGlue,
} from './netfilter-glue.ts';
import { nodeSysctls } from './node-sysctls.ts';
import { mergeRecords, type OwnershipRecord, type OwnershipStore } from './ownership-record.ts';
import { planKernelOps, type Plan } from './plan-kernel-ops.ts';
import { advanceIndex, diffStates, indexState, isKeyed, type IndexedState, type StateChange } from './state-change.ts';
import { validateParts, validateShape } from './validate-node-state.ts';
import { drainingLeft, retiringState, type DrainingLeft } from './retiring-state.ts';
import { verifyKernelState } from './verify-kernel-state.ts';

export interface IpvsDataplaneOptions {
  readonly kernel: KernelInterface;
  readonly store: OwnershipStore;
  readonly device?: string;
  /** ms since epoch; injectable for drain deadlines in tests. */
  readonly clock?: () => number;
  readonly drainTimeoutMs?: number;
  /** Membership changes above this rebuild a set aside and swap it in (default 1000). */
  readonly swapThreshold?: number;
  /** Kernel release for version-dependent sysctls (default os.release()). */
  readonly kernelRelease?: string;
  /**
   * Set net.ipv4.vs.run_estimation (IPVS rate estimators) to this on every full cycle (and verify
   * it); undefined (the default) leaves the kernel's setting as it is, as kube-proxy does.
   */
  readonly rateEstimation?: boolean;
  /** Manage the netfilter glue (default true). */
  readonly netfilter?: boolean;
  readonly registry?: Registry;
  readonly log?: (msg: string) => void;
}

const DRIFT_METRIC = 'switchboard_applier_drift_repairs_total';

/** Counter of resyncs that found and repaired drift (shared per registry). */
export function driftRepairsCounter(registry: Registry = defaultRegistry): Counter {
  const existing = registry.getSingleMetric(DRIFT_METRIC);
  if (existing) return existing as Counter;
  return new Counter({
    name: DRIFT_METRIC,
    help: 'Resyncs that found the kernel drifted from the applied state and repaired it',
    labelNames: ['mode'],
    registers: [registry],
  });
}

/**
 * The ipvs-mode dataplane: read the kernel, diff against the desired NodeState and what we own,
 * run one validated transaction, read back and verify. All decisions are in the pure planner.
 */
export class IpvsDataplane implements Dataplane {
  readonly mode = 'ipvs' as const;
  private last: NodeState | undefined;
  private owned: OwnedIndex | undefined;
  /**
   * The last state applied and verified, with the model of the kernel it left: an incremental
   * cycle plans the next state's difference from it. Undefined = the next cycle is a full one.
   */
  private base: { readonly indexed: IndexedState; readonly model: KernelModel } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** KernelInterface.ipv6Unsupported, asked once (on the first state with IPv6 or owned IPv6 chains). */
  private ipv6Probe: Promise<string | undefined> | undefined;
  private readonly drift: Counter;
  readonly device: string;
  /** Resyncs that repaired something (also exported as the prom-client counter). */
  driftRepairs = 0;

  constructor(private readonly options: IpvsDataplaneOptions) {
    this.device = options.device ?? IPVS_DUMMY_DEVICE;
    this.drift = driftRepairsCounter(options.registry);
  }

  apply(state: NodeState, change?: NodeStateChange): Promise<ApplyResult> {
    // Refuse before touching anything: what is programmed stays programmed. The objects are
    // checked in sync(), all of them or, after a verified state, only those that changed.
    const bad = validateShape(state);
    if (bad) return Promise.reject(new Error(`refusing invalid node state: ${bad}`));
    return this.serial(async () => {
      const r = await this.sync(state, false, change);
      // resync repairs towards `last`: only a state the read-back confirmed. After an unverified
      // cycle it stays the previous verified one (as after a throw), never the doubtful attempt.
      if (r.verified) this.last = state;
      return r;
    });
  }

  /**
   * `yieldTo`: gives way while it reads the kernel (between the read's steps: each dump in flight
   * ends first) or once it is read, before it plans, compares and writes.
   */
  resync(options?: ResyncOptions): Promise<ApplyResult> {
    return this.serial(async () => {
      // Nothing verified here yet: the kernel was never compared with anything, so say so.
      if (!this.last) return { kernelWrites: 0, verified: false, durationMs: 0, notes: [NOTHING_VERIFIED] };
      const r = await this.sync(this.last, true, undefined, false, options?.yieldTo);
      // A drain that ended (probe23: every removed TCP endpoint's, once its connections closed)
      // is deleted by whichever cycle comes next, often a resync: not drift.
      const repairs = r.kernelWrites - (r.scheduledWrites ?? 0);
      if (repairs > 0) {
        this.driftRepairs++;
        this.drift.inc({ mode: 'ipvs' });
        this.options.log?.(`resync repaired drift with ${repairs} writes`);
      }
      return r;
    });
  }

  /**
   * Moves on the drain of ipvs mode behind another mode that serves `state` (retiring-state.ts):
   * each TCP service still holding real servers keeps them at weight 0 until their connections
   * close or the drain timeout passes; everything else goes. Once no real server is left, the
   * rest goes as in cleanup(). Nothing here is a state to resync towards.
   */
  retire(state: NodeState): Promise<RetireResult> {
    const bad = validateShape(state);
    if (bad) return Promise.reject(new Error(`refusing invalid node state: ${bad}`));
    return this.serial(async () => {
      const t0 = performance.now();
      this.last = undefined;
      const r = await this.sync(state, true, undefined, true);
      this.base = undefined; // a retiring state is no base for an incremental apply
      const left = r.left ?? { realServers: 0, connections: 0 };
      if (!r.verified || left.realServers > 0) {
        const { left: _, ...rest } = r;
        return { ...rest, removed: false, connections: left.connections, durationMs: performance.now() - t0 };
      }
      const c = await this.sync(undefined, true);
      return {
        kernelWrites: r.kernelWrites + c.kernelWrites,
        scheduledWrites: (r.scheduledWrites ?? 0) + c.kernelWrites,
        verified: c.verified,
        notes: [...r.notes, ...c.notes],
        removed: c.verified,
        connections: 0,
        durationMs: performance.now() - t0,
      };
    });
  }

  cleanup(): Promise<ApplyResult> {
    return this.serial(async () => {
      const r = await this.sync(undefined, true);
      this.last = undefined;
      return r;
    });
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    await this.options.kernel.close();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async sync(
    requested: NodeState | undefined,
    full: boolean,
    hint?: NodeStateChange,
    retiring = false,
    yieldTo?: AbortSignal,
  ): Promise<ApplyResult & { left?: DrainingLeft }> {
    const t0 = performance.now();
    this.owned ??= ownedIndex(await this.options.store.load());
    const servable = requested && (await this.servable(requested));
    const wanted = servable?.state;
    const base = this.base;
    // Whatever happens below, only a verified cycle leaves a base to plan the next one from.
    this.base = undefined;
    const change = wanted && !full && base ? diffStates(base.indexed, wanted, hint) : undefined;
    // a large service's change is planned and checked on the real servers it touches
    const narrowed =
      change && base ? narrowChange(change, base.indexed.byKey, base.model) : new Map<string, NarrowedService>();
    if (wanted) {
      // (a narrowed service's other real servers are the verified state's: validated then)
      const bad = change
        ? validateParts(
            change.virtualServers.map((v) => (isKeyed(v) && narrowed.get(virtualServerKey(v))?.desired) || v),
            change.addedAddresses,
            change.ipsets,
          )
        : validateParts(wanted.virtualServers, wanted.boundAddresses, wanted.ipsets);
      if (bad) {
        if (change) this.base = base; // nothing was touched: the base still holds
        throw new Error(`refusing invalid node state: ${bad}`);
      }
    }
    let r: Awaited<ReturnType<typeof this.syncFull>>;
    try {
      r =
        change && base
          ? await this.syncChange(wanted!, change, base, narrowed)
          : await this.syncFull(wanted, retiring, yieldTo && { signal: yieldTo, since: t0 });
    } catch (e) {
      if (e instanceof ResyncYielded) this.base = base; // nothing was written: the base still holds
      throw e;
    }
    const notes = servable?.note ? [...r.notes, servable.note] : r.notes;
    return { ...r, notes, durationMs: performance.now() - t0 };
  }

  /**
   * `wanted` as this node can serve it: where the IPv6 glue cannot be programmed (no IPv6, no
   * ip6tables), without its IPv6 part, with a note. Fail closed, as kube-proxy runs single-stack
   * there: an IPv6 service served without its glue would ignore its loadBalancerSourceRanges.
   */
  private async servable(wanted: NodeState): Promise<{ state: NodeState; note?: string }> {
    if (this.options.netfilter === false || !glueFamilies(wanted).includes('IPv6')) return { state: wanted };
    const why = await this.ipv6Unsupported();
    if (why === undefined) return { state: wanted };
    const { state, left } = withoutIPv6(wanted);
    return { state, note: `IPv6 not programmed (${why}): ${left} IPv6 virtual server(s) not served, IPv4 is` };
  }

  private ipv6Unsupported(): Promise<string | undefined> {
    this.ipv6Probe ??= this.options.kernel.ipv6Unsupported?.() ?? Promise.resolve(undefined);
    return this.ipv6Probe;
  }

  /**
   * A full cycle (first apply, resync, cleanup, anything after a failure or an unverified cycle,
   * a settings change): dumps the kernel, plans everything, runs, dumps again and verifies.
   */
  private async syncFull(
    requested: NodeState | undefined,
    retiring = false,
    giveWay?: { readonly signal: AbortSignal; readonly since: number },
  ): Promise<Omit<ApplyResult, 'durationMs'> & { left?: DrainingLeft }> {
    const { record, forgotten } = await this.reachableRecord(this.owned!.record);
    let wanted = requested;
    let { glue, desired, sysctls } = this.withGlue(wanted);
    const readOpts = {
      ipsets: [...new Set([...(desired?.ipsets ?? []).map((s) => s.name), ...record.ipsets])],
      device: this.device,
      sysctls: Object.keys(sysctls),
      netfilterChains: mergeChains(glue ? glueChains(glue) : {}, record.netfilterChains),
    };
    const observed = await this.options.kernel.read(readOpts, giveWay?.signal).catch((e: unknown) => {
      throw gaveWayOr(e, giveWay?.signal, giveWay?.since ?? 0);
    });
    // the last point before anything is written
    if (giveWay?.signal.aborted) throw new ResyncYielded(performance.now() - giveWay.since);
    if (retiring && wanted) {
      // what is kept depends on what the kernel holds (read with what `requested` names: a superset)
      wanted = retiringState(wanted, observed);
      ({ glue, desired, sysctls } = this.withGlue(wanted));
    }
    const plan = this.plan(desired, observed, record, glue, sysctls);
    await this.run(plan.ops, plan.recordBefore);
    if (JSON.stringify(plan.recordAfter) !== JSON.stringify(this.owned!.record)) await this.save(plan.recordAfter);
    const notes = notesOf(plan);
    if (forgotten) notes.push(forgotten);
    if (!desired) return { kernelWrites: plan.ops.length, verified: true, notes };
    const back = plan.ops.length > 0 ? await this.options.kernel.read(readOpts) : observed;
    const mismatches = verifyKernelState(desired, back, glue, sysctls);
    notes.push(...mismatches.slice(0, 10).map((m) => `verify: ${m}`));
    const verified = mismatches.length === 0;
    if (verified && !retiring) {
      const indexed = indexState(wanted!);
      // desired = wanted + the glue's sets: the model shares what the kernel was verified to hold
      this.base = { indexed, model: KernelModel.fromObserved(back, { state: desired, byKey: indexed.byKey }) };
    }
    return {
      kernelWrites: plan.ops.length,
      // a retiring cycle's writes are its schedule, never a repair
      ...(retiring
        ? { scheduledWrites: plan.ops.length, left: drainingLeft(desired, back) }
        : plan.drainsEnded > 0
          ? { scheduledWrites: plan.drainsEnded }
          : {}),
      verified,
      notes,
    };
  }

  /** `wanted` with the netfilter glue, its sets and the sysctls ipvs mode sets for it. */
  private withGlue(wanted: NodeState | undefined): {
    glue: NetfilterGlue | undefined;
    desired: NodeState | undefined;
    sysctls: Readonly<Record<string, string>>;
  } {
    const glue: NetfilterGlue | undefined =
      wanted && this.options.netfilter !== false ? netfilterGlue(wanted.settings, glueFamilies(wanted)) : undefined;
    const desired = wanted && withGlueSets(wanted, glue);
    const sysctls = desired
      ? nodeSysctls(desired.settings, this.options.kernelRelease ?? release(), this.options.rateEstimation)
      : {};
    return { glue, desired, sysctls };
  }

  /**
   * The record without IPv6 chains when the node can no longer have them (IPv6 or ip6tables gone
   * since they were written): they can be neither read nor removed, so they are forgotten, said,
   * and so are the KUBE-6-* sets, which their rules still reference (the kernel refuses to destroy
   * a referenced set).
   */
  private async reachableRecord(record: OwnershipRecord): Promise<{ record: OwnershipRecord; forgotten?: string }> {
    const ipv4 = Object.entries(record.netfilterChains).filter(([k]) => splitTableKey(k).family === 'IPv4');
    if (ipv4.length === Object.keys(record.netfilterChains).length) return { record };
    const why = await this.ipv6Unsupported();
    if (why === undefined) return { record };
    return {
      record: {
        ...record,
        netfilterChains: Object.fromEntries(ipv4),
        ipsets: record.ipsets.filter((n) => !isIPv6Set(n)),
      },
      forgotten: `IPv6 netfilter chains and KUBE-6-* sets left as they are (${why})`,
    };
  }

  /**
   * An incremental cycle: plans only the change from the last verified state against the model
   * (no dump); reads live only the small services losing real servers (the drain decision needs
   * real connection counters; a large one drains them unread) and, afterwards, the services whose
   * spec it wrote, compared with the model (its real-server writes are checked by the kernel's
   * answer to each; see below).
   * O(change), apart from the pointer walk that finds the change when the caller did not hand it
   * over (see diffStates).
   */
  private async syncChange(
    wanted: NodeState,
    change: StateChange,
    base: NonNullable<IpvsDataplane['base']>,
    narrowed: ReadonlyMap<string, NarrowedService>,
  ): Promise<Omit<ApplyResult, 'durationMs'>> {
    const { model } = base;
    const owned = this.owned!;
    const slice = sliceChange(wanted, change, model, owned, narrowed);
    let observed = slice.observed;
    // (an endpoint added reads nothing: no kernel call, not even an empty one, which costs an
    // await chain of its own). A large service is not read even then: its removed real servers
    // drain on unknown counters, decided at the next full cycle (narrowed-service.ts).
    const losing = shrinking(slice.desired, observed).filter((k) => !narrowed.has(virtualServerKey(k)));
    const live = losing.length > 0 ? await this.options.kernel.readVirtualServers(losing) : [];
    if (live.length > 0) observed = { ...observed, virtualServers: replaceByKey(observed.virtualServers, live) };
    const plan = this.plan(slice.desired, observed, slice.record, undefined, {});
    const after = recordAfterChange(owned, slice, plan.recordAfter, change);
    // Saved before the run when it may create or start something the record lacks: the record
    // with the slice's superset (which holds whatever `after` adds), O(change) unless a list
    // gains an object. A drain that starts makes it equal to `after`, saved once.
    const before =
      plan.ops.length > 0 && extendsRecord(owned, plan.recordBefore) ? recordWith(owned, plan.recordBefore) : undefined;
    // What checks a change's real-server writes is the kernel's answer to each: IPVS refuses to
    // add a destination it has and to edit or delete one it lacks, so a write accepted confirms
    // what the model believed of exactly that real server, and one refused fails the transaction
    // (the base is dropped, the next cycle is full and repairs). They are not read back: the
    // dump of the service's destinations sent behind them was half of a one-endpoint change (~5 of
    // ~10 ms at 10k services in the test VM) and checked only the real servers the change did not
    // write, which the next full read compares (the periodic resync), as it does every untouched
    // service. A service whose spec the transaction wrote (added, edited) is read back whole: its
    // attributes are what the kernel may hold otherwise than written. A narrowed (large) service
    // is not, even then: reading it whole is dumping its thousands of destinations; its spec is
    // compared at the next full read.
    const touched = specWritten(plan.ops).filter((k) => !narrowed.has(virtualServerKey(k)));
    await this.run(plan.ops, before);
    if (after && !(before && sameRecord(before, after))) await this.save(after);
    const notes = notesOf(plan);
    if (plan.ops.length === 0) {
      this.base = { indexed: advanceIndex(base.indexed, wanted, change), model };
      return { kernelWrites: 0, verified: true, notes };
    }
    const disagreement = model.apply(plan.ops);
    // The kernel accepted what the model refuses: the model was wrong; read in full next time.
    if (disagreement)
      return {
        kernelWrites: plan.ops.length,
        verified: false,
        notes: [...notes, `verify: model disagreed with the kernel (${disagreement})`],
      };
    // One pass over what was touched: each service read back is checked in place against the
    // model (which the writes advanced), and the slice is verified against those same read
    // objects (the model's for the rest of it), not against copies of the model's entries. A
    // read-back that differs leaves the cycle unverified, and with it the model is dropped (only
    // a verified cycle keeps a base): nothing to correct in it.
    const back = touched.length > 0 ? await this.options.kernel.readVirtualServers(touched) : [];
    const read = new Map<string, ObservedVirtualServer>();
    for (const v of back) {
      const key = virtualServerKey(v);
      read.set(key, v);
      if (!model.holds(v)) notes.push(`verify: read-back of ${key} differs from what was written`);
    }
    if (back.length !== touched.filter((k) => model.hasVirtualServer(virtualServerKey(k))).length)
      notes.push('verify: read-back service count differs');
    const mismatches = verifyKernelState(
      slice.desired,
      {
        ...slice.observed,
        virtualServers: slice.desired.virtualServers
          .map((v) => {
            const key = virtualServerKey(v);
            return read.get(key) ?? model.virtualServer(key, narrowed.get(key)?.keys);
          })
          .filter((v): v is ObservedVirtualServer => !!v),
        boundAddresses: slice.desired.boundAddresses.filter((a) => model.hasAddress(a)),
        ipsets: change.ipsets.map((s) => model.ipset(s.name)).filter((s) => !!s),
      },
      undefined,
      {},
    );
    notes.push(...mismatches.slice(0, 10).map((m) => `verify: ${m}`));
    const verified = !notes.some((n) => n.startsWith('verify:'));
    if (verified) this.base = { indexed: advanceIndex(base.indexed, wanted, change), model };
    return { kernelWrites: plan.ops.length, verified, notes };
  }

  private plan(
    desired: NodeState | undefined,
    observed: ObservedKernel,
    record: OwnershipRecord,
    glue: NetfilterGlue | undefined,
    sysctls: Readonly<Record<string, string>>,
  ): Plan {
    return planKernelOps({
      desired,
      observed,
      record,
      glue,
      sysctls,
      device: this.device,
      now: (this.options.clock ?? Date.now)(),
      drainTimeoutMs: this.options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
      swapThreshold: this.options.swapThreshold ?? 1000,
    });
  }

  /**
   * Validates and runs the ops, saving `recordBefore` first when given (a superset: a crash
   * mid-run can make us believe we own something absent, never forget something we created).
   * A refused op leaves the ops before it applied (netlink has no transactions); the error goes
   * up and, the base being gone, the next cycle is a full one that reads what is there.
   */
  private async run(ops: readonly KernelOp[], recordBefore: OwnershipRecord | undefined): Promise<void> {
    if (ops.length === 0) return;
    const tx = new KernelTransaction().addAll(ops);
    const bad = tx.validate();
    if (bad) throw new Error(`refusing transaction: ${bad}`);
    if (recordBefore) await this.save(recordBefore);
    await this.options.kernel.run(tx);
  }

  private async save(record: OwnershipRecord): Promise<void> {
    await this.options.store.save(record);
    this.owned = ownedIndex(record, this.owned);
  }
}

function notesOf(plan: Plan): string[] {
  const notes = [...plan.notes];
  if (plan.draining > 0) notes.push(`${plan.draining} real server(s) draining`);
  return notes;
}

/** Desired services whose observed real servers include some not desired (their counters must be live). */
function shrinking(desired: NodeState, observed: ObservedKernel): VsKey[] {
  const have = new Map(observed.virtualServers.map((v) => [virtualServerKey(v), v]));
  const out: VsKey[] = [];
  for (const vs of desired.virtualServers) {
    const h = have.get(virtualServerKey(vs));
    if (!h || h.realServers.length === 0) continue;
    const want = new Set(vs.realServers.map((r) => realServerKey(r)));
    if (h.realServers.some((r) => !want.has(realServerKey(r)))) out.push(vs);
  }
  return out;
}

/** The services whose spec a transaction writes (added, edited or deleted), once each. */
function specWritten(ops: readonly KernelOp[]): VsKey[] {
  const keys = new Map<string, VsKey>();
  for (const op of ops) if (op.kind === 'virtual-server') keys.set(virtualServerKey(op.vs), op.vs);
  return [...keys.values()];
}

function replaceByKey(
  all: readonly ObservedVirtualServer[],
  fresh: readonly ObservedVirtualServer[],
): ObservedVirtualServer[] {
  const f = new Map(fresh.map((v) => [virtualServerKey(v), v]));
  return all.map((v) => f.get(virtualServerKey(v)) ?? v);
}

function mergeChains(
  a: Readonly<Record<string, readonly string[]>>,
  b: Readonly<Record<string, readonly string[]>>,
): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [t, c] of [...Object.entries(a), ...Object.entries(b)]) out[t] = [...new Set([...(out[t] ?? []), ...c])];
  return out;
}
