import { release } from 'node:os';
import { Counter, register as defaultRegistry, type Registry } from 'prom-client';
import { realServerKey, virtualServerKey, type IpsetState, type NodeState, type VirtualServer } from '../../model/index.ts';
import { IPVS_DUMMY_DEVICE } from '../../model/index.ts';
import type { ApplyResult, Dataplane } from '../dataplane.ts';
import { DEFAULT_DRAIN_TIMEOUT_MS } from './graceful-termination.ts';
import { FakeKernel } from './fake-kernel.ts';
import type { KernelOp, VsKey } from './kernel-op.ts';
import { KernelTransaction, type KernelInterface } from './kernel-transaction.ts';
import type { ObservedKernel, ObservedVirtualServer } from './observed-kernel.ts';
import { sameVsSpec } from './plan-kernel-ops.ts';
import { glueChains, netfilterGlue, withGlueSets, type NetfilterGlue } from './netfilter-glue.ts';
import { nodeSysctls } from './node-sysctls.ts';
import type { OwnershipRecord, OwnershipStore } from './ownership-record.ts';
import { planKernelOps } from './plan-kernel-ops.ts';
import { validateNodeState } from './validate-node-state.ts';
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
  /** Manage the netfilter glue (default true). */
  readonly netfilter?: boolean;
  /** Periodic resync interval; 0/undefined = none. */
  readonly resyncIntervalMs?: number;
  readonly registry?: Registry;
  readonly log?: (msg: string) => void;
}

const DRIFT_METRIC = 'switchboard_applier_drift_repairs_total';

/** Counter of resyncs that found and repaired drift (shared per registry). */
export function driftRepairsCounter(registry: Registry = defaultRegistry): Counter {
  const existing = registry.getSingleMetric(DRIFT_METRIC);
  if (existing) return existing as Counter;
  return new Counter({ name: DRIFT_METRIC, help: 'Resyncs that found the kernel drifted from the applied state and repaired it', labelNames: ['mode'], registers: [registry] });
}

/**
 * The ipvs-mode dataplane: read the kernel, diff against the desired NodeState and what we own,
 * run one validated transaction, read back and verify. All decisions are in the pure planner.
 */
export class IpvsDataplane implements Dataplane {
  readonly mode = 'ipvs' as const;
  private last: NodeState | undefined;
  private record: OwnershipRecord | undefined;
  /** What the kernel holds as far as we know (see sync); undefined = read it in full next time. */
  private model: FakeKernel | undefined;
  /** Objects of the last verified state, by identity: unchanged ones are skipped while the model is current. */
  private known = new WeakSet<object>();
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly drift: Counter;
  readonly device: string;
  /** Resyncs that repaired something (also exported as the prom-client counter). */
  driftRepairs = 0;

  constructor(private readonly o: IpvsDataplaneOptions) {
    this.device = o.device ?? IPVS_DUMMY_DEVICE;
    this.drift = driftRepairsCounter(o.registry);
    if (o.resyncIntervalMs) {
      this.timer = setInterval(() => {
        this.resync().catch((e: Error) => o.log?.(`periodic resync failed: ${e.message}`));
      }, o.resyncIntervalMs);
      this.timer.unref();
    }
  }

  apply(state: NodeState): Promise<ApplyResult> {
    const bad = validateNodeState(state, (vs) => this.model !== undefined && this.known.has(vs));
    // Refuse before touching anything: what is programmed stays programmed.
    if (bad) return Promise.reject(new Error(`refusing invalid node state: ${bad}`));
    return this.serial(async () => {
      const r = await this.sync(state, false);
      this.last = state;
      return r;
    });
  }

  resync(): Promise<ApplyResult> {
    return this.serial(async () => {
      if (!this.last) return { kernelWrites: 0, verified: true, durationMs: 0, notes: ['nothing applied yet'] };
      const r = await this.sync(this.last, true);
      if (r.kernelWrites > 0) {
        this.driftRepairs++;
        this.drift.inc({ mode: 'ipvs' });
        this.o.log?.(`resync repaired drift with ${r.kernelWrites} writes`);
      }
      return r;
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
    if (this.timer) clearInterval(this.timer);
    await this.queue.catch(() => undefined);
    await this.o.kernel.close();
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /**
   * One plan-run-verify cycle. A full cycle (first apply, resync, cleanup, or after any failure)
   * dumps the kernel before and after. An incremental apply plans against `model` — a FakeKernel
   * holding what the kernel was last seen/made to hold — refreshing from the kernel only the
   * services whose removed real servers need live connection counters, and afterwards reads back
   * only the services it touched. So one endpoint change costs O(change), not a full dump.
   */
  private async sync(wanted: NodeState | undefined, full: boolean): Promise<ApplyResult> {
    const t0 = performance.now();
    const record = (this.record ??= await this.o.store.load());
    const glue: NetfilterGlue | undefined = wanted && this.o.netfilter !== false ? netfilterGlue(wanted.settings) : undefined;
    const desired = wanted && withGlueSets(wanted, glue);
    const sysctls = desired ? nodeSysctls(desired.settings, this.o.kernelRelease ?? release()) : {};
    const readOpts = {
      ipsets: [...new Set([...(desired?.ipsets ?? []).map((s) => s.name), ...record.ipsets])],
      device: this.device,
      sysctls: Object.keys(sysctls),
      netfilterChains: mergeChains(glue ? glueChains(glue) : {}, record.netfilterChains),
    };
    const model = full || !desired ? undefined : this.model;
    // Skipping by identity is only sound while the model is current and nothing is draining in it.
    const drainingVs = new Set(Object.keys(record.draining).map((k) => k.split('>')[0]));
    const known = this.known;
    const unchanged = model ? (o: VirtualServer | IpsetState) => known.has(o) && !('realServers' in o && drainingVs.has(virtualServerKey(o))) : undefined;
    let observed: ObservedKernel;
    if (model) {
      observed = model.view(readOpts);
      const live = await this.o.kernel.readVirtualServers(shrinking(desired!, observed, unchanged!));
      if (live.length > 0) observed = { ...observed, virtualServers: replaceByKey(observed.virtualServers, live) };
    } else {
      observed = await this.o.kernel.read(readOpts);
    }
    const plan = planKernelOps({
      desired, observed, record, glue, sysctls, device: this.device,
      now: (this.o.clock ?? Date.now)(), drainTimeoutMs: this.o.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
      swapThreshold: this.o.swapThreshold ?? 1000, unchanged,
    });
    const tx = new KernelTransaction().addAll(plan.ops);
    if (plan.ops.length > 0) {
      const bad = tx.validate();
      if (bad) throw new Error(`refusing transaction: ${bad}`);
      await this.o.store.save((this.record = plan.recordBefore));
      this.model = undefined; // until the kernel accepted it, we do not know what it holds
      await this.o.kernel.run(tx);
    }
    if (JSON.stringify(plan.recordAfter) !== JSON.stringify(this.record)) await this.o.store.save((this.record = plan.recordAfter));
    const notes = [...plan.notes];
    if (plan.draining > 0) notes.push(`${plan.draining} real server(s) draining`);
    let verified = true;
    if (desired) {
      let back: ObservedKernel;
      if (model) {
        try {
          model.runInPlace(tx);
        } catch (e) {
          // The kernel accepted what the model refuses: the model was wrong; read in full next time.
          this.model = undefined;
          return { kernelWrites: plan.ops.length, verified: false, durationMs: performance.now() - t0, notes: [...notes, `verify: model disagreed with the kernel (${(e as Error).message})`] };
        }
        // Read back what this transaction touched and compare with the model.
        const touched = touchedServices(plan.ops);
        const live = await this.o.kernel.readVirtualServers(touched);
        const want = new Map((await model.readVirtualServers(touched)).map((v) => [virtualServerKey(v), v]));
        for (const v of live) {
          const m = want.get(virtualServerKey(v));
          if (!m || !sameServer(m, v)) notes.push(`verify: read-back of ${virtualServerKey(v)} differs from what was written`);
        }
        if (live.length !== want.size) notes.push('verify: read-back service count differs');
        model.putVirtualServers(live);
        back = model.view(readOpts);
        this.model = model;
      } else {
        back = plan.ops.length > 0 ? await this.o.kernel.read(readOpts) : observed;
        this.model = FakeKernel.fromObserved(back);
      }
      const mismatches = verifyKernelState(desired, back, glue, sysctls, unchanged);
      notes.push(...mismatches.slice(0, 10).map((m) => `verify: ${m}`));
      verified = !notes.some((n) => n.startsWith('verify:'));
      this.known = new WeakSet();
      if (verified) for (const o of [...desired.virtualServers, ...desired.ipsets]) this.known.add(o);
    } else {
      this.model = undefined;
    }
    return { kernelWrites: plan.ops.length, verified, durationMs: performance.now() - t0, notes };
  }
}

/** Desired services whose observed real servers include some not desired (their counters must be live). */
function shrinking(desired: NodeState, observed: ObservedKernel, unchanged: (vs: VirtualServer) => boolean): VsKey[] {
  const have = new Map(observed.virtualServers.map((v) => [virtualServerKey(v), v]));
  const out: VsKey[] = [];
  for (const vs of desired.virtualServers) {
    if (unchanged(vs)) continue; // verified since and not draining: nothing of it is being removed
    const h = have.get(virtualServerKey(vs));
    if (!h || h.realServers.length === 0) continue;
    const want = new Set(vs.realServers.map((r) => realServerKey(r)));
    if (h.realServers.some((r) => !want.has(realServerKey(r)))) out.push(vs);
  }
  return out;
}

function touchedServices(ops: readonly KernelOp[]): VsKey[] {
  const keys = new Map<string, VsKey>();
  for (const op of ops) if (op.kind === 'virtual-server' || op.kind === 'real-server') keys.set(virtualServerKey(op.vs), op.vs);
  return [...keys.values()];
}

function replaceByKey(all: readonly ObservedVirtualServer[], fresh: readonly ObservedVirtualServer[]): ObservedVirtualServer[] {
  const f = new Map(fresh.map((v) => [virtualServerKey(v), v]));
  return all.map((v) => f.get(virtualServerKey(v)) ?? v);
}

function sameServer(a: ObservedVirtualServer, b: ObservedVirtualServer): boolean {
  const rs = (v: ObservedVirtualServer) => v.realServers.map((r) => `${realServerKey(r)}/${r.weight}`).sort().join(',');
  return sameVsSpec(a, b) && rs(a) === rs(b);
}

function mergeChains(a: Readonly<Record<string, readonly string[]>>, b: Readonly<Record<string, readonly string[]>>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [t, c] of [...Object.entries(a), ...Object.entries(b)]) out[t] = [...new Set([...(out[t] ?? []), ...c])];
  return out;
}
