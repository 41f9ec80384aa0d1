/**
 * The replicated log's leader side and lifecycle: createLogReplicator, the stream's setup, claim()
 * and the fenced, conditional appends of flush(), the snapshots a leader writes, and the follow()
 * loop that hands reading to the follower side (log-follower.ts). The contract callers see is
 * log-replicator.ts; the state both sides move, replica-state.ts.
 */
import { hostname } from 'node:os';
import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
// A deep import kept on purpose (test/build/import-boundaries.test.ts says why).
import { consumerLimitRefusal } from '../bus/jetstream-refusal.ts';
import { abandonSignal, retryTransient } from '../bus/jetstream-transient.ts';
import { asRefusal, ReplicasRefused, refuseUnclustered } from '../bus/stream-replicas.ts';
import { liftStreamLimits, limitsTakenOffLine } from '../bus/stream-limits.ts';
import { runInSlices } from '../model/index.ts';
import { FailureLines } from './failure-lines.ts';
import { closeConsumer, LogFollower, STREAM_NOT_FOUND } from './log-follower.ts';
import {
  AHEAD_OF_NEW_STREAM,
  BEHIND_CUT,
  FencedError,
  type LogReplicator,
  type LogReplicatorOptions,
} from './log-replicator.ts';
import { batchRows, rowCount, type LogPosition } from './log-rows.ts';
import {
  LogStreamReader,
  batchParts,
  encodeBatchSteps,
  encodeTerm,
  type LogSign,
  type WireMessage,
} from './replication-codec.ts';
import { logSigning } from './replication-signing.ts';
import { SnapshotStore, snapshotBucket } from './replication-snapshots.ts';
import { ReplicaState } from './replica-state.ts';
import { LeaderSnapshots } from './leader-snapshots.ts';

// The contract's names stay importable from here, where they were defined before the split.
export {
  AHEAD_OF_NEW_STREAM,
  BEHIND_CUT,
  FencedError,
  NOT_CONNECTED,
  logStreamName,
  logSubject,
  type LogReplicator,
  type LogReplicatorOptions,
} from './log-replicator.ts';

const WRONG_LAST_SEQUENCE = 10071;
/** Longest a slice of a batch's encoding holds the thread (as the planner's builds: run-steps.ts). */
const ENCODE_SLICE_MS = 10;
/** Payload headroom below the server's max_payload for the headers of a part. */
const HEADER_ROOM = 8 * 1024;

export async function createLogReplicator(o: LogReplicatorOptions): Promise<LogReplicator> {
  if (!Number.isInteger(o.replicas) || o.replicas < 1)
    throw new Error(`log replicator: replicas must be a positive integer, got ${o.replicas}`);
  const jsm = await jetstreamManager(o.nc, { checkAPI: false });
  const r = new StreamLogReplicator(o, jsm, jetstream(o.nc));
  // JetStream answers nothing for a few seconds while a cluster elects a meta leader (a server
  // just died): wait that out, within appendTimeoutMs; a refusal (too many replicas...) is final.
  return retryTransient(
    async () => {
      await r.ensureStream();
      r.state.snapshots = await SnapshotStore.open({
        nc: o.nc,
        jsm,
        group: o.group,
        stream: r.state.stream,
        replicas: o.replicas,
        ...r.snapshotSigning,
        ...(o.logger ? { say: o.logger } : {}),
      }).catch((e: Error) => {
        throw new Error(
          `log snapshots of ${o.group}: cannot open their object store with ${o.replicas} replicas: ${e.message}`,
          { cause: e },
        );
      });
      // The same for the snapshots' object store (its stream OBJ_<bucket>): max_bytes with discard
      // old drops chunks of a stored snapshot, so a replica starting from it cannot read it; with
      // discard new (the object store's own) the next snapshot is refused and the log stream is
      // never trimmed.
      const objects = `OBJ_${snapshotBucket(o.group)}`;
      const lifted = await liftStreamLimits(jsm, objects, { maxAge: 0 });
      if (lifted) o.logger?.(limitsTakenOffLine('snapshots', objects, lifted));
      return r;
    },
    {
      withinMs: o.appendTimeoutMs ?? 30_000,
      pauseMs: 500,
      maxPauseMs: 500,
      onRetry: (e) => o.logger?.(`log stream ${r.state.stream}: JetStream not answering (${e.message}); retrying`),
    },
  );
}

class StreamLogReplicator implements LogReplicator {
  /** Where this file stands in the group's log: shared with the follower side. */
  readonly state: ReplicaState;
  /** The follower side: reads and applies the stream (catchUp() before a claim, the follow() loop). */
  private readonly follower: LogFollower;
  private readonly sign: LogSign;
  /** The group key's signature on the snapshots it writes, and the check of those it reads (as for messages). */
  readonly snapshotSigning: ReturnType<typeof logSigning>['snapshotSigning'];
  private followLoop: { stop(): Promise<void> } | undefined;
  private flushing: Promise<unknown> = Promise.resolve();
  private readonly maxPart: number;
  /** The snapshots this replica writes while it leads. */
  private readonly snapshots: LeaderSnapshots;
  /** Asks for the stream's end apart from the batches applied, so a backlog (or a stopped follower) shows as lagRows. */
  private readonly refresher: NodeJS.Timeout;
  /** Bumped by abandon(): a flush or claim started under an older epoch changes nothing when answered. */
  private epoch = 0;
  private abandoned = abandonSignal();

  constructor(
    private readonly options: LogReplicatorOptions,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
  ) {
    const signing = logSigning(options.group, options.signer, () => this.signingSeq);
    this.sign = signing.sign;
    this.snapshotSigning = signing.snapshotSigning;
    this.state = new ReplicaState(options, jsm, signing.check);
    this.follower = new LogFollower(this.state, js);
    this.snapshots = new LeaderSnapshots(this.state);
    this.maxPart = Math.max(4096, (options.nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM);
    this.refresher = setInterval(() => {
      // A flush writes the mark at most once per MARK_EVERY_MS: without this trailing write the last
      // flush of a burst stayed unmarked until the next write, and online retention, bounded by the
      // mark, said it was held by the group's log for as long as nothing was written (a probe saw > 40 s).
      this.state.persistMarkLate();
      if (this.state.mode !== 'leader') void this.follower.refreshEnd();
    }, options.lagRefreshMs ?? 1000);
    this.refresher.unref();
  }

  async ensureStream(): Promise<void> {
    refuseUnclustered(this.options.nc, this.options.replicas);
    let info;
    try {
      info = await this.jsm.streams.info(this.state.stream);
    } catch (e) {
      if (!(e instanceof JetStreamApiError) || e.code !== STREAM_NOT_FOUND) throw e;
      try {
        info = await this.jsm.streams.add({
          name: this.state.stream,
          subjects: [this.state.subject],
          num_replicas: this.options.replicas,
          storage: StorageType.File,
          retention: RetentionPolicy.Limits,
          discard: DiscardPolicy.Old,
          duplicate_window: 2 * 60 * 1_000_000_000,
          allow_direct: true,
        });
      } catch (e2) {
        // JetStream's placement refusals are the flag's one line (exit 2), as for every stream
        const refused = asRefusal(this.options.nc, this.options.replicas, e2);
        if (refused instanceof ReplicasRefused) throw refused;
        throw new Error(
          `log stream ${this.state.stream}: cannot create it with ${this.options.replicas} replicas: ${(e2 as Error).message}`,
          { cause: e2 },
        );
      }
    }
    // Limits someone gave the stream drop batches replicas still need (discard old; only a snapshot
    // bridges the gap) or refuse the next one (discard new): taken off, and said (probe17 N1).
    const lifted = await liftStreamLimits(this.jsm, this.state.stream, { maxAge: 0 }, info);
    if (lifted) {
      this.state.say(limitsTakenOffLine('log', this.state.stream, lifted));
      info = await this.jsm.streams.info(this.state.stream);
    }
    if (info.config.num_replicas !== this.options.replicas) {
      try {
        await this.jsm.streams.update(this.state.stream, { ...info.config, num_replicas: this.options.replicas });
        this.state.say(
          `log stream ${this.state.stream}: replicas ${info.config.num_replicas} -> ${this.options.replicas}`,
        );
      } catch (e) {
        const refused = asRefusal(this.options.nc, this.options.replicas, e);
        if (refused instanceof ReplicasRefused) throw refused;
        throw new Error(
          `log stream ${this.state.stream}: cannot change replicas ${info.config.num_replicas} -> ${this.options.replicas}: ${(e as Error).message}`,
          { cause: e },
        );
      }
    }
    this.state.streamSeq = info.state.last_seq;
    if (!this.state.isOtherStream(info) && this.state.seq > info.state.last_seq) {
      // The stream was deleted and made again: our mark names messages that no longer exist.
      this.state.say(
        `log stream ${this.state.stream}: this file's mark (seq ${this.state.seq}) is past the stream's end (${info.state.last_seq}); reading it from the start`,
      );
      this.state.resetMark();
    }
  }

  follow(onApplied?: () => void): { caughtUp: Promise<void>; stop(): Promise<void>; problem(): string | undefined } {
    if (this.state.mode === 'closed') throw new Error('log replicator is closed');
    if (this.followLoop) throw new Error('log replicator is already following');
    this.abandon('following');
    this.state.mode = 'following';
    let resolveCaughtUp!: () => void;
    let rejectCaughtUp!: (e: unknown) => void;
    const caughtUp = new Promise<void>((res, rej) => {
      resolveCaughtUp = res;
      rejectCaughtUp = rej;
    });
    caughtUp.catch(() => {});
    let stopped = false;
    // Why following keeps failing (twice or more in a row, so a stalled consumer replaced at once
    // is not one); undefined once a catch-up worked. The group shows it (lastError, /readyz):
    // before, a follower whose file took no rows (a full disk) said ready while it fell behind for
    // good (probe5 H4).
    let problem: string | undefined;
    let live: ConsumerMessages | undefined;
    let wake: (() => void) | undefined;
    const loop = (async () => {
      let failures = 0;
      const lines = new FailureLines(`log stream ${this.state.stream}: following`);
      while (!stopped) {
        try {
          await this.follower.catchUp();
          resolveCaughtUp();
          const worked = lines.worked(performance.now());
          if (worked) this.state.say(worked);
          failures = 0;
          problem = undefined;
          this.state.reader = new LogStreamReader(this.state.check);
          // Returns when stopped, or when the consumer stalled (then: catch up afresh).
          await this.follower.consumeFrom(
            this.state.seq + 1,
            undefined,
            () => stopped,
            (c) => {
              live = c;
            },
            onApplied,
          );
          if (!stopped) throw new Error('the consumer stalled or ended');
        } catch (e) {
          if (stopped) break;
          failures++;
          // the account's consumer limit: which limit and what to do, not the server's bare words
          const why = consumerLimitRefusal(e) ?? (e as Error).message;
          if (failures >= 2) problem = why;
          const line = lines.failed(why, performance.now());
          if (line) this.state.say(line);
          const code = (e as { code?: string }).code;
          // (NOT_CONNECTED is not final: a batch that continues this file, or a snapshot, ends it)
          if (failures >= 3 && (code === 'DIVERGED' || code === BEHIND_CUT || code === AHEAD_OF_NEW_STREAM))
            rejectCaughtUp(e);
          // a pause between retries that stop() can cut short
          await new Promise<void>((res) => {
            wake = res;
            setTimeout(res, Math.min(5000, 250 * 2 ** Math.min(failures, 4)));
          });
        } finally {
          closeConsumer(live);
          live = undefined;
        }
      }
    })();
    const handle = {
      stop: async () => {
        stopped = true;
        wake?.();
        closeConsumer(live);
        await loop;
        this.state.persistMark(false);
        if (this.followLoop === handle) this.followLoop = undefined;
        if (this.state.mode === 'following') this.state.mode = 'idle';
      },
    };
    this.followLoop = handle;
    return { caughtUp, stop: handle.stop, problem: () => problem ?? this.follower.refusedProblem() };
  }

  refused(): string | undefined {
    return this.follower.refusedProblem();
  }

  async claim(term: number): Promise<void> {
    if (this.state.mode === 'closed') throw new Error('log replicator is closed');
    if (!Number.isSafeInteger(term) || term < 1) throw new Error(`claim: term must be a positive integer, got ${term}`);
    this.abandon(`claiming term ${term}`);
    const epoch = this.epoch;
    await this.followLoop?.stop();
    await this.ensureStream(); // NATS may have lost its store (the stream is gone): made again, the mark reset
    await this.follower.catchUp();
    // Terms are the lease's (ha): the stream records them in markers but does not judge them, so a
    // forged marker with a huge term cannot lock leaders out. The conditional append is the fence.
    // No batch in the stream and no mark: this file's rows seed the group (its first flush sends them).
    // (From the anchors: exporting the whole file for its start held a claim seconds at the envelope.)
    const flushed = this.state.groupEnd ?? this.state.log.anchorPosition();
    // After the stream's real end: parts of a batch its writer never finished are given up by this marker.
    const after = Math.max(this.state.seq, this.state.readSeq);
    this.signingSeq = after + 1; // a conditional append lands right after `after`, or not at all
    const seq = await this.append(
      encodeTerm(term, this.options.id ?? hostname(), rowCount(flushed), after, this.sign),
      after,
      epoch,
    );
    this.state.seq = seq;
    this.state.streamSeq = Math.max(this.state.streamSeq, seq);
    this.state.term = term;
    this.state.ownTerm = term;
    this.flushedAt = flushed;
    this.snapshots.claimed(rowCount(flushed)); // the newest snapshot's listing refines it, off the claim's path
    this.state.mode = 'leader';
    this.state.beforeNewStream = undefined; // this file's rows are the group's now (its first flush sends what the stream lacks)
    this.state.markDirty = true;
    this.state.persistMark(false);
    this.state.say(`log stream ${this.state.stream}: leading as term ${term} from seq ${seq}`);
  }

  private flushedAt: LogPosition | undefined;
  /** The stream seq the message being encoded will land at (its first part's): signed with it. */
  private signingSeq = 0;

  /**
   * One flush runs at a time, and callers arriving while one waits to start share it: it exports
   * every row committed before it starts, theirs included. Queuing one flush per call let the
   * leader's 200 ms flush timer pile up flushes behind appends that each wait out
   * appendTimeoutMs while NATS is away, so a publish's own flush waited behind all of them and the
   * planner could neither publish nor step down.
   */
  flush(): Promise<void> {
    if (this.pendingFlush) return this.pendingFlush;
    const run = this.flushing.then(() => {
      this.pendingFlush = undefined;
      return this.flushNow();
    });
    this.pendingFlush = run;
    this.flushing = run.catch(() => {});
    return run;
  }

  private pendingFlush: Promise<void> | undefined;

  private async flushNow(): Promise<void> {
    if (this.state.mode === 'fenced')
      throw new FencedError(`log stream ${this.state.stream}: this replica was fenced; follow() before writing`);
    // Not leading (never claimed, or stepped down and following): refused as a fence, since the
    // caller's only safe reaction is the same: publish nothing derived from these rows.
    if (this.state.mode !== 'leader' || !this.flushedAt)
      throw new FencedError(`log stream ${this.state.stream}: flush() while not leading (claim() first)`);
    // Taken before the export and encoding, both in slices (a first checkpoint's batch is ~0.5 GB at
    // 10,000 services × 250 endpoints): if this replica is abandoned meanwhile (a role change), its
    // first append refuses (the epoch is not this one).
    const epoch = this.epoch;
    let seq = this.state.seq;
    let batch = await runInSlices(this.state.log.exportRowsSteps(this.flushedAt), { sliceMs: ENCODE_SLICE_MS });
    if (batchRows(batch) === 0) return;
    if (batch.to.checkpointSeq < batch.from.checkpointSeq) {
      // This file lacks the group's newest checkpoint (a release before this one took a batch of
      // checkpoints alone for rows already here, probe9 G1): the group's position never moves
      // back, or every replica refuses this batch and all after it as not continuing its log.
      batch = { ...batch, to: { ...batch.to, checkpointSeq: batch.from.checkpointSeq } };
    }
    const encoded = await runInSlices(encodeBatchSteps(batch, this.state.term), { sliceMs: ENCODE_SLICE_MS });
    try {
      this.signingSeq = seq + 1; // the first part's: each part is appended conditional on the one before
      for (const part of batchParts(encoded, this.maxPart, this.sign)) seq = await this.append(part, seq, epoch);
    } catch (e) {
      if (epoch !== this.epoch) throw e; // abandoned: this replica follows or claims now, its state is theirs
      if (!(e instanceof FencedError)) {
        let reseeded: boolean;
        try {
          reseeded = await this.reseedIfStreamLost();
        } catch (e2) {
          if (e2 instanceof FencedError) this.state.mode = 'fenced';
          throw e2;
        }
        if (reseeded) return this.flushNow();
      }
      if (e instanceof FencedError) this.state.mode = 'fenced';
      throw e;
    }
    this.state.seq = seq;
    this.state.streamSeq = Math.max(this.state.streamSeq, seq);
    this.state.streamRows = rowCount(batch.to);
    this.flushedAt = batch.to;
    this.state.groupEnd = batch.to;
    this.state.groupResume = batch.resumePoints;
    this.state.markDirty = true;
    this.state.persistMark(true);
    this.snapshots.ifDue(batch);
  }

  /**
   * NATS lost its store while this replica led (the stream is gone, so every append fails): makes
   * the stream again and seeds it from this file under the same term, as a group's first start
   * does; the caller's next flush sends every row. True when it did. Safe against another planner
   * doing the same: both append expecting the new stream's first sequence and one is fenced.
   */
  private async reseedIfStreamLost(): Promise<boolean> {
    try {
      await this.jsm.streams.info(this.state.stream);
      return false; // still there: NATS is away or slow, the caller's error stands
    } catch (e) {
      if (!(e instanceof JetStreamApiError && e.code === STREAM_NOT_FOUND)) return false;
    }
    const term = this.state.term;
    this.state.say(
      `log stream ${this.state.stream}: gone (NATS lost its store?); making it again, seeded from this file as term ${term}`,
    );
    await this.claim(term);
    return true;
  }

  position(): { localSeq: number; streamSeq: number; lagRows: number; groupVersion?: number } {
    const end = this.state.mode === 'leader' ? this.flushedAt : this.state.groupEnd;
    const groupVersion = end ? { groupVersion: end.chains.versions.id } : {};
    if (this.state.mode === 'leader')
      return { localSeq: this.state.seq, streamSeq: this.state.seq, lagRows: 0, ...groupVersion };
    const local = rowCount(this.state.log.position());
    return {
      localSeq: this.state.seq,
      streamSeq: Math.max(this.state.streamSeq, this.state.seq),
      lagRows: Math.max(0, this.state.streamRows - local),
      ...groupVersion,
    };
  }

  abandon(why: string): void {
    this.epoch++;
    const old = this.abandoned;
    this.abandoned = abandonSignal();
    old.abandon(new Error(`log stream ${this.state.stream}: append abandoned (${why})`));
  }

  async close(): Promise<void> {
    if (this.state.mode === 'closed') return;
    clearInterval(this.refresher);
    this.abandon('closing');
    await this.followLoop?.stop();
    await this.flushing;
    await this.snapshots.settled();
    this.state.persistMark(false);
    this.state.mode = 'closed';
  }

  /**
   * Appends one message conditional on `expectedLast`, retrying through server failover with the
   * same message id (the server deduplicates a retry of an append it stored but never acknowledged).
   * A wrong-last-sequence answer is a fence unless the message after `expectedLast` is this one.
   */
  private async append(m: WireMessage, expectedLast: number, epoch: number): Promise<number> {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(m.headers)) h.set(k, v);
    const deadline = performance.now() + (this.options.appendTimeoutMs ?? 30_000);
    // Every wait races abandon(): an append nobody waits for any more must not hold the step-down.
    if (epoch !== this.epoch) throw new Error(`log stream ${this.state.stream}: append abandoned before it was sent`);
    const signal = this.abandoned; // this epoch's: rejected by the next abandon()
    const abandoned = signal.promise;
    // signal.race, not Promise.race: the epoch's promise is pending as long as this replica leads (probe21 P21-2)
    const unlessAbandoned = <T>(p: Promise<T>): Promise<T> => signal.race(p);
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await unlessAbandoned(
          this.js.publish(this.state.subject, m.payload, {
            msgID: m.msgId,
            headers: h,
            timeout: 5000,
            expect: { streamName: this.state.stream, lastSequence: expectedLast },
          }),
        );
        if (epoch !== this.epoch) return await abandoned;
        return ack.seq;
      } catch (e) {
        if (epoch !== this.epoch) throw e;
        if (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) {
          const next = await unlessAbandoned(
            this.jsm.streams.getMessage(this.state.stream, { seq: expectedLast + 1 }).catch(() => null),
          );
          if (next && next.header.get('Nats-Msg-Id') === m.msgId) return next.seq;
          throw new FencedError(
            `log stream ${this.state.stream}: another writer appended after seq ${expectedLast}; this replica no longer leads`,
          );
        }
        if (performance.now() > deadline) {
          throw new Error(
            `log stream ${this.state.stream}: append not acknowledged after ${attempt} tries: ${(e as Error).message}`,
            { cause: e },
          );
        }
        await unlessAbandoned(new Promise((res) => setTimeout(res, 250)));
      }
    }
  }
}
