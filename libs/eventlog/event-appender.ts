import type { WatchEvent } from '../model/index.ts';
import type { EventLog } from './event-log.ts';

interface Pending {
  readonly event: WatchEvent;
  readonly resolve: (seq: number) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * Group commit for concurrent callers: append() queues an event and resolves with its seq only
 * after the transaction holding it committed (so callers may publish what they derive from it).
 * Events queued in the same tick, up to `maxBatch`, share one transaction. When a batch fails
 * (disk full...), every caller in it is rejected and nothing of it is in the log.
 */
export class EventAppender {
  private queue: Pending[] = [];
  private scheduled = false;
  private readonly maxBatch: number;

  constructor(
    private readonly log: EventLog,
    opts: { maxBatch?: number } = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 1000;
  }

  append(event: WatchEvent): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits whatever is queued now (also called on its own at the end of each tick). */
  flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      let seqs: number[];
      try {
        seqs = this.log.appendEvents(batch.map((p) => p.event));
      } catch (e) {
        for (const p of batch) p.reject(e);
        continue;
      }
      batch.forEach((p, i) => {
        p.resolve(seqs[i]!);
      });
    }
  }

  get pending(): number {
    return this.queue.length;
  }
}
