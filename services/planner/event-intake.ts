import type { Rejection, WatchEvent } from '../../libs/model/index.ts';
import type { DataAxis, PreparedEvent } from '../../libs/versioning/index.ts';
import { EventBatcher } from './event-batcher.ts';
import { toWatchEvent } from './event-change.ts';
import type { EventSource, EventSourceFactory } from './event-source.ts';
import type { PlannerHooks } from './planner-options.ts';
import type { StepFailures } from './step-failures.ts';

export interface EventIntakeOptions {
  readonly source: EventSourceFactory;
  readonly hooks?: PlannerHooks;
  /** The planner's data (read at each use). */
  readonly axes: { readonly data: DataAxis };
  /** The planner's serial queue: every batch is appended in it. */
  readonly serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
  readonly failures: StepFailures;
  readonly stopped: () => boolean;
  /** Whether the initial list is in (no version before it; its batches are held full). */
  readonly isSynced: () => boolean;
  /** A batch was appended to the log and applied: a version is due. */
  readonly appended: () => void;
}

/**
 * The leader's way in for cluster changes: the event source, started (and retried while it
 * fails), and the batcher that prepares each event as it arrives and appends them to the log
 * in batches, in the planner's serial queue.
 */
export class EventIntake {
  private source!: EventSource;
  private sourceRetry: NodeJS.Timeout | undefined;
  private batcher!: EventBatcher<WatchEvent | PreparedEvent>;
  /** What the source's last scan refused (the current list). */
  sourceRejections: Rejection[] = [];

  constructor(private readonly o: EventIntakeOptions) {}

  /** Makes the batcher and the source (not started yet: start). */
  open(): void {
    this.batcher = new EventBatcher<WatchEvent | PreparedEvent>({
      serial: (fn) => this.o.serial(fn),
      flush: (events, emptiesQueue) => {
        const rejected = this.o.axes.data.ingest(events, { resumePoints: emptiesQueue });
        // Before the first sync (the initial list), entries are built batch by batch while the
        // next pages are on their way, not all at once after the last page (version 1 waits for them).
        if (!this.o.isSynced()) this.o.axes.data.live.buildReady();
        for (const r of rejected) this.o.hooks?.onRejected?.(r);
        this.o.failures.recovered('append');
        this.o.hooks?.onEvents?.(events.length);
        this.o.appended();
      },
      onError: (e) => this.o.failures.fail('append', e),
      weigh: (e) => ('outcome' in e ? e.row.object.length : 0), // a raw event's append fails and retries
      holdWhile: () => !this.o.isSynced(), // the initial list: appended in full batches, then all before version 1
    });
    this.source = this.o.source((e) => this.batcher.push(this.queued(toWatchEvent(e, this.source.origin))), {
      // Each scan reports everything it refused; count only what is new, keep only the current list.
      onSourceRejections: (list) => {
        const seen = new Set(this.sourceRejections.map((r) => `${r.ref}|${r.reason}`));
        for (const r of list) if (!seen.has(`${r.ref}|${r.reason}`)) this.o.hooks?.onRejected?.(r);
        this.sourceRejections = [...list];
      },
    });
  }

  /** Starts the source (retried with capped backoff while its start fails). */
  start(): void {
    this.startSource(0);
  }

  /** Resolves once the source delivered its initial list. */
  get synced(): Promise<void> {
    return this.source.synced;
  }

  /** Appends whatever the batcher holds now, a batch a step (in the serial queue, run with runInSlices). */
  flushSteps(): Generator<void, void, void> {
    return this.batcher.flushSteps();
  }

  /** Stops the source; what it delivered is logged before this resolves. */
  async stop(): Promise<void> {
    clearTimeout(this.sourceRetry);
    await this.source?.stop();
    if (this.batcher) await this.batcher.drain(); // what the source delivered is logged before we go
    this.batcher?.stop();
  }

  health(): unknown {
    return this.source?.health();
  }

  /** Why the event source is failing right now, or undefined while it works (owner: sources). */
  problem(): string | undefined {
    return this.source?.problem();
  }

  /**
   * Starts the source; one whose start fails (a manifests directory not there yet) is shown as
   * failing and retried with capped backoff: the planner waits for what is missing.
   */
  private startSource(attempt: number): void {
    this.source.start().then(
      () => this.o.failures.recovered('source'),
      (e) => {
        this.o.failures.fail('source', e);
        if (!this.o.stopped())
          this.sourceRetry = setTimeout(() => this.startSource(attempt + 1), Math.min(250 * 2 ** attempt, 5000));
      },
    );
  }

  /**
   * What the batcher holds for one event: prepared as it arrives (its row text and its reading
   * into the model), so the raw object is dropped with its list page instead of living through
   * scavenges until its batch is appended. An event that cannot be prepared is queued raw: its
   * batch's append then fails (and retries) exactly as it did before, the sink never throws.
   */
  private queued(e: WatchEvent): WatchEvent | PreparedEvent {
    try {
      return this.o.axes.data.prepare(e);
    } catch {
      return e;
    }
  }
}
