/**
 * What the replicated log's leader side (replication.ts) and follower side (log-follower.ts) share:
 * where this file stands in the group's log stream (seq, term, the group's end, ...), the stream
 * mark persisted in the file, and the one truncation path (refused for rows an earlier stream
 * acknowledged). Its own module so each side takes this state explicitly instead of both living in
 * one 1,300-line class; nothing here talks to NATS but stream identity (isOtherStream).
 */
import type { JetStreamManager, StreamInfo } from '@nats-io/jetstream';
import type { EventLog } from './event-log.ts';
import { AHEAD_OF_NEW_STREAM, type LogReplicatorOptions } from './log-replicator.ts';
import { rowCount, type LogPosition, type RawRow, type RowBatch } from './log-rows.ts';
import { LogStreamReader, type LogCheck } from './replication-codec.ts';
import type { ReplicationMark } from './replication-mark.ts';
import type { SnapshotStore } from './replication-snapshots.ts';
import { CHAIN_NAMES, type ChainName } from './row-chain.ts';
import { logStreamName, logSubject } from './log-replicator.ts';

/** The leader persists its stream mark at most this often (a restart re-reads at most that much). */
const MARK_EVERY_MS = 1000;

export type Mode = 'idle' | 'following' | 'leader' | 'fenced' | 'closed';

/**
 * The chains on which truncating this file to `to` loses rows it held at `kept`: past `to`, and
 * not carried again (same id, same chained hash) by `next`, the batch that replaces them.
 */
function droppedChains(kept: LogPosition, to: LogPosition, next: RowBatch | undefined): ChainName[] {
  return CHAIN_NAMES.filter((c) => {
    const k = kept.chains[c];
    if (k.id <= to.chains[c].id) return false;
    const row = next?.rows[c][k.id - to.chains[c].id - 1];
    return !(row && row[0] === k.id && row[row.length - 1] === k.hash);
  });
}

/** What a truncation from `head` to `to` drops, in an operator's words: `versions 7–8, config revision 2, … (17 rows)`. */
function describeDrop(head: LogPosition, to: LogPosition): string {
  const names: Record<ChainName, [string, string]> = {
    versions: ['version', 'versions'],
    config_revisions: ['config revision', 'config revisions'],
    operations: ['operation', 'operations'],
    events: ['event', 'events'],
    acks: ['node report', 'node reports'],
  };
  const order: ChainName[] = ['versions', 'config_revisions', 'operations', 'events', 'acks'];
  const parts = order
    .filter((c) => head.chains[c].id > to.chains[c].id)
    .map((c) => {
      const a = to.chains[c].id + 1;
      const b = head.chains[c].id;
      return a === b ? `${names[c][0]} ${a}` : `${names[c][1]} ${a}–${b}`;
    });
  return `${parts.join(', ')} (${rowCount(head) - rowCount(to)} rows)`;
}

export class ReplicaState {
  readonly stream: string;
  readonly subject: string;
  mode: Mode = 'idle';
  readonly log: EventLog;
  readonly say: (line: string) => void;
  reader: LogStreamReader;
  /** Last stream seq fully processed (never inside a half-read batch): where reading resumes. */
  seq = 0;
  /** Last stream seq read at all (parts of a batch its writer never finished included): what a claim must follow. */
  readSeq = 0;
  /** Why the live consumer reads a stream that is not there any more (refreshEnd; its watchdog acts on it). */
  endBeforeRead: string | undefined;
  /**
   * The term of the newest marker read (or this leader's own): a batch of an older term is a copy
   * (a deposed leader's batch cannot land after a newer claim: appends are conditional). Newest,
   * not highest: a forged marker with a huge term must not make every later leader's batches look old.
   */
  term = 0;
  /**
   * The position the group's stream ends at, as far as read (undefined: no batch yet, no mark).
   * Only moves forward: apply() takes a batch only when it starts exactly here.
   */
  groupEnd: LogPosition | undefined;
  /**
   * The first batch read since the last one applied that does not continue this file's copy of the
   * group's log and is no copy of an earlier batch (refusal()). While set, `seq` (and so the mark)
   * stays before it: a batch that continues the group's end clears it (the stream went on from
   * here: the batch was not the group's), a snapshot past it restarts from there, else following
   * and claiming fail with NOT_CONNECTED (probe9 G1: every such batch was skipped while the mark
   * moved past it, and the replica, elected later, forked the group's log from its stale end).
   */
  unconnected: { readonly seq: number; readonly why: string } | undefined;
  /**
   * The term this process last claimed: only it writes batches of that term (the lease gives a
   * term one holder; appends are conditional), so one it reads that does not continue its log is
   * no leader's, and a claim after a fence skips it rather than stop at it.
   */
  ownTerm = 0;
  /** Whether a message was refused (not signed by the group's key) since this file's copy last moved. */
  refusedBeforeEnd = false;
  /** The newest message refused as not signed by the group's key, with why. */
  lastRefused: { readonly seq: number; readonly why: string } | undefined;
  /** Whether seq and groupEnd are the file's mark, not yet checked against the stream (catchUp). */
  markFromFile = false;
  /** The resume points of the group's last batch; undefined until one is read (a truncation then keeps none). */
  groupResume: readonly RawRow[] | undefined;
  markDirty = false;
  private lastMarkAt = Number.NEGATIVE_INFINITY;
  /** Stream end as last seen (seq, and rows it leaves the group at) for lag. */
  streamSeq = 0;
  streamRows = 0;
  /**
   * The creation time of the stream this process read its seq from (stream info's `created`): a
   * stream made again after NATS lost its store has the same name and counts from 1 again, so its
   * sequences say nothing about where this file stands. Undefined until this process reads info.
   */
  streamCreated: string | undefined;
  /**
   * This file's position when its mark turned out to name an earlier stream of the group (one
   * NATS lost; this stream was made again since): its rows up to here were written under that
   * stream, acknowledged there (published, rolled out), so they are not an unflushed tail. A
   * truncation that would drop any of them is refused unless acceptTruncation (probe13 R4: a
   * whole-site restore whose older backup claimed the new stream first silently took back a
   * newer file's versions and its rolled-out config revision). Cleared once the group's log here
   * reaches it, or when this replica leads (its file then seeds the stream).
   */
  beforeNewStream: LogPosition | undefined;
  snapshots!: SnapshotStore;

  constructor(
    readonly options: LogReplicatorOptions,
    readonly jsm: JetStreamManager,
    readonly check: LogCheck,
  ) {
    this.log = options.log;
    this.stream = logStreamName(options.group);
    this.subject = logSubject(options.group);
    this.say = options.logger ?? (() => {});
    this.reader = new LogStreamReader(check);
    const mark = this.log.replicationMark();
    if (mark && mark.stream === this.stream) {
      this.seq = mark.streamSeq;
      this.term = mark.term;
      this.groupEnd = mark.position;
      this.markFromFile = true;
      // which stream that seq counts in: a restart after NATS lost its store finds another one
      this.streamCreated = mark.streamCreated;
    }
  }

  /**
   * Whether `info` is a stream made after the one this process read (NATS lost its store while it
   * ran): then the mark is reset and the stream read from its start, as a restart does when its
   * mark is past the new stream's end. Judged by identity, not by sequence: once the new stream's
   * sequences reach the old mark, a follower reading on would take the leader's re-seeded batches
   * for a gap after its end (or skip them all as an older term's, terms having restarted too).
   */
  isOtherStream(info: StreamInfo): boolean {
    const before = this.streamCreated;
    this.streamCreated = info.created;
    if (before === undefined || before === info.created) return false;
    this.say(
      `log stream ${this.stream}: made again (created ${info.created}, was ${before}: NATS lost its store?); this file's mark (seq ${this.seq}) names the old one; reading it from the start`,
    );
    this.resetMark();
    return true;
  }

  /** The mark's fields that name the stream and term (its seq and position are the caller's). */
  private markBase(): Pick<ReplicationMark, 'stream' | 'term' | 'streamCreated'> {
    return {
      stream: this.stream,
      term: this.term,
      ...(this.streamCreated === undefined ? {} : { streamCreated: this.streamCreated }),
    };
  }

  /**
   * The mark to store with an import or truncation; none while this file holds rows of an earlier
   * stream the group's log here does not reach (beforeNewStream): a mark in this stream would make
   * the next start take them for an unflushed tail, and drop them unasked.
   */
  markAt(streamSeq: number, position: LogPosition): ReplicationMark | undefined {
    return this.beforeNewStream ? undefined : { ...this.markBase(), streamSeq, position };
  }

  resetMark(): void {
    // (a mark that names an earlier stream: the file's rows were that stream's)
    if (!this.isEmpty()) this.beforeNewStream = this.log.position();
    this.seq = 0;
    this.readSeq = 0;
    this.term = 0;
    this.groupEnd = undefined;
    this.groupResume = undefined;
    this.streamRows = 0;
    this.unconnected = undefined;
    this.markFromFile = false;
    this.refusedBeforeEnd = false;
  }

  isEmpty(): boolean {
    const p = this.log.position();
    return rowCount(p) === 0 && p.checkpointSeq === 0;
  }

  /**
   * Drops this file's rows past `to` (`next`: the batch that replaces them). Refused, nothing
   * dropped, when some of them were written under an earlier stream of the group (beforeNewStream)
   * and `next` does not carry them again, unless acceptTruncation. An unflushed tail (a crash
   * between commit and flush, a fenced leader's rows) lies past the mark of this very stream and
   * is dropped as before.
   */
  truncate(to: LogPosition, reason: string, next?: RowBatch): void {
    const before = this.beforeNewStream;
    const lost = before && droppedChains(before, to, next);
    if (lost && lost.length > 0) {
      const what = describeDrop(this.log.position(), to);
      if (!this.options.acceptTruncation) throw this.aheadOfNewStream(to, what);
      reason = `${reason}; written under an earlier stream of the group (${what}), dropped as --accept-truncation asked`;
      this.beforeNewStream = undefined;
    }
    const mark = this.markAt(this.seq, to);
    const rec = this.log.truncateTo(to, {
      stream: this.stream,
      streamSeq: this.seq,
      reason,
      resumePoints: this.groupResume,
      mark,
    });
    this.say(
      `log stream ${this.stream}: dropped ${rec?.rowsDropped ?? 0} rows this file held beyond the group (seq ${this.seq}): ${reason}; recorded as truncation ${rec?.id} in replication_truncations`,
    );
  }

  private aheadOfNewStream(to: LogPosition, what: string): Error {
    const end = `version ${to.chains.versions.id}, config revision ${to.chains.config_revisions.id}, operation ${to.chains.operations.id}`;
    return Object.assign(
      new Error(
        `log stream ${this.stream} (made again since this file's rows were written: NATS lost its store?) ends at ${end}; this file holds ${what} beyond it, written under the earlier stream: not dropping them. To keep them, stop every planner of the group, delete the streams ${this.stream} and SB_VERSIONS and start this planner first (docs/operations.md, "Restoring from a backup"); to drop them, restart this planner with --accept-truncation`,
      ),
      { code: AHEAD_OF_NEW_STREAM },
    );
  }

  /** The mark a flush left unwritten (see the refresher); a write that fails is tried again next tick. */
  persistMarkLate(): void {
    try {
      this.persistMark(true);
    } catch {
      // the log reports its write trouble itself (the next flush's write fails too, and says why)
    }
  }

  persistMark(lazily: boolean): void {
    if (!this.markDirty || this.mode === 'closed' || this.beforeNewStream) return;
    if (lazily && performance.now() - this.lastMarkAt < MARK_EVERY_MS) return;
    // No batch seen yet: nothing to mark. A mark naming the empty position would make this file's
    // rows (a seed for the group, or rows a first batch will replace) look like rows past the
    // group's end on the next start, and be truncated before they could be sent.
    if (!this.groupEnd) return;
    this.log.setReplicationMark({ ...this.markBase(), streamSeq: this.seq, position: this.groupEnd });
    this.markDirty = false;
    this.lastMarkAt = performance.now();
  }
}
