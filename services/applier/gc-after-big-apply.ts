import v8 from 'node:v8';
import { fullGc } from '../cli/full-gc.ts';

/** Heap growth since the last full collection that makes an apply "big" (see GcAfterBigApply). */
export const DEFAULT_GC_MIN_HEAP_GROWTH_BYTES = 64 * 1024 * 1024;

export interface GcAfterBigApplyOptions {
  /**
   * Collect only when the V8 heap in use grew by at least this much since the last collection here;
   * 0 (or less): after every apply, whatever the heap did (it can shrink while V8's sweeper threads
   * finish an earlier collection).
   */
  readonly minGrowthBytes?: number;
  /** Tests pass their own; default: V8's used heap size. */
  readonly heapUsedBytes?: () => number;
  /** Tests pass their own; default: one full, compacting GC that sweeps before it returns (services/cli/full-gc.ts). */
  readonly collect?: () => { beforeBytes: number; afterBytes: number };
  /** Told after each collection (the applier logs it). */
  readonly onCollected?: (c: GcAfterApply) => void;
  /** Told if a collection threw; none is tried again in this process (it is an optimisation). */
  readonly onFailed?: (e: Error) => void;
}

export interface GcAfterApply {
  readonly beforeBytes: number;
  readonly afterBytes: number;
  /** The collection's own time: the event loop was blocked that long. */
  readonly ms: number;
}

/**
 * One full garbage collection after a big apply (a full load, a large change), once the apply's
 * ACK is out and the event loop has nothing else to run.
 *
 * Why: a 10k-service load leaves its transient heap behind (95 MB in use, 39 MB after this
 * collection, in the VM bench), and V8 keeps those pages until its next major GC, which it runs
 * when it chooses: marking concurrently on worker threads while the applier handles the next
 * changes. Where the process has no spare core for those threads (a CPU-limited container; the
 * test VM, whose emulator runs every vCPU on one host thread) that marking takes the CPU from the
 * changes; the first changes after a 10k × 10 load that met it ran 2–3× slower than those that did
 * not (docs/benchmarks.md, "Applier (ipvs)", tenth round). Collecting once, right after the big
 * apply, returns the heap to the OS (as the planner does after its sync) and takes that marking
 * out of the changes that follow. The collection also sweeps the freed pages before it returns
 * (fullGc's finishSweeping): left to V8's sweeper threads, as a collection does by default, that
 * sweeping used 1.0–1.4 s of the VM's CPU beside the first changes, which were no faster than
 * without the collection; finished here, those changes were a little faster (0.125–0.170× of an
 * `ipvsadm -a` process against 0.155–0.203×: docs/benchmarks.md, tenth and eleventh rounds).
 *
 * Bounded: only when the heap grew by `minGrowthBytes` since the last collection made here (a
 * small change grows it by kilobytes, so steady-state changes never pay for one), at most one
 * collection pending at a time, none after stop(), and none again once one threw. Its cost: the
 * event loop blocked for the collection, its sweeping included (0.4–0.6 s in the quiet VM at 10k under
 * TCG; 0.7–1.0 s under host load).
 */
export class GcAfterBigApply {
  private readonly minGrowth: number;
  private readonly heapUsed: () => number;
  private readonly collect: () => { beforeBytes: number; afterBytes: number };
  private baseline: number;
  private pending: Promise<GcAfterApply | undefined> | undefined;
  private stopped = false;

  constructor(private readonly options: GcAfterBigApplyOptions = {}) {
    this.minGrowth = options.minGrowthBytes ?? DEFAULT_GC_MIN_HEAP_GROWTH_BYTES;
    this.heapUsed = options.heapUsedBytes ?? (() => v8.getHeapStatistics().used_heap_size);
    this.collect = options.collect ?? (() => fullGc({ finishSweeping: true }));
    this.baseline = this.heapUsed();
  }

  /**
   * Call after an apply is acknowledged. When the heap grew enough, one full collection runs at the
   * next turn of the event loop (setImmediate: the ACK's publish, flushed in a microtask, is out
   * first); the promise resolves with it, or undefined when none was due.
   */
  afterApply(): Promise<GcAfterApply | undefined> {
    if (this.pending) return this.pending;
    if (this.stopped || (this.minGrowth > 0 && this.heapUsed() - this.baseline < this.minGrowth))
      return Promise.resolve(undefined);
    this.pending = new Promise<GcAfterApply | undefined>((resolve) =>
      setImmediate(() => {
        this.pending = undefined;
        if (this.stopped) return resolve(undefined);
        const t0 = performance.now();
        let r: { beforeBytes: number; afterBytes: number };
        try {
          r = this.collect();
        } catch (e) {
          this.stopped = true;
          this.options.onFailed?.(e as Error);
          return resolve(undefined);
        }
        const done = { ...r, ms: performance.now() - t0 };
        this.baseline = r.afterBytes;
        this.options.onCollected?.(done);
        resolve(done);
      }),
    );
    return this.pending;
  }

  /** No collection after this (one already scheduled is skipped). */
  stop(): void {
    this.stopped = true;
  }
}
