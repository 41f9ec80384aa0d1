/**
 * Group commit for watch events. The informer awaits the sink once per event, so awaiting a
 * durable append per event would cost one fsync each (20k fsyncs for a 10k-service initial
 * list). Instead the sink only queues the event; a flush appends everything queued in ONE
 * transaction. This is safe because the informer's resume points live in the same SQLite log and
 * are written inside the next append transaction (SqliteResumeStore): a resume point can never
 * be durable before the events it covers, so a crash re-delivers events but never skips one.
 * Versions are made only after a flush, so nothing derived from an event is published before
 * the event is durable. A failed append keeps its events at the head of the queue and retries;
 * the sink never rejects (that would make the informer re-deliver, i.e. duplicate, events).
 */
export interface EventBatcherOptions<E> {
  /**
   * Appends and applies a batch synchronously; throws when nothing was written. `emptiesQueue`:
   * the batch holds every event queued; only such a batch may carry the source's resume points
   * (a resume point saved after an event was queued covers it, and events behind this batch are
   * not in the log yet: written with them, a crash in between would resume past them, losing them).
   */
  readonly flush: (events: readonly E[], emptiesQueue: boolean) => void;
  /** Runs work in the owner's serial queue (flushes must not interleave with syncs). */
  readonly serial: (fn: () => void) => Promise<void>;
  /** Largest batch per transaction (default 2000). */
  readonly maxBatch?: number;
  /**
   * What one event weighs (its row's characters); a batch also ends before maxBatchWeight (but
   * holds one event at least), and the sink waits once twice that is queued. A batch's append
   * and its build take the planner's thread in one piece, in proportion to its bytes: 2,000
   * EndpointSlices of 250 endpoints (~40 MB of rows) held it 1–2 s at the envelope, while 2,000 of
   * 10 endpoints are ~2 MB. Without `weigh`, batches are counted only.
   */
  readonly weigh?: (event: E) => number;
  /** Default 4 MiB (characters) when `weigh` is given. */
  readonly maxBatchWeight?: number;
  /**
   * Queue length at which the sink waits for a flush (backpressure; default twice maxBatch). A
   * full batch alone does not make it wait: its append is scheduled for the next turn of the event
   * loop and the source goes on, so an informer delivers the rest of its page and asks for the next
   * one before the append runs, and the API server makes that page while the planner appends
   * (before, the sink waited for every full batch's append, and nothing was asked of the server
   * during it).
   */
  readonly maxQueued?: number;
  readonly retryMs?: number;
  readonly onError?: (err: unknown) => void;
  /**
   * While this returns true, events are appended only in full batches of maxBatch, or all at
   * once by drain()/flushNow(). For the initial list: nothing is derived from its events before
   * the list ends (the planner flushes before version 1), and a list cannot resume midway, so a
   * commit per page (one WAL fsync each, ~40 at 10k services) bought nothing.
   */
  readonly holdWhile?: () => boolean;
}

export class EventBatcher<E> {
  private readonly queue: E[] = [];
  /** What each queued event weighs (options.weigh), beside the queue, and their sum. */
  private readonly weights: number[] = [];
  private queuedWeight = 0;
  private scheduled: Promise<void> | undefined;
  /** The scheduled flush stopped with a batch due behind it: the next is scheduled for the next turn. */
  private moreDue = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: EventBatcherOptions<E>) {}

  get queued(): number {
    return this.queue.length;
  }

  /** Queues one event; resolves at once, or after a flush once maxQueued (or twice maxBatchWeight) are queued (backpressure). */
  push(event: E): Promise<void> | undefined {
    const w = this.options.weigh?.(event) ?? 0;
    this.queue.push(event);
    this.weights.push(w);
    this.queuedWeight += w;
    const max = this.options.maxBatch ?? 2000;
    const flushed = !this.fullBatchQueued() && this.options.holdWhile?.() ? undefined : this.schedule();
    const waits = this.queue.length >= (this.options.maxQueued ?? 2 * max) || this.queuedWeight >= 2 * this.maxWeight();
    return waits ? flushed : undefined;
  }

  /** Flushes everything queued now (e.g. before making a version or stopping). */
  drain(): Promise<void> {
    return this.options.serial(() => this.flushNow());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  private maxWeight(): number {
    return this.options.weigh ? (this.options.maxBatchWeight ?? 4 * 1024 * 1024) : Number.POSITIVE_INFINITY;
  }

  /** A whole batch is queued: maxBatch events, or maxBatchWeight of them. */
  private fullBatchQueued(): boolean {
    return this.queue.length >= (this.options.maxBatch ?? 2000) || this.queuedWeight >= this.maxWeight();
  }

  /** How many of the queue's first events make its next batch (one at least). */
  private nextBatchLength(): number {
    const n = Math.min(this.queue.length, this.options.maxBatch ?? 2000);
    const maxWeight = this.maxWeight();
    let weight = this.weights[0] ?? 0;
    let k = 1;
    while (k < n && weight + this.weights[k]! <= maxWeight) weight += this.weights[k++]!;
    return k;
  }

  /**
   * One batch a turn of the event loop, each in the serial queue: the planner's thread is held for
   * one batch's append and build at a time, and what waits in the serial queue (a version, a
   * status read) runs between them.
   */
  private schedule(): Promise<void> {
    this.scheduled ??= new Promise<void>((r) => setImmediate(r))
      .then(() => this.options.serial(() => this.flushBatches(this.options.holdWhile?.() ?? false, 1)))
      .finally(() => {
        this.scheduled = undefined;
        if (!this.moreDue || this.stopped) return;
        this.moreDue = false;
        this.schedule().catch(() => undefined); // the owner's serial queue refused it: so did the one before
      });
    return this.scheduled;
  }

  /**
   * Call inside the serial queue. Never throws: a failure is reported and retried later.
   * `wholeBatchesOnly` leaves a partial batch queued (while holdWhile holds).
   */
  flushNow(wholeBatchesOnly = false): void {
    this.flushBatches(wholeBatchesOnly, Number.POSITIVE_INFINITY);
  }

  /**
   * Call inside the serial queue. The events queued now, a batch a step: a version waits for
   * them (everything it is made of is durable first), and the steps let the event loop turn
   * between two batches (runInSlices). Stops early where a batch fails (retried by its timer).
   */
  *flushSteps(): Generator<void, void, void> {
    let left = this.queue.length;
    while (left > 0 && !this.stopped) {
      const before = this.queue.length;
      this.flushBatches(false, 1);
      const done = before - this.queue.length;
      if (done === 0) return;
      left -= done;
      if (left > 0) yield;
    }
  }

  /** flushNow, up to `maxBatches` batches; notes whether another is due (moreDue). */
  private flushBatches(wholeBatchesOnly: boolean, maxBatches: number): void {
    this.moreDue = false;
    const due = () => this.queue.length > 0 && (!wholeBatchesOnly || this.fullBatchQueued());
    for (let done = 0; due() && !this.stopped; done++) {
      if (done === maxBatches) {
        this.moreDue = true;
        return;
      }
      const n = this.nextBatchLength();
      const batch = this.queue.slice(0, n);
      try {
        this.options.flush(batch, batch.length === this.queue.length);
      } catch (e) {
        this.options.onError?.(e);
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => void this.schedule(), this.options.retryMs ?? 1000);
        return;
      }
      this.queue.splice(0, n);
      for (const w of this.weights.splice(0, n)) this.queuedWeight -= w;
    }
  }
}
