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
  private scheduled: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: EventBatcherOptions<E>) {}

  get queued(): number {
    return this.queue.length;
  }

  /** Queues one event; resolves at once, or after a flush once maxQueued are queued (backpressure). */
  push(event: E): Promise<void> | undefined {
    this.queue.push(event);
    const max = this.options.maxBatch ?? 2000;
    const flushed = this.queue.length < max && this.options.holdWhile?.() ? undefined : this.schedule();
    return this.queue.length >= (this.options.maxQueued ?? 2 * max) ? flushed : undefined;
  }

  /** Flushes everything queued now (e.g. before making a version or stopping). */
  drain(): Promise<void> {
    return this.options.serial(() => this.flushNow());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  private schedule(): Promise<void> {
    this.scheduled ??= new Promise<void>((r) => setImmediate(r))
      .then(() => this.options.serial(() => this.flushNow(this.options.holdWhile?.() ?? false)))
      .finally(() => {
        this.scheduled = undefined;
      });
    return this.scheduled;
  }

  /**
   * Call inside the serial queue. Never throws: a failure is reported and retried later.
   * `wholeBatchesOnly` leaves a partial batch queued (while holdWhile holds).
   */
  flushNow(wholeBatchesOnly = false): void {
    const max = this.options.maxBatch ?? 2000;
    while (this.queue.length > (wholeBatchesOnly ? max - 1 : 0) && !this.stopped) {
      const batch = this.queue.slice(0, max);
      try {
        this.options.flush(batch, batch.length === this.queue.length);
      } catch (e) {
        this.options.onError?.(e);
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => void this.schedule(), this.options.retryMs ?? 1000);
        return;
      }
      this.queue.splice(0, batch.length);
    }
  }
}
