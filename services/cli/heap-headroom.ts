import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import v8 from 'node:v8';

/**
 * How close a process's JavaScript heap is to the limit V8 enforces, read after V8's full
 * collections, and the line an operator gets before that limit stops the process.
 *
 * Why: V8 stops a process whose live heap reaches its limit ("FATAL ERROR: Reached heap limit
 * Allocation failed - JavaScript heap out of memory"), and in a container Node sets that limit from
 * the container's memory limit: half of it, at least ~259 MiB, at most ~2 GiB below a 16 GiB limit
 * (measured: 4, 6 and 8 GiB all gave 2,096 MiB), unless --max-old-space-size says otherwise. The
 * shipped planner (1 GiB) gets ~524 MiB, an applier (512 MiB) ~259 MiB. A planner that outgrows it dies during its initial sync, restarts
 * and dies again in the same place (measured: docs/install.md, "Memory"). Said while there is still
 * room, the cause is one line in the log, not a crash loop to diagnose.
 *
 * What the heap holds after a full collection is what the process keeps (its state); between
 * collections the heap also holds garbage, so only those readings are compared with the limit.
 */
export interface HeapReading {
  /** V8's used heap right after its last full collection (read at the next turn of the event loop). */
  readonly liveBytes: number;
  /** The most the heap may hold: V8's heap_size_limit. */
  readonly limitBytes: number;
}

/** A reading at or over this share of the limit is warned of. */
export const HEAP_WARN_SHARE = 0.8;
/** Once warned, the warning stands until a reading falls under this share (no line per collection near the edge). */
export const HEAP_CLEAR_SHARE = 0.7;

/**
 * The warning for a reading, or undefined when there is room (pure). `warned`: whether the
 * previous reading was warned of, so a heap hovering at the threshold says one line, not one per
 * collection.
 */
export function heapWarning(r: HeapReading, warned: boolean): string | undefined {
  const share = r.liveBytes / r.limitBytes;
  if (share < (warned ? HEAP_CLEAR_SHARE : HEAP_WARN_SHARE)) return undefined;
  return (
    `heap ${mb(r.liveBytes)} MB in use after a full collection, ${Math.round(share * 100)} % of its ` +
    `${mb(r.limitBytes)} MB limit (Node's: half the container's memory limit, at most ~2 GiB below ` +
    `16 GiB; or --max-old-space-size): at the limit this process stops with "JavaScript heap out of ` +
    `memory"; raise its memory limit, past 4 GiB with --max-old-space-size (docs/install.md, "Memory")`
  );
}

/** The line when the heap is back under HEAP_CLEAR_SHARE of its limit. */
export function heapRecovered(r: HeapReading): string {
  return `heap back to ${mb(r.liveBytes)} MB after a full collection, ${Math.round((r.liveBytes / r.limitBytes) * 100)} % of its ${mb(r.limitBytes)} MB limit`;
}

/** A `gc` entry of a mark-compact (its detail's kind; Node's types do not name `detail`). */
const isFullCollection = (e: PerformanceEntry): boolean =>
  (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;

const mb = (bytes: number): number => Math.round(bytes / 1e6);

export interface HeapWatchOptions {
  /** Told the warning when the heap first nears its limit, and heapRecovered's line when it is back. */
  readonly say: (line: string, warning: boolean) => void;
  /** Tests pass their own; default: V8's heap statistics. */
  readonly stats?: () => { used_heap_size: number; heap_size_limit: number };
}

/**
 * Reads the heap after each of V8's full collections (a PerformanceObserver of `gc` entries:
 * mark-compacts, the collection that frees the old generation) and says when it nears its limit.
 * The observer's callback runs at the next turn of the event loop, so a reading also counts what
 * was allocated since the collection ended: at most one turn's worth, which errs toward warning.
 */
export class HeapWatch {
  private last: HeapReading | undefined;
  private warned = false;
  private readonly observer: PerformanceObserver;
  private readonly stats: () => { used_heap_size: number; heap_size_limit: number };

  constructor(private readonly options: HeapWatchOptions) {
    this.stats = options.stats ?? (() => v8.getHeapStatistics());
    this.observer = new PerformanceObserver((list) => {
      if (list.getEntries().some(isFullCollection)) this.read();
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** The last reading after a full collection, or undefined before the first. */
  get reading(): HeapReading | undefined {
    return this.last;
  }

  /** Whether the last reading stands warned of. */
  get warning(): string | undefined {
    return this.warned && this.last ? heapWarning(this.last, true) : undefined;
  }

  /** Reads the heap now, as after a full collection (the observer's, or the caller's own fullGc). */
  read(): HeapReading {
    const s = this.stats();
    const r: HeapReading = { liveBytes: s.used_heap_size, limitBytes: s.heap_size_limit };
    this.last = r;
    const line = heapWarning(r, this.warned);
    if ((line !== undefined) !== this.warned) {
      this.warned = line !== undefined;
      this.options.say(line ?? heapRecovered(r), this.warned);
    }
    return r;
  }

  stop(): void {
    this.observer.disconnect();
  }
}
