/**
 * The replicated log's follower side: reads the group's log stream (an ordered consumer, or a
 * snapshot where the stream was trimmed), judges each batch (refusal(): a copy, a gap, another
 * history) and applies what continues this file. Separate from the leader side (replication.ts),
 * which only calls catchUp() before a claim and runs the follow loop over consumeFrom(); the state
 * both move is replica-state.ts.
 */
import { randomBytes } from 'node:crypto';
import {
  DeliverPolicy,
  JetStreamApiError,
  type Consumer,
  type ConsumerMessages,
  type JetStreamClient,
  type StoredMsg,
} from '@nats-io/jetstream';
import { BEHIND_CUT, NOT_CONNECTED } from './log-replicator.ts';
import { checkpointsAfter, rowCount, samePosition, sliceBatch, type LogPosition, type RowBatch } from './log-rows.ts';
import { H, LogStreamReader } from './replication-codec.ts';
import type { Snapshot } from './replication-snapshots.ts';
import type { ReplicaState } from './replica-state.ts';
import { CHAIN_NAMES } from './row-chain.ts';
import { runInSlices } from '../model/index.ts';

/** A consumer that delivers nothing this long while the stream has more is replaced. */
const STALL_MS = 5000;
/** Longest a slice of a message's apply keeps the follower's thread (a checkpoint piece is one step whatever its size). */
const APPLY_SLICE_MS = 10;
/**
 * What one pull of a follower's consumer asks for, in max_payloads (probe17 N4). The server cuts
 * a client whose unread data passes its max_pending ("Slow Consumer Detected"; 64 MB by default,
 * less where an operator set it): a pull of 512 messages of up to max_payload each (512 MB at the
 * 1 MB default) did while a follower stored a big batch, and its every fresh read was cut again,
 * so it never caught up. Bounded by bytes instead: the client tops a pull up by what was read
 * once a quarter of it is, so eight max_payloads make every top-up hold the largest message (a
 * smaller one is refused, 409, and the consumer starves); 8 MB at the default max_payload.
 */
const PULL_PAYLOADS = 8;
/**
 * How long the server keeps a follower's consumer that nobody pulls from (the client's default is
 * 5 min): a reader that ended without deleting it (a crash, NATS away at the end) leaves it this
 * long past its last pull's expiry. A reading one always has a pull waiting, so is never idle; one
 * the server dropped all the same (a client stuck past it) is made again by the client.
 */
export const READER_IDLE_MS = 30_000;
/** JetStream's "stream not found" (both sides meet it once NATS lost its store). */
export const STREAM_NOT_FOUND = 10059;

/** Whether `a` is at or past `b` in every chain and in checkpoints (ids only: holds() checks hashes). */
function covers(a: LogPosition, b: LogPosition): boolean {
  return (
    a.checkpointSeq >= b.checkpointSeq &&
    Object.entries(b.chains).every(([c, h]) => (a.chains[c as keyof LogPosition['chains']]?.id ?? -1) >= h.id)
  );
}

/** Whether `a` is at or past `b` in every chain (ids only; checkpoints are not history an operator made). */
function chainsCover(a: LogPosition, b: LogPosition): boolean {
  return CHAIN_NAMES.every((c) => a.chains[c].id >= b.chains[c].id);
}

/**
 * Stops a consumer without waiting: its close() promise settles only once the iterator has been
 * drained, which never happens for one stopped before its first message.
 */
export function closeConsumer(c: ConsumerMessages | undefined): void {
  c?.close().catch(() => {});
}

export class LogFollower {
  /** The bytes one pull of a follower's consumer asks for at most (see PULL_PAYLOADS). */
  private readonly pullBytes: number;

  constructor(
    private readonly state: ReplicaState,
    private readonly js: JetStreamClient,
  ) {
    this.pullBytes = PULL_PAYLOADS * (state.options.nc.info?.max_payload ?? 1024 * 1024);
  }

  /**
   * Why this follower holds nothing of the group's log past a message it refused as not signed by
   * its key, while no genuine batch came after it (undefined otherwise). A planner started with
   * another key than its group's refuses every message, looked caught up (lag 0, no problem) and
   * took the lease at the next failover with none of the group's history (probe16 I4); a forged
   * message at the stream's end reads the same until the leader's next batch.
   */
  refusedProblem(): string | undefined {
    const r = this.state.lastRefused;
    if (!this.state.refusedBeforeEnd || !r) return undefined;
    return `log stream ${this.state.stream} seq ${r.seq}: ${r.why}; this replica takes nothing of the group's log after it (a planner of the group with another --signing-key than this one's, or a message forged by a holder of the planners' NATS user: every planner of a group needs the same key)`;
  }

  /**
   * Applies the stream's messages from `start` (an ordered consumer) until seq `until` (true), or
   * until stopped (false). A watchdog closes the consumer when it delivers nothing for STALL_MS
   * while the stream has messages past it (false): a client consumer whose server was killed
   * can stay silent instead of failing over, so the caller starts afresh rather than trust it.
   */
  async consumeFrom(
    start: number,
    until: number | undefined,
    stopped: () => boolean,
    onOpen?: (c: ConsumerMessages) => void,
    onApplied?: () => void,
  ): Promise<boolean> {
    // named by us: a create whose answer is lost (a frozen or restarting server) may still have made it
    const prefix = `sb_follow_${randomBytes(8).toString('hex')}`;
    let c: Consumer;
    try {
      c = await this.js.consumers.get(this.state.stream, {
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: start,
        name_prefix: prefix,
        inactive_threshold: READER_IDLE_MS,
      });
    } catch (e) {
      this.dropConsumer(() => this.state.jsm.consumers.delete(this.state.stream, `${prefix}_1`));
      throw e;
    }
    let msgs: ConsumerMessages;
    try {
      msgs = await c.consume({ max_bytes: this.pullBytes });
    } catch (e) {
      this.dropConsumer(() => c.delete());
      throw e;
    }
    onOpen?.(msgs);
    // durations on the monotonic clock: a wall clock stepped back would silence the watchdog (probe12)
    let progressAt = performance.now();
    // a message being applied (in slices: a first checkpoint's batch takes seconds) is progress, not a stall
    let applying = false;
    const watchdog = setInterval(
      () => {
        const gone = this.state.endBeforeRead;
        if (until === undefined && gone) {
          this.state.endBeforeRead = undefined;
          this.state.say(`log stream ${this.state.stream}: ${gone}; reading afresh`);
          closeConsumer(msgs);
          return;
        }
        const behind = until !== undefined || this.state.streamSeq > this.state.readSeq;
        if (behind && !applying && performance.now() - progressAt > STALL_MS) {
          this.state.say(
            `log stream ${this.state.stream}: no message for ${STALL_MS} ms at seq ${this.state.readSeq} (stream at ${Math.max(until ?? 0, this.state.streamSeq)}); reading afresh`,
          );
          closeConsumer(msgs);
        }
      },
      Math.min(1000, STALL_MS),
    );
    try {
      if (stopped()) return false;
      for await (const m of msgs) {
        progressAt = performance.now();
        if (stopped()) return false;
        this.state.streamSeq = Math.max(this.state.streamSeq, m.seq + m.info.pending);
        applying = true;
        try {
          await runInSlices(
            this.onMessageSteps(m.seq, (k) => m.headers?.get(k), m.data),
            {
              sliceMs: APPLY_SLICE_MS,
              stopIf: () => (stopped() ? 'stopped' : undefined),
            },
          );
        } catch (e) {
          if (stopped()) return false; // given up between slices (its staged pieces removed: importRowsSteps)
          throw e;
        } finally {
          applying = false;
          progressAt = performance.now();
        }
        if (until !== undefined && m.seq >= until) return true;
        // live: said (and the mark held) through a catch-up, which also looks for a snapshot past it
        if (until === undefined && this.state.unconnected) throw this.notConnected(this.state.unconnected);
        this.state.persistMark(true);
        onApplied?.();
      }
      return false;
    } finally {
      clearInterval(watchdog);
      closeConsumer(msgs);
      // the one the client holds now (it makes another after a server restart or a gap, and deletes the one before)
      this.dropConsumer(() => c.delete());
    }
  }

  /**
   * Deletes a consumer this reader is done with, in the background (P21-4): nats.js only stops
   * reading, and the server kept each catch-up's and each stopped follow's consumer until its
   * inactive threshold. Never awaited (a role change does not wait on NATS); bounded by the
   * client's request timeout; a failure (NATS away, frozen) leaves it to READER_IDLE_MS, or to
   * the server's restart (the client makes them in memory, so a restart does not bring them back).
   */
  private dropConsumer(del: () => Promise<unknown>): void {
    del().catch(() => {});
  }

  /** Learns the stream's last seq and the rows its newest message leaves the group at. */
  async refreshEnd(): Promise<void> {
    try {
      const last = await this.state.jsm.streams.getMessage(this.state.stream, { last_by_subj: this.state.subject });
      // Ends before what was read: the stream was made again (NATS lost its store, or someone
      // deleted it) and the live consumer, which the client re-creates on the new stream at the
      // old position, waits there silently (probe17 N3): the watchdog replaces it.
      if ((last?.seq ?? 0) < this.state.readSeq)
        this.state.endBeforeRead = `the stream ends at seq ${last?.seq ?? 0}, before seq ${this.state.readSeq} this replica read (made again?)`;
      if (!last) return;
      this.state.streamSeq = Math.max(this.state.streamSeq, last.seq);
      // a message not signed by the group's key says nothing of where the group is (one part of a
      // batch of several cannot be checked alone: lag then shows once the batch is read)
      const m = await this.genuine(last.seq, 1);
      const rows = Number(m?.header.get(H.rows));
      if (Number.isSafeInteger(rows)) this.state.streamRows = Math.max(this.state.streamRows, rows);
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === STREAM_NOT_FOUND)
        this.state.endBeforeRead = 'the stream is gone';
      // NATS unreachable for a moment: lag stays as last known; the follow loop reports failures.
    }
  }

  /** Reads the stream from where this file stands to its current end, then drops local rows past the group's end. */
  async catchUp(): Promise<void> {
    const info = await this.state.jsm.streams.info(this.state.stream);
    if (this.state.isOtherStream(info)) this.state.streamSeq = 0; // the old stream's end says nothing of this one
    const last = info.state.last_seq;
    this.state.streamSeq = Math.max(this.state.streamSeq, last);
    if (this.state.seq + 1 < info.state.first_seq) {
      // The batches after this file's mark were trimmed: start from a snapshot the stream continues.
      const snap = await this.state.snapshots.newest(info.state.first_seq - 1);
      if (!snap) {
        throw Object.assign(
          new Error(
            `log stream ${this.state.stream}: this file stands at seq ${this.state.seq}, the stream starts at ${info.state.first_seq} and no snapshot covers the gap`,
          ),
          { code: 'TRIMMED' },
        );
      }
      this.applySnapshot(snap);
    }
    const markedEnd =
      this.state.markFromFile && this.state.groupEnd !== undefined && this.state.seq === last && last > 0;
    this.state.markFromFile = false;
    await this.readTo(last);
    if (markedEnd) await this.checkMarkAtEnd(last, this.state.groupEnd!);
    if (this.state.unconnected) {
      // Re-bootstrap: a snapshot written after the batch says where the group's log stands there.
      const snap = await this.state.snapshots.newest(this.state.unconnected.seq);
      if (!snap) throw this.notConnected(this.state.unconnected);
      this.state.say(
        `log stream ${this.state.stream}: seq ${this.state.unconnected.seq} does not continue this file (${this.state.unconnected.why}); starting again from snapshot seq-${snap.streamSeq}`,
      );
      this.state.unconnected = undefined;
      this.applySnapshot(snap); // refused (BEHIND_CUT, DIVERGED) when this file is not on its history either
      await this.readTo(last);
      if (this.state.unconnected) throw this.notConnected(this.state.unconnected);
    }
    this.state.readSeq = last;
    this.state.endBeforeRead = undefined; // judged afresh against what was read now
    if (this.state.groupEnd && this.state.log.isAhead(this.state.groupEnd)) {
      this.state.truncate(
        this.state.groupEnd,
        "rows past the end of the group's log stream (committed here, never appended)",
      );
    }
    this.state.markDirty = true;
    this.state.persistMark(false);
  }

  /**
   * A mark at the stream's end has no batch after it to show that it does not connect: the end's
   * own row count does. A release before this one moved the mark past batches it never stored
   * (probe9 G1), and such a replica, elected before the next batch, led from its stale end.
   */
  private async checkMarkAtEnd(last: number, end: LogPosition): Promise<void> {
    // (a forgery there, refused when read, must not make this replica unable to lead)
    const m = await this.genuine(last, Number.POSITIVE_INFINITY).catch(() => undefined);
    const rows = Number(m?.header.get(H.rows));
    if (!Number.isSafeInteger(rows) || rows <= rowCount(end)) return;
    this.state.unconnected = {
      seq: last,
      why: `the stream's last message leaves the group's log at ${rows} rows, this file's mark at ${rowCount(end)} rows at that seq (it passed batches it never stored)`,
    };
  }

  /**
   * The stream's message at `seq` when it is the group leader's (signed by its key: with the
   * batch's earlier parts, at most `maxParts` in all), else undefined. Without a key: the message.
   */
  private async genuine(seq: number, maxParts: number): Promise<StoredMsg | undefined> {
    const m = await this.state.jsm.streams.getMessage(this.state.stream, { seq }).catch(() => null);
    if (!m || !this.state.check) return m ?? undefined;
    const n = m.header.get(H.kind) === 'rows' ? Number(/^\d+\/(\d+)$/.exec(m.header.get(H.part))?.[1]) : 1;
    if (!Number.isSafeInteger(n) || n < 1 || n > maxParts || n > seq) return undefined;
    const reader = new LogStreamReader(this.state.check);
    let items: ReturnType<LogStreamReader['read']> = [];
    for (let s = seq - n + 1; s <= seq; s++) {
      const p =
        s === seq ? m : await this.state.jsm.streams.getMessage(this.state.stream, { seq: s }).catch(() => null);
      if (!p) return undefined;
      items = reader.read(s, (k) => p.header.get(k), p.data);
    }
    return items.some((i) => i.kind !== 'skip') ? m : undefined;
  }

  /** Reads from after `seq` to `last`, from a fresh reader. */
  private async readTo(last: number): Promise<void> {
    if (this.state.seq >= last) return;
    this.state.reader = new LogStreamReader(this.state.check);
    this.state.unconnected = undefined; // judged afresh from the messages after the mark
    if (!(await this.consumeFrom(this.state.seq + 1, last, () => false))) {
      throw new Error(`log stream ${this.state.stream}: reading stalled before seq ${last} (at ${this.state.readSeq})`);
    }
  }

  private notConnected(u: { seq: number; why: string }): Error {
    return Object.assign(
      new Error(
        `log stream ${this.state.stream} seq ${u.seq}: ${u.why}; this replica stays at seq ${this.state.seq} (it missed batches, or its file is another history) and cannot lead; a snapshot written after it restarts it, or move this file aside (or start with an empty --db) to bootstrap afresh`,
      ),
      { code: NOT_CONNECTED },
    );
  }

  /**
   * Reads and applies one message, in steps (run in slices by consumeFrom): a batch's checkpoint
   * pieces are parsed, checked and stored a piece a step, so a follower's heartbeats, view and
   * status go on while a first checkpoint's batch (~0.5 GB at 10,000 services of 250 endpoints)
   * is applied; in one call it held the thread 11–13 s (docs/scale.md).
   */
  private *onMessageSteps(
    seq: number,
    header: (k: string) => string | undefined,
    data: Uint8Array,
  ): Generator<void, void, void> {
    this.state.readSeq = seq;
    const items = yield* this.state.reader.readSteps(seq, header, data);
    // with a key, only the leader's own messages say how far the group is (a forged count held followers unready)
    const rows = !this.state.check || items.some((i) => i.kind !== 'skip') ? Number(header(H.rows)) : Number.NaN;
    if (Number.isSafeInteger(rows)) this.state.streamRows = Math.max(this.state.streamRows, rows);
    for (const item of items) {
      if (item.kind === 'skip') {
        this.state.say(`log stream ${this.state.stream} seq ${item.seq}: skipped: ${item.why}`);
        if (item.refused) {
          this.state.refusedBeforeEnd = true;
          this.state.lastRefused = { seq: item.seq, why: item.why };
        }
      } else if (item.kind === 'term') this.state.term = item.term;
      else yield* this.applySteps(item.batch, item.seq, item.term);
    }
    if (!this.state.reader.midBatch && !this.state.unconnected) {
      this.state.seq = seq;
      this.state.markDirty = true;
    }
  }

  private *applySteps(b: RowBatch, seq: number, term: number): Generator<void, void, void> {
    const refused = this.refusal(b, term);
    if (refused?.connects === false) return this.notApplied(seq, refused.why);
    if (refused) {
      this.state.say(`log stream ${this.state.stream} seq ${seq}: skipped: ${refused.why}`);
      return;
    }
    const mark = this.state.markAt(seq, b.to);
    if (this.state.log.holds(b.to)) {
      // Its chain rows are here (a restart re-reading after its mark, the leader's own batch, or a
      // batch of checkpoints alone: the leader's retention writes one at its cut). Its checkpoints
      // newer than this file's are stored; taken for "already here", this file's position fell
      // behind the group end it marked, and the next leader's first batch moved backwards (probe9 G1).
      const cps = checkpointsAfter(b, this.state.log.position());
      if (cps) {
        yield* this.state.log.importRowsSteps(cps, { mark });
        this.state.markDirty = false;
      }
    } else if (this.state.log.holds(b.from)) {
      if (this.state.log.isAhead(b.from))
        this.state.truncate(b.from, "rows past the group's position, replaced by the group's next batch", b);
      yield* this.state.log.importRowsSteps(b, { mark });
      this.state.markDirty = false;
    } else if (this.state.isEmpty() && this.state.refusedBeforeEnd && !this.state.groupEnd) {
      // Taking its anchors would make the batch this file's first rows, the rows before it (in a
      // refused message: unsigned, of a release before signed logs?) left out without a word.
      return this.notApplied(
        seq,
        `a batch from ${rowCount(b.from)} rows after messages refused as not the group's; an empty file does not start its copy there`,
      );
    } else if (this.state.isEmpty()) {
      // A new replica and a group seeded from a compacted log: take its anchors.
      yield* this.state.log.importRowsSteps(b, { mark, adoptAnchors: true });
      this.state.markDirty = false;
    } else {
      // This file's own retention removed rows the batch starts before (a leader's seed after NATS
      // lost its store, from a file compacted less): when its head is one of the batch's rows, by
      // id and chained hash, the rest of the batch continues it.
      const rest = this.restOf(b);
      const end = this.state.groupEnd;
      if (!rest && end && !samePosition(b.from, end) && term === this.state.ownTerm)
        return this.state.say(
          `log stream ${this.state.stream} seq ${seq}: skipped: a batch past the group's log of this replica's own term ${term}, which it never wrote (not applied)`,
        );
      if (!rest && end && !samePosition(b.from, end))
        return this.notApplied(
          seq,
          `a batch from ${rowCount(b.from)} rows, past the group's log at ${rowCount(end)} rows (batches between were missed)`,
        );
      if (!rest)
        throw Object.assign(
          new Error(
            `log stream ${this.state.stream} seq ${seq}: this file holds neither the batch's start nor its end (another history); move it aside to bootstrap afresh`,
          ),
          { code: 'DIVERGED' },
        );
      yield* this.state.log.importRowsSteps(rest, { mark });
      this.state.markDirty = false;
    }
    this.state.groupEnd = b.to;
    this.state.groupResume = b.resumePoints;
    this.state.refusedBeforeEnd = false;
    if (this.state.beforeNewStream && chainsCover(b.to, this.state.beforeNewStream)) {
      this.state.beforeNewStream = undefined;
      this.state.markDirty = true; // its import wrote no mark (markAt)
    }
    if (this.state.unconnected) {
      this.state.say(
        `log stream ${this.state.stream} seq ${seq}: continues this file's copy of the group's log: seq ${this.state.unconnected.seq} was not the group's (${this.state.unconnected.why})`,
      );
      this.state.unconnected = undefined;
    }
  }

  /** A batch that does not continue this file: the first one since the last applied holds `seq` (and the mark) before it. */
  private notApplied(seq: number, why: string): void {
    if (this.state.unconnected) return;
    this.state.unconnected = { seq, why };
    this.state.say(
      `log stream ${this.state.stream} seq ${seq}: not applied: ${why}; this replica's mark stays before it`,
    );
  }

  /**
   * Why a whole, well-formed batch is not the group's next one, or undefined when it may be. Every
   * genuine batch is appended conditional on the one before, so it starts where the group's log
   * ends and carries the newest claim's term. A verbatim copy of an earlier batch (a core publish
   * needs no expected sequence) passes every other check: applied, it moved every replica's group
   * end back and each truncated acknowledged rows to it (review2 R7).
   */
  private refusal(b: RowBatch, term: number): { why: string; connects?: false } | undefined {
    if (term < this.state.term)
      return { why: `a batch of term ${term} after a term ${this.state.term} claim (a copy; not applied)` };
    if (!covers(b.to, b.from) || samePosition(b.to, b.from))
      return { why: 'a batch whose end is not past its start (not applied)' };
    const end = this.state.groupEnd;
    if (!end || samePosition(b.from, end)) return undefined;
    // Past the group's end in every chain: batches were missed (a gap) or this file is another
    // history; apply() says which, loudly, as before.
    if (covers(b.from, end) && (rowCount(b.from) > rowCount(end) || b.from.checkpointSeq > end.checkpointSeq))
      return undefined;
    const why = `a batch from ${rowCount(b.from)} rows that does not continue the group's log at ${rowCount(end)} rows`;
    // Ending at or before the group's end in every chain: a copy of an earlier batch, no row this
    // file lacks (ids only: rows its retention removed cannot be compared, and a replayed copy must
    // never stop a replica, least of all a leader's claim).
    if (covers(end, b.to)) return { why: `${why} (a copy of an earlier batch; not applied)` };
    if (term === this.state.ownTerm)
      return { why: `${why} (of this replica's own term ${term}, which it never wrote; not applied)` };
    // Neither: skipped, the group end (and mark) moved past rows this file never stored (probe9 G1).
    return { why: `${why} nor lies within it`, connects: false };
  }

  /** The part of `b` after this file's head when that head is one of b's rows (else undefined). */
  private restOf(b: RowBatch): RowBatch | undefined {
    try {
      return sliceBatch(b, this.state.log.position());
    } catch {
      return undefined; // DIVERGED: the head is not on the batch's history
    }
  }

  private applySnapshot(s: Snapshot): void {
    const b = s.batch;
    this.state.term = s.term; // the claim the snapshot's batch was written under: the newest marker before it
    const mark = this.state.markAt(s.streamSeq, b.to);
    const before = rowCount(this.state.log.position());
    if (!this.state.log.holds(b.to)) {
      if (this.state.isEmpty()) this.state.log.importRows(b, { mark, adoptAnchors: true });
      else {
        this.refuseBehindCut(s);
        this.state.log.importRows(sliceBatch(b, this.state.log.position()), { mark });
      }
    } else {
      const cps = checkpointsAfter(b, this.state.log.position()); // as apply(): its chains are here, maybe not its checkpoints
      if (cps) this.state.log.importRows(cps, { mark });
    }
    this.state.seq = s.streamSeq;
    this.state.groupEnd = b.to;
    this.state.groupResume = b.resumePoints;
    this.state.refusedBeforeEnd = false;
    this.state.markDirty = true;
    this.state.say(
      `log stream ${this.state.stream}: caught up from snapshot seq-${s.streamSeq} (${rowCount(this.state.log.position()) - before} rows added)`,
    );
  }

  /**
   * A file whose rows end before the snapshot's first row on some chain cannot take it: the rows
   * between were compacted away from the group's log (the leader's retention, `db compact`) and
   * their batches trimmed from the stream while this replica was away, so nothing holds them. This
   * failed as "row N of this log is not the snapshot's (another history)", which is not what
   * happened and says nothing of what to do. The file's own rows stay as they are.
   */
  private refuseBehindCut(s: Snapshot): void {
    const at = this.state.log.position().chains;
    const start = s.batch.from.chains;
    const chain = CHAIN_NAMES.find((c) => at[c].id < start[c].id);
    if (!chain) return;
    throw Object.assign(
      new Error(
        `log stream ${this.state.stream}: this file's ${chain} end at row ${at[chain].id}, but the group's log was compacted past it while this replica was away: its newest snapshot (seq-${s.streamSeq}) starts after row ${start[chain].id} and the stream no longer holds the batches between; move this file aside (or start with an empty --db) to bootstrap from the snapshot`,
      ),
      { code: BEHIND_CUT },
    );
  }
}
