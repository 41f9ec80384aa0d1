/**
 * The snapshots a leader of the replicated log writes: when one is due (spaced by the rows the
 * file holds, probe9 J3), where a new leader's spacing starts (review4 G4), and the one write in
 * flight at a time. Separate from the leader's appends (replication.ts) because it runs beside
 * them in the background and has its own bookkeeping; the store itself is replication-snapshots.ts.
 */
import { rowCount, type RowBatch } from './log-rows.ts';
import type { ReplicaState } from './replica-state.ts';

export class LeaderSnapshots {
  /** The group's rows at the last snapshot (or the spacing's start after a claim). */
  private rows = 0;
  /** The rows the file held at the last snapshot (heldRows): the next one's spacing (probe9 J3). */
  private held = 0;
  private running: Promise<unknown> = Promise.resolve();
  /** Bumped at each new start of the spacing (a claim, a snapshot): a late listing never moves a newer one. */
  private starts = 0;
  /** The last batch flushed in this term, with the seq it ended at: what a snapshot due late is taken of. */
  private lastFlush: { batch: RowBatch; seq: number; term: number } | undefined;

  constructor(private readonly state: ReplicaState) {}

  /**
   * After a claim: the spacing starts at `rows` (the file's rows: the conservative start, a
   * snapshot once the log has grown by its size again) and moves to the group's newest snapshot
   * once its metadata is listed (see baseline()). The listing runs beside the claim, not before
   * it: a store slow to answer (its request timeout is 5 s) held the new leader's term marker,
   * hence its first version, past twice the lease on a loaded failover. A snapshot that the earlier
   * start makes due is taken then, at the last batch flushed meanwhile.
   */
  claimed(rows: number): void {
    const claim = this.startAt(rows);
    const term = this.state.term;
    const leading = () => this.state.mode === 'leader' && this.state.term === term;
    void this.baseline(rows, leading).then((baseline) => {
      // not if a snapshot was taken (or another claim made) meanwhile, nor after a step-down
      if (claim !== this.starts || !leading() || baseline >= rows) return;
      const flushed = this.lastFlush;
      this.startAt(baseline);
      if (flushed) this.check(flushed);
    });
  }

  /** Starts the spacing at `baseline`; returns the count of starts, which a later listing compares. */
  private startAt(baseline: number): number {
    this.rows = baseline;
    this.held = Math.min(baseline, this.state.log.heldRows());
    this.lastFlush = undefined;
    return ++this.starts;
  }

  /** Settles once the snapshot in flight, if any, is written or has failed. */
  settled(): Promise<unknown> {
    return this.running;
  }

  /**
   * Where a new leader's snapshot spacing starts: the rows of the group's newest snapshot (its
   * metadata), not this file's size, or a planner restarted (or failed over) more often than its
   * log doubles would never snapshot, nor trim the stream, again (review4 G4). At most `rows` (a
   * snapshot of a stream NATS since lost says nothing of this one); `rows` when the store does not answer.
   */
  private async baseline(rows: number, leading: () => boolean): Promise<number> {
    try {
      return Math.min(rows, await this.state.snapshots.newestRows());
    } catch (e) {
      if (leading())
        this.state.say(
          `log stream ${this.state.stream}: cannot list snapshots (${(e as Error).message}); next one after ${rows} more rows`,
        );
      return rows;
    }
  }

  /**
   * After a flush: once enough rows were added since the last snapshot, stores the log as of the
   * batch just acknowledged in the background (rows committed later stay out). The rows are read
   * in slices beside the writer and streamed, gzipped, into the object store (review4 G4: made
   * whole on this thread it stalled the leader for seconds, past its lease, at 50k rows); only
   * the leader of the flushed batch's term writes it, and it stops if deposed meanwhile. A
   * failure is logged and retried after the next interval.
   */
  ifDue(flushed: RowBatch): void {
    this.lastFlush = { batch: flushed, seq: this.state.seq, term: this.state.term };
    this.check(this.lastFlush);
  }

  private check({ batch: flushed, seq, term }: { batch: RowBatch; seq: number; term: number }): void {
    const every = this.state.options.snapshotEveryRows ?? 50_000;
    const rows = rowCount(flushed.to);
    // A snapshot costs O(rows it holds); spacing them at least that many written rows apart keeps
    // it O(1) per row. Held, not ever written (probe9 J3): under retention the spacing, hence the
    // stream (one to two spacings), stays bounded by what the file keeps instead of doubling.
    if (every <= 0 || rows - this.rows < Math.max(every, this.held)) return;
    this.startAt(rows);
    this.held = this.state.log.heldRows();
    const leading = () => this.state.mode === 'leader' && this.state.term === term;
    this.running = this.running.then(async () => {
      if (!leading()) return;
      const started = performance.now();
      try {
        const r = await this.state.snapshots.write({
          streamSeq: seq,
          term,
          to: flushed.to,
          resumePoints: flushed.resumePoints,
          slices: this.state.log.wholeSlices(flushed.to),
          leading,
        });
        this.state.say(
          `log stream ${this.state.stream}: snapshot at seq ${seq} (${r.rows} rows, ${r.bytes} bytes, ${Math.round(performance.now() - started)} ms)${r.trimmedBelow ? `; stream trimmed below seq ${r.trimmedBelow}` : ''}`,
        );
      } catch (e) {
        this.state.say(`log stream ${this.state.stream}: snapshot at seq ${seq} failed: ${(e as Error).message}`);
      }
    });
  }
}
