import { hostname } from 'node:os';
import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type StoredMsg,
  type StreamInfo,
} from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
// A deep import kept on purpose (test/build/import-boundaries.test.ts says why).
import { abandonSignal, retryTransient } from '../bus/jetstream-transient.ts';
import { asRefusal, ReplicasRefused, refuseUnclustered } from '../bus/stream-replicas.ts';
import { liftStreamLimits, limitsTakenOffLine } from '../bus/stream-limits.ts';
// (the same: planner-signature.ts imports no lib that imports this one)
import { logMessageStatement, logSnapshotStatement, verifierFromPem, type Signer } from '../bus/planner-signature.ts';
import type { EventLog } from './event-log.ts';
import {
  batchRows,
  checkpointsAfter,
  rowCount,
  samePosition,
  sliceBatch,
  type LogPosition,
  type RawRow,
  type RowBatch,
} from './log-rows.ts';
import {
  H,
  LogStreamReader,
  encodeBatch,
  encodeTerm,
  type LogCheck,
  type LogSign,
  type WireMessage,
} from './replication-codec.ts';
import type { ReplicationMark } from './replication-mark.ts';
import { CHAIN_NAMES, type ChainName } from './row-chain.ts';
import {
  SnapshotStore,
  snapshotBucket,
  type Snapshot,
  type SnapshotCheck,
  type SnapshotSign,
  type SnapshotSigned,
} from './replication-snapshots.ts';
import { FailureLines } from './failure-lines.ts';

/** Another leader appended to the log stream: the caller must stop acting, then follow(). */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
}

export interface LogReplicator {
  /**
   * Follower mode: rows this file holds beyond the group's stream are dropped first (recorded in
   * replication_truncations, with the rows, and logged), then the stream's batches are applied as
   * they come until stop(); `caughtUp` resolves once the file holds the stream's end.
   * `onApplied`: called after each message the live follower applied (the file moved).
   */
  follow(onApplied?: () => void): { caughtUp: Promise<void>; stop(): Promise<void>; problem(): string | undefined };
  /**
   * Before acting as leader for `term`: stops following, catches up to the stream's end, then
   * appends a term marker conditional on the last sequence; FencedError if anyone appended since.
   */
  claim(term: number): Promise<void>;
  /**
   * Leader: publishes every local row not yet in the stream as one batch, conditional on the
   * expected last sequence; FencedError when deposed. Call after each EventLog write batch and
   * always before publishing anything derived from it.
   */
  flush(): Promise<void>;
  /**
   * Stops waiting for the flush (or claim marker) in flight: it rejects now with an Error (not a
   * FencedError) and changes nothing here when its append is answered later. Called when the
   * leader lost its lease: the append may still land (it is conditional on the last sequence, so
   * it lands only where it continues the group's log, and a later reader treats it as any batch),
   * but the step-down no longer waits out NATS timeouts for it. follow(), claim() and close() do it too.
   */
  abandon(why: string): void;
  /** localSeq: the stream sequence this file has applied; streamSeq: the stream's last known; lagRows: rows behind. */
  position(): { localSeq: number; streamSeq: number; lagRows: number };
  close(): Promise<void>;
}

export interface LogReplicatorOptions {
  readonly log: EventLog;
  readonly nc: NatsConnection;
  /** The planner group: one log stream per group. */
  readonly group: string;
  /** Stream replicas (the planner's --replicas). */
  readonly replicas: number;
  readonly logger?: (line: string) => void;
  /** Names this replica in term markers (default: hostname). */
  readonly id?: string;
  /** How long an append keeps retrying through server failover before flush() throws (default 30 s). */
  readonly appendTimeoutMs?: number;
  /**
   * The leader snapshots the log after this many new rows, or as many as the log held at the last
   * snapshot if more (default 50,000; 0: never), and trims the stream below the previous snapshot
   * (retention: see replication-snapshots.ts).
   */
  readonly snapshotEveryRows?: number;
  /** How often a follower asks for the stream's end, for position().lagRows (default 1 s). */
  readonly lagRefreshMs?: number;
  /**
   * The planner's signing key (planners of a group share it): every batch and term marker this
   * replica appends is signed with it, and every one it reads must be signed by it, or it is
   * skipped with one line and not applied (probe10 H11: the chain alone let anyone who may publish
   * on the subject write rows into every replica's history). Absent: nothing is signed or checked.
   */
  readonly signer?: Signer;
  /**
   * Drop rows an earlier log stream of the group acknowledged when the stream read now was made
   * again since and holds less (a whole-site restore whose older backup claimed first). Default:
   * refused with AHEAD_OF_NEW_STREAM, nothing dropped (probe13 R4). The planner's --accept-truncation.
   */
  readonly acceptTruncation?: boolean;
}

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

/** Stream and subject names of a group's log (JetStream names allow [A-Za-z0-9_-]). */
export function logStreamName(group: string): string {
  return `SB_LOG_${group.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}
export function logSubject(group: string): string {
  return `sb.log.${group.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

const WRONG_LAST_SEQUENCE = 10071;
const STREAM_NOT_FOUND = 10059;
/** Payload headroom below the server's max_payload for the headers of a part. */
const HEADER_ROOM = 8 * 1024;
/** The leader persists its stream mark at most this often (a restart re-reads at most that much). */
const MARK_EVERY_MS = 1000;
/** The code of the error that refuses a file whose rows end before the group's compaction cut (refuseBehindCut). */
export const BEHIND_CUT = 'BEHIND_CUT';
/**
 * The code of the error that stops a follower at a batch that neither continues its copy of the
 * group's log nor lies within it (see refusal()): it missed batches, or its file is another history.
 */
export const NOT_CONNECTED = 'NOT_CONNECTED';
/**
 * The code of the error that refuses to drop rows an earlier stream of the group acknowledged
 * because the stream read now, made again since (NATS lost its store), holds less (probe13 R4).
 */
export const AHEAD_OF_NEW_STREAM = 'AHEAD_OF_NEW_STREAM';

/** A consumer that delivers nothing this long while the stream has more is replaced. */
const STALL_MS = 5000;
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
      r.snapshots = await SnapshotStore.open({
        nc: o.nc,
        jsm,
        group: o.group,
        stream: r.stream,
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
      onRetry: (e) => o.logger?.(`log stream ${r.stream}: JetStream not answering (${e.message}); retrying`),
    },
  );
}

/**
 * Stops a consumer without waiting: its close() promise settles only once the iterator has been
 * drained, which never happens for one stopped before its first message.
 */
function closeConsumer(c: ConsumerMessages | undefined): void {
  c?.close().catch(() => {});
}

type Mode = 'idle' | 'following' | 'leader' | 'fenced' | 'closed';

class StreamLogReplicator implements LogReplicator {
  readonly stream: string;
  readonly subject: string;
  private mode: Mode = 'idle';
  private readonly log: EventLog;
  private readonly say: (line: string) => void;
  private readonly sign: LogSign;
  private readonly check: LogCheck;
  private reader: LogStreamReader;
  /** Last stream seq fully processed (never inside a half-read batch): where reading resumes. */
  private seq = 0;
  /** Last stream seq read at all (parts of a batch its writer never finished included): what a claim must follow. */
  private readSeq = 0;
  /** Why the live consumer reads a stream that is not there any more (refreshEnd; its watchdog acts on it). */
  private endBeforeRead: string | undefined;
  /**
   * The term of the newest marker read (or this leader's own): a batch of an older term is a copy
   * (a deposed leader's batch cannot land after a newer claim: appends are conditional). Newest,
   * not highest: a forged marker with a huge term must not make every later leader's batches look old.
   */
  private term = 0;
  /**
   * The position the group's stream ends at, as far as read (undefined: no batch yet, no mark).
   * Only moves forward: apply() takes a batch only when it starts exactly here.
   */
  private groupEnd: LogPosition | undefined;
  /**
   * The first batch read since the last one applied that does not continue this file's copy of the
   * group's log and is no copy of an earlier batch (refusal()). While set, `seq` (and so the mark)
   * stays before it: a batch that continues the group's end clears it (the stream went on from
   * here: the batch was not the group's), a snapshot past it restarts from there, else following
   * and claiming fail with NOT_CONNECTED (probe9 G1: every such batch was skipped while the mark
   * moved past it, and the replica, elected later, forked the group's log from its stale end).
   */
  private unconnected: { readonly seq: number; readonly why: string } | undefined;
  /**
   * The term this process last claimed: only it writes batches of that term (the lease gives a
   * term one holder; appends are conditional), so one it reads that does not continue its log is
   * no leader's, and a claim after a fence skips it rather than stop at it.
   */
  private ownTerm = 0;
  /** Whether a message was refused (not signed by the group's key) since this file's copy last moved. */
  private refusedBeforeEnd = false;
  /** The newest message refused as not signed by the group's key, with why. */
  private lastRefused: { readonly seq: number; readonly why: string } | undefined;
  /** Whether seq and groupEnd are the file's mark, not yet checked against the stream (catchUp). */
  private markFromFile = false;
  /** The resume points of the group's last batch; undefined until one is read (a truncation then keeps none). */
  private groupResume: readonly RawRow[] | undefined;
  private markDirty = false;
  private lastMarkAt = Number.NEGATIVE_INFINITY;
  /** Stream end as last seen (seq, and rows it leaves the group at) for lag. */
  private streamSeq = 0;
  private streamRows = 0;
  private follower: { stop(): Promise<void> } | undefined;
  /**
   * The creation time of the stream this process read its seq from (stream info's `created`): a
   * stream made again after NATS lost its store has the same name and counts from 1 again, so its
   * sequences say nothing about where this file stands. Undefined until this process reads info.
   */
  private streamCreated: string | undefined;
  /**
   * This file's position when its mark turned out to name an earlier stream of the group (one
   * NATS lost; this stream was made again since): its rows up to here were written under that
   * stream, acknowledged there (published, rolled out), so they are not an unflushed tail. A
   * truncation that would drop any of them is refused unless acceptTruncation (probe13 R4: a
   * whole-site restore whose older backup claimed the new stream first silently took back a
   * newer file's versions and its rolled-out config revision). Cleared once the group's log here
   * reaches it, or when this replica leads (its file then seeds the stream).
   */
  private beforeNewStream: LogPosition | undefined;
  private flushing: Promise<unknown> = Promise.resolve();
  private readonly maxPart: number;
  /** The bytes one pull of a follower's consumer asks for at most (see PULL_PAYLOADS). */
  private readonly pullBytes: number;
  snapshots!: SnapshotStore;
  /** The group key's signature on the snapshots it writes, and the check of those it reads (as for messages). */
  readonly snapshotSigning: { sign?: SnapshotSign; check?: SnapshotCheck } = {};
  private snapshotRows = 0;
  /** The rows the file held at the last snapshot (heldRows): the next one's spacing (probe9 J3). */
  private snapshotHeld = 0;
  private snapshotting: Promise<unknown> = Promise.resolve();
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
    this.log = options.log;
    this.stream = logStreamName(options.group);
    this.subject = logSubject(options.group);
    this.say = options.logger ?? (() => {});
    const signer = options.signer;
    const statement = (m: Parameters<NonNullable<LogSign>>[0], seq: number) =>
      logMessageStatement({ ...m, group: options.group, seq });
    this.sign = signer && ((m) => signer.sign(statement(m, this.signingSeq)));
    const verifier = signer && verifierFromPem(signer.publicKeyPem, 'log signing key');
    this.check =
      verifier &&
      ((m, sig) =>
        !sig
          ? "not signed (no Sb-Log-Sig header: not this group's leader, or a release before signed logs)"
          : verifier.verify(statement(m, m.seq), sig)
            ? undefined
            : "its signature is not the group's signing key's over it (forged, altered, or replayed at another seq)");
    if (signer && verifier) {
      const of = (m: SnapshotSigned) => logSnapshotStatement({ ...m, group: options.group });
      this.snapshotSigning = {
        sign: (m) => signer.sign(of(m)),
        check: (m, sig) =>
          !sig
            ? "not signed (no sig in its metadata: not this group's leader's, or a release before signed snapshots)"
            : verifier.verify(of(m), sig)
              ? undefined
              : "its signature is not the group's signing key's over it (forged, altered, or renamed)",
      };
    }
    this.reader = new LogStreamReader(this.check);
    this.maxPart = Math.max(4096, (options.nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM);
    this.pullBytes = PULL_PAYLOADS * (options.nc.info?.max_payload ?? 1024 * 1024);
    this.refresher = setInterval(() => {
      // A flush writes the mark at most once per MARK_EVERY_MS: without this trailing write the last
      // flush of a burst stayed unmarked until the next write, and online retention, bounded by the
      // mark, said it was held by the group's log for as long as nothing was written (a probe saw > 40 s).
      this.persistMarkLate();
      if (this.mode !== 'leader') void this.refreshEnd();
    }, options.lagRefreshMs ?? 1000);
    this.refresher.unref();
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

  async ensureStream(): Promise<void> {
    refuseUnclustered(this.options.nc, this.options.replicas);
    let info;
    try {
      info = await this.jsm.streams.info(this.stream);
    } catch (e) {
      if (!(e instanceof JetStreamApiError) || e.code !== STREAM_NOT_FOUND) throw e;
      try {
        info = await this.jsm.streams.add({
          name: this.stream,
          subjects: [this.subject],
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
          `log stream ${this.stream}: cannot create it with ${this.options.replicas} replicas: ${(e2 as Error).message}`,
          { cause: e2 },
        );
      }
    }
    // Limits someone gave the stream drop batches replicas still need (discard old; only a snapshot
    // bridges the gap) or refuse the next one (discard new): taken off, and said (probe17 N1).
    const lifted = await liftStreamLimits(this.jsm, this.stream, { maxAge: 0 }, info);
    if (lifted) {
      this.say(limitsTakenOffLine('log', this.stream, lifted));
      info = await this.jsm.streams.info(this.stream);
    }
    if (info.config.num_replicas !== this.options.replicas) {
      try {
        await this.jsm.streams.update(this.stream, { ...info.config, num_replicas: this.options.replicas });
        this.say(`log stream ${this.stream}: replicas ${info.config.num_replicas} -> ${this.options.replicas}`);
      } catch (e) {
        const refused = asRefusal(this.options.nc, this.options.replicas, e);
        if (refused instanceof ReplicasRefused) throw refused;
        throw new Error(
          `log stream ${this.stream}: cannot change replicas ${info.config.num_replicas} -> ${this.options.replicas}: ${(e as Error).message}`,
          { cause: e },
        );
      }
    }
    this.streamSeq = info.state.last_seq;
    if (!this.isOtherStream(info) && this.seq > info.state.last_seq) {
      // The stream was deleted and made again: our mark names messages that no longer exist.
      this.say(
        `log stream ${this.stream}: this file's mark (seq ${this.seq}) is past the stream's end (${info.state.last_seq}); reading it from the start`,
      );
      this.resetMark();
    }
  }

  /**
   * Whether `info` is a stream made after the one this process read (NATS lost its store while it
   * ran): then the mark is reset and the stream read from its start, as a restart does when its
   * mark is past the new stream's end. Judged by identity, not by sequence: once the new stream's
   * sequences reach the old mark, a follower reading on would take the leader's re-seeded batches
   * for a gap after its end (or skip them all as an older term's, terms having restarted too).
   */
  private isOtherStream(info: StreamInfo): boolean {
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
  private markAt(streamSeq: number, position: LogPosition): ReplicationMark | undefined {
    return this.beforeNewStream ? undefined : { ...this.markBase(), streamSeq, position };
  }

  private resetMark(): void {
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

  follow(onApplied?: () => void): { caughtUp: Promise<void>; stop(): Promise<void>; problem(): string | undefined } {
    if (this.mode === 'closed') throw new Error('log replicator is closed');
    if (this.follower) throw new Error('log replicator is already following');
    this.abandon('following');
    this.mode = 'following';
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
      const lines = new FailureLines(`log stream ${this.stream}: following`);
      while (!stopped) {
        try {
          await this.catchUp();
          resolveCaughtUp();
          const worked = lines.worked(performance.now());
          if (worked) this.say(worked);
          failures = 0;
          problem = undefined;
          this.reader = new LogStreamReader(this.check);
          // Returns when stopped, or when the consumer stalled (then: catch up afresh).
          await this.consumeFrom(
            this.seq + 1,
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
          if (failures >= 2) problem = (e as Error).message;
          const line = lines.failed((e as Error).message, performance.now());
          if (line) this.say(line);
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
        this.persistMark(false);
        if (this.follower === handle) this.follower = undefined;
        if (this.mode === 'following') this.mode = 'idle';
      },
    };
    this.follower = handle;
    return { caughtUp, stop: handle.stop, problem: () => problem ?? this.refusedProblem() };
  }

  /**
   * Why this follower holds nothing of the group's log past a message it refused as not signed by
   * its key, while no genuine batch came after it (undefined otherwise). A planner started with
   * another key than its group's refuses every message, looked caught up (lag 0, no problem) and
   * took the lease at the next failover with none of the group's history (probe16 I4); a forged
   * message at the stream's end reads the same until the leader's next batch.
   */
  private refusedProblem(): string | undefined {
    const r = this.lastRefused;
    if (!this.refusedBeforeEnd || !r) return undefined;
    return `log stream ${this.stream} seq ${r.seq}: ${r.why}; this replica takes nothing of the group's log after it (a planner of the group with another --signing-key than this one's, or a message forged by a holder of the planners' NATS user: every planner of a group needs the same key)`;
  }

  async claim(term: number): Promise<void> {
    if (this.mode === 'closed') throw new Error('log replicator is closed');
    if (!Number.isSafeInteger(term) || term < 1) throw new Error(`claim: term must be a positive integer, got ${term}`);
    this.abandon(`claiming term ${term}`);
    const epoch = this.epoch;
    await this.follower?.stop();
    await this.ensureStream(); // NATS may have lost its store (the stream is gone): made again, the mark reset
    await this.catchUp();
    // Terms are the lease's (ha): the stream records them in markers but does not judge them, so a
    // forged marker with a huge term cannot lock leaders out. The conditional append is the fence.
    // No batch in the stream and no mark: this file's rows seed the group (its first flush sends them).
    const flushed = this.groupEnd ?? this.log.exportRows(this.log.position(), { whole: true }).from;
    const baseline = await this.snapshotBaseline(rowCount(flushed));
    // After the stream's real end: parts of a batch its writer never finished are given up by this marker.
    const after = Math.max(this.seq, this.readSeq);
    this.signingSeq = after + 1; // a conditional append lands right after `after`, or not at all
    const seq = await this.append(
      encodeTerm(term, this.options.id ?? hostname(), rowCount(flushed), after, this.sign),
      after,
      epoch,
    );
    this.seq = seq;
    this.streamSeq = Math.max(this.streamSeq, seq);
    this.term = term;
    this.ownTerm = term;
    this.flushedAt = flushed;
    this.snapshotRows = baseline;
    this.snapshotHeld = Math.min(baseline, this.log.heldRows());
    this.mode = 'leader';
    this.beforeNewStream = undefined; // this file's rows are the group's now (its first flush sends what the stream lacks)
    this.markDirty = true;
    this.persistMark(false);
    this.say(`log stream ${this.stream}: leading as term ${term} from seq ${seq}`);
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
    if (this.mode === 'fenced')
      throw new FencedError(`log stream ${this.stream}: this replica was fenced; follow() before writing`);
    // Not leading (never claimed, or stepped down and following): refused as a fence, since the
    // caller's only safe reaction is the same: publish nothing derived from these rows.
    if (this.mode !== 'leader' || !this.flushedAt)
      throw new FencedError(`log stream ${this.stream}: flush() while not leading (claim() first)`);
    let batch = this.log.exportRows(this.flushedAt);
    if (batchRows(batch) === 0) return;
    if (batch.to.checkpointSeq < batch.from.checkpointSeq) {
      // This file lacks the group's newest checkpoint (a release before this one took a batch of
      // checkpoints alone for rows already here, probe9 G1): the group's position never moves
      // back, or every replica refuses this batch and all after it as not continuing its log.
      batch = { ...batch, to: { ...batch.to, checkpointSeq: batch.from.checkpointSeq } };
    }
    const epoch = this.epoch;
    let seq = this.seq;
    try {
      this.signingSeq = seq + 1; // the first part's: each part is appended conditional on the one before
      for (const part of encodeBatch(batch, this.term, this.maxPart, this.sign))
        seq = await this.append(part, seq, epoch);
    } catch (e) {
      if (epoch !== this.epoch) throw e; // abandoned: this replica follows or claims now, its state is theirs
      if (!(e instanceof FencedError)) {
        let reseeded: boolean;
        try {
          reseeded = await this.reseedIfStreamLost();
        } catch (e2) {
          if (e2 instanceof FencedError) this.mode = 'fenced';
          throw e2;
        }
        if (reseeded) return this.flushNow();
      }
      if (e instanceof FencedError) this.mode = 'fenced';
      throw e;
    }
    this.seq = seq;
    this.streamSeq = Math.max(this.streamSeq, seq);
    this.streamRows = rowCount(batch.to);
    this.flushedAt = batch.to;
    this.groupEnd = batch.to;
    this.groupResume = batch.resumePoints;
    this.markDirty = true;
    this.persistMark(true);
    this.snapshotIfDue(batch);
  }

  /**
   * NATS lost its store while this replica led (the stream is gone, so every append fails): makes
   * the stream again and seeds it from this file under the same term, as a group's first start
   * does; the caller's next flush sends every row. True when it did. Safe against another planner
   * doing the same: both append expecting the new stream's first sequence and one is fenced.
   */
  private async reseedIfStreamLost(): Promise<boolean> {
    try {
      await this.jsm.streams.info(this.stream);
      return false; // still there: NATS is away or slow, the caller's error stands
    } catch (e) {
      if (!(e instanceof JetStreamApiError && e.code === STREAM_NOT_FOUND)) return false;
    }
    const term = this.term;
    this.say(
      `log stream ${this.stream}: gone (NATS lost its store?); making it again, seeded from this file as term ${term}`,
    );
    await this.claim(term);
    return true;
  }

  /**
   * Where a new leader's snapshot spacing starts: the rows of the group's newest snapshot (its
   * metadata), not this file's size, or a planner restarted (or failed over) more often than its
   * log doubles would never snapshot, nor trim the stream, again (review4 G4). At most `rows` (a
   * snapshot of a stream NATS since lost says nothing of this one); `rows` when the store does not answer.
   */
  private async snapshotBaseline(rows: number): Promise<number> {
    try {
      return Math.min(rows, await this.snapshots.newestRows());
    } catch (e) {
      this.say(
        `log stream ${this.stream}: cannot list snapshots (${(e as Error).message}); next one after ${rows} more rows`,
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
  private snapshotIfDue(flushed: RowBatch): void {
    const every = this.options.snapshotEveryRows ?? 50_000;
    const rows = rowCount(flushed.to);
    // A snapshot costs O(rows it holds); spacing them at least that many written rows apart keeps
    // it O(1) per row. Held, not ever written (probe9 J3): under retention the spacing, hence the
    // stream (one to two spacings), stays bounded by what the file keeps instead of doubling.
    if (every <= 0 || rows - this.snapshotRows < Math.max(every, this.snapshotHeld)) return;
    this.snapshotRows = rows;
    this.snapshotHeld = this.log.heldRows();
    const seq = this.seq;
    const term = this.term;
    const leading = () => this.mode === 'leader' && this.term === term;
    this.snapshotting = this.snapshotting.then(async () => {
      if (!leading()) return;
      const started = performance.now();
      try {
        const r = await this.snapshots.write({
          streamSeq: seq,
          term,
          to: flushed.to,
          resumePoints: flushed.resumePoints,
          slices: this.log.wholeSlices(flushed.to),
          leading,
        });
        this.say(
          `log stream ${this.stream}: snapshot at seq ${seq} (${r.rows} rows, ${r.bytes} bytes, ${Math.round(performance.now() - started)} ms)${r.trimmedBelow ? `; stream trimmed below seq ${r.trimmedBelow}` : ''}`,
        );
      } catch (e) {
        this.say(`log stream ${this.stream}: snapshot at seq ${seq} failed: ${(e as Error).message}`);
      }
    });
  }

  position(): { localSeq: number; streamSeq: number; lagRows: number } {
    if (this.mode === 'leader') return { localSeq: this.seq, streamSeq: this.seq, lagRows: 0 };
    const local = rowCount(this.log.position());
    return {
      localSeq: this.seq,
      streamSeq: Math.max(this.streamSeq, this.seq),
      lagRows: Math.max(0, this.streamRows - local),
    };
  }

  abandon(why: string): void {
    this.epoch++;
    const old = this.abandoned;
    this.abandoned = abandonSignal();
    old.abandon(new Error(`log stream ${this.stream}: append abandoned (${why})`));
  }

  async close(): Promise<void> {
    if (this.mode === 'closed') return;
    clearInterval(this.refresher);
    this.abandon('closing');
    await this.follower?.stop();
    await this.flushing;
    await this.snapshotting;
    this.persistMark(false);
    this.mode = 'closed';
  }

  /**
   * Applies the stream's messages from `start` (an ordered consumer) until seq `until` (true), or
   * until stopped (false). A watchdog closes the consumer when it delivers nothing for STALL_MS
   * while the stream has messages past it (false): a client consumer whose server was killed
   * can stay silent instead of failing over, so the caller starts afresh rather than trust it.
   */
  private async consumeFrom(
    start: number,
    until: number | undefined,
    stopped: () => boolean,
    onOpen?: (c: ConsumerMessages) => void,
    onApplied?: () => void,
  ): Promise<boolean> {
    const c = await this.js.consumers.get(this.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: start,
    });
    const msgs = await c.consume({ max_bytes: this.pullBytes });
    onOpen?.(msgs);
    // durations on the monotonic clock: a wall clock stepped back would silence the watchdog (probe12)
    let progressAt = performance.now();
    const watchdog = setInterval(
      () => {
        const gone = this.endBeforeRead;
        if (until === undefined && gone) {
          this.endBeforeRead = undefined;
          this.say(`log stream ${this.stream}: ${gone}; reading afresh`);
          closeConsumer(msgs);
          return;
        }
        const behind = until !== undefined || this.streamSeq > this.readSeq;
        if (behind && performance.now() - progressAt > STALL_MS) {
          this.say(
            `log stream ${this.stream}: no message for ${STALL_MS} ms at seq ${this.readSeq} (stream at ${Math.max(until ?? 0, this.streamSeq)}); reading afresh`,
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
        this.streamSeq = Math.max(this.streamSeq, m.seq + m.info.pending);
        this.onMessage(m.seq, (k) => m.headers?.get(k), m.data);
        if (until !== undefined && m.seq >= until) return true;
        // live: said (and the mark held) through a catch-up, which also looks for a snapshot past it
        if (until === undefined && this.unconnected) throw this.notConnected(this.unconnected);
        this.persistMark(true);
        onApplied?.();
      }
      return false;
    } finally {
      clearInterval(watchdog);
      closeConsumer(msgs);
    }
  }

  /** Learns the stream's last seq and the rows its newest message leaves the group at. */
  private async refreshEnd(): Promise<void> {
    try {
      const last = await this.jsm.streams.getMessage(this.stream, { last_by_subj: this.subject });
      // Ends before what was read: the stream was made again (NATS lost its store, or someone
      // deleted it) and the live consumer, which the client re-creates on the new stream at the
      // old position, waits there silently (probe17 N3): the watchdog replaces it.
      if ((last?.seq ?? 0) < this.readSeq)
        this.endBeforeRead = `the stream ends at seq ${last?.seq ?? 0}, before seq ${this.readSeq} this replica read (made again?)`;
      if (!last) return;
      this.streamSeq = Math.max(this.streamSeq, last.seq);
      // a message not signed by the group's key says nothing of where the group is (one part of a
      // batch of several cannot be checked alone: lag then shows once the batch is read)
      const m = await this.genuine(last.seq, 1);
      const rows = Number(m?.header.get(H.rows));
      if (Number.isSafeInteger(rows)) this.streamRows = Math.max(this.streamRows, rows);
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === STREAM_NOT_FOUND) this.endBeforeRead = 'the stream is gone';
      // NATS unreachable for a moment: lag stays as last known; the follow loop reports failures.
    }
  }

  /** Reads the stream from where this file stands to its current end, then drops local rows past the group's end. */
  private async catchUp(): Promise<void> {
    const info = await this.jsm.streams.info(this.stream);
    if (this.isOtherStream(info)) this.streamSeq = 0; // the old stream's end says nothing of this one
    const last = info.state.last_seq;
    this.streamSeq = Math.max(this.streamSeq, last);
    if (this.seq + 1 < info.state.first_seq) {
      // The batches after this file's mark were trimmed: start from a snapshot the stream continues.
      const snap = await this.snapshots.newest(info.state.first_seq - 1);
      if (!snap) {
        throw Object.assign(
          new Error(
            `log stream ${this.stream}: this file stands at seq ${this.seq}, the stream starts at ${info.state.first_seq} and no snapshot covers the gap`,
          ),
          { code: 'TRIMMED' },
        );
      }
      this.applySnapshot(snap);
    }
    const markedEnd = this.markFromFile && this.groupEnd !== undefined && this.seq === last && last > 0;
    this.markFromFile = false;
    await this.readTo(last);
    if (markedEnd) await this.checkMarkAtEnd(last, this.groupEnd!);
    if (this.unconnected) {
      // Re-bootstrap: a snapshot written after the batch says where the group's log stands there.
      const snap = await this.snapshots.newest(this.unconnected.seq);
      if (!snap) throw this.notConnected(this.unconnected);
      this.say(
        `log stream ${this.stream}: seq ${this.unconnected.seq} does not continue this file (${this.unconnected.why}); starting again from snapshot seq-${snap.streamSeq}`,
      );
      this.unconnected = undefined;
      this.applySnapshot(snap); // refused (BEHIND_CUT, DIVERGED) when this file is not on its history either
      await this.readTo(last);
      if (this.unconnected) throw this.notConnected(this.unconnected);
    }
    this.readSeq = last;
    this.endBeforeRead = undefined; // judged afresh against what was read now
    if (this.groupEnd && this.log.isAhead(this.groupEnd)) {
      this.truncate(this.groupEnd, "rows past the end of the group's log stream (committed here, never appended)");
    }
    this.markDirty = true;
    this.persistMark(false);
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
    this.unconnected = {
      seq: last,
      why: `the stream's last message leaves the group's log at ${rows} rows, this file's mark at ${rowCount(end)} rows at that seq (it passed batches it never stored)`,
    };
  }

  /**
   * The stream's message at `seq` when it is the group leader's (signed by its key: with the
   * batch's earlier parts, at most `maxParts` in all), else undefined. Without a key: the message.
   */
  private async genuine(seq: number, maxParts: number): Promise<StoredMsg | undefined> {
    const m = await this.jsm.streams.getMessage(this.stream, { seq }).catch(() => null);
    if (!m || !this.check) return m ?? undefined;
    const n = m.header.get(H.kind) === 'rows' ? Number(/^\d+\/(\d+)$/.exec(m.header.get(H.part))?.[1]) : 1;
    if (!Number.isSafeInteger(n) || n < 1 || n > maxParts || n > seq) return undefined;
    const reader = new LogStreamReader(this.check);
    let items: ReturnType<LogStreamReader['read']> = [];
    for (let s = seq - n + 1; s <= seq; s++) {
      const p = s === seq ? m : await this.jsm.streams.getMessage(this.stream, { seq: s }).catch(() => null);
      if (!p) return undefined;
      items = reader.read(s, (k) => p.header.get(k), p.data);
    }
    return items.some((i) => i.kind !== 'skip') ? m : undefined;
  }

  /** Reads from after `seq` to `last`, from a fresh reader. */
  private async readTo(last: number): Promise<void> {
    if (this.seq >= last) return;
    this.reader = new LogStreamReader(this.check);
    this.unconnected = undefined; // judged afresh from the messages after the mark
    if (!(await this.consumeFrom(this.seq + 1, last, () => false))) {
      throw new Error(`log stream ${this.stream}: reading stalled before seq ${last} (at ${this.readSeq})`);
    }
  }

  private notConnected(u: { seq: number; why: string }): Error {
    return Object.assign(
      new Error(
        `log stream ${this.stream} seq ${u.seq}: ${u.why}; this replica stays at seq ${this.seq} (it missed batches, or its file is another history) and cannot lead; a snapshot written after it restarts it, or move this file aside (or start with an empty --db) to bootstrap afresh`,
      ),
      { code: NOT_CONNECTED },
    );
  }

  private onMessage(seq: number, header: (k: string) => string | undefined, data: Uint8Array): void {
    this.readSeq = seq;
    const items = this.reader.read(seq, header, data);
    // with a key, only the leader's own messages say how far the group is (a forged count held followers unready)
    const rows = !this.check || items.some((i) => i.kind !== 'skip') ? Number(header(H.rows)) : Number.NaN;
    if (Number.isSafeInteger(rows)) this.streamRows = Math.max(this.streamRows, rows);
    for (const item of items) {
      if (item.kind === 'skip') {
        this.say(`log stream ${this.stream} seq ${item.seq}: skipped: ${item.why}`);
        if (item.refused) {
          this.refusedBeforeEnd = true;
          this.lastRefused = { seq: item.seq, why: item.why };
        }
      } else if (item.kind === 'term') this.term = item.term;
      else this.apply(item.batch, item.seq, item.term);
    }
    if (!this.reader.midBatch && !this.unconnected) {
      this.seq = seq;
      this.markDirty = true;
    }
  }

  private apply(b: RowBatch, seq: number, term: number): void {
    const refused = this.refusal(b, term);
    if (refused?.connects === false) return this.notApplied(seq, refused.why);
    if (refused) {
      this.say(`log stream ${this.stream} seq ${seq}: skipped: ${refused.why}`);
      return;
    }
    const mark = this.markAt(seq, b.to);
    if (this.log.holds(b.to)) {
      // Its chain rows are here (a restart re-reading after its mark, the leader's own batch, or a
      // batch of checkpoints alone: the leader's retention writes one at its cut). Its checkpoints
      // newer than this file's are stored; taken for "already here", this file's position fell
      // behind the group end it marked, and the next leader's first batch moved backwards (probe9 G1).
      const cps = checkpointsAfter(b, this.log.position());
      if (cps) {
        this.log.importRows(cps, { mark });
        this.markDirty = false;
      }
    } else if (this.log.holds(b.from)) {
      if (this.log.isAhead(b.from))
        this.truncate(b.from, "rows past the group's position, replaced by the group's next batch", b);
      this.log.importRows(b, { mark });
      this.markDirty = false;
    } else if (this.isEmpty() && this.refusedBeforeEnd && !this.groupEnd) {
      // Taking its anchors would make the batch this file's first rows, the rows before it (in a
      // refused message: unsigned, of a release before signed logs?) left out without a word.
      return this.notApplied(
        seq,
        `a batch from ${rowCount(b.from)} rows after messages refused as not the group's; an empty file does not start its copy there`,
      );
    } else if (this.isEmpty()) {
      // A new replica and a group seeded from a compacted log: take its anchors.
      this.log.importRows(b, { mark, adoptAnchors: true });
      this.markDirty = false;
    } else {
      // This file's own retention removed rows the batch starts before (a leader's seed after NATS
      // lost its store, from a file compacted less): when its head is one of the batch's rows, by
      // id and chained hash, the rest of the batch continues it.
      const rest = this.restOf(b);
      const end = this.groupEnd;
      if (!rest && end && !samePosition(b.from, end) && term === this.ownTerm)
        return this.say(
          `log stream ${this.stream} seq ${seq}: skipped: a batch past the group's log of this replica's own term ${term}, which it never wrote (not applied)`,
        );
      if (!rest && end && !samePosition(b.from, end))
        return this.notApplied(
          seq,
          `a batch from ${rowCount(b.from)} rows, past the group's log at ${rowCount(end)} rows (batches between were missed)`,
        );
      if (!rest)
        throw Object.assign(
          new Error(
            `log stream ${this.stream} seq ${seq}: this file holds neither the batch's start nor its end (another history); move it aside to bootstrap afresh`,
          ),
          { code: 'DIVERGED' },
        );
      this.log.importRows(rest, { mark });
      this.markDirty = false;
    }
    this.groupEnd = b.to;
    this.groupResume = b.resumePoints;
    this.refusedBeforeEnd = false;
    if (this.beforeNewStream && chainsCover(b.to, this.beforeNewStream)) {
      this.beforeNewStream = undefined;
      this.markDirty = true; // its import wrote no mark (markAt)
    }
    if (this.unconnected) {
      this.say(
        `log stream ${this.stream} seq ${seq}: continues this file's copy of the group's log: seq ${this.unconnected.seq} was not the group's (${this.unconnected.why})`,
      );
      this.unconnected = undefined;
    }
  }

  /** A batch that does not continue this file: the first one since the last applied holds `seq` (and the mark) before it. */
  private notApplied(seq: number, why: string): void {
    if (this.unconnected) return;
    this.unconnected = { seq, why };
    this.say(`log stream ${this.stream} seq ${seq}: not applied: ${why}; this replica's mark stays before it`);
  }

  /**
   * Why a whole, well-formed batch is not the group's next one, or undefined when it may be. Every
   * genuine batch is appended conditional on the one before, so it starts where the group's log
   * ends and carries the newest claim's term. A verbatim copy of an earlier batch (a core publish
   * needs no expected sequence) passes every other check: applied, it moved every replica's group
   * end back and each truncated acknowledged rows to it (review2 R7).
   */
  private refusal(b: RowBatch, term: number): { why: string; connects?: false } | undefined {
    if (term < this.term)
      return { why: `a batch of term ${term} after a term ${this.term} claim (a copy; not applied)` };
    if (!covers(b.to, b.from) || samePosition(b.to, b.from))
      return { why: 'a batch whose end is not past its start (not applied)' };
    const end = this.groupEnd;
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
    if (term === this.ownTerm)
      return { why: `${why} (of this replica's own term ${term}, which it never wrote; not applied)` };
    // Neither: skipped, the group end (and mark) moved past rows this file never stored (probe9 G1).
    return { why: `${why} nor lies within it`, connects: false };
  }

  /** The part of `b` after this file's head when that head is one of b's rows (else undefined). */
  private restOf(b: RowBatch): RowBatch | undefined {
    try {
      return sliceBatch(b, this.log.position());
    } catch {
      return undefined; // DIVERGED: the head is not on the batch's history
    }
  }

  private applySnapshot(s: Snapshot): void {
    const b = s.batch;
    this.term = s.term; // the claim the snapshot's batch was written under: the newest marker before it
    const mark = this.markAt(s.streamSeq, b.to);
    const before = rowCount(this.log.position());
    if (!this.log.holds(b.to)) {
      if (this.isEmpty()) this.log.importRows(b, { mark, adoptAnchors: true });
      else {
        this.refuseBehindCut(s);
        this.log.importRows(sliceBatch(b, this.log.position()), { mark });
      }
    } else {
      const cps = checkpointsAfter(b, this.log.position()); // as apply(): its chains are here, maybe not its checkpoints
      if (cps) this.log.importRows(cps, { mark });
    }
    this.seq = s.streamSeq;
    this.groupEnd = b.to;
    this.groupResume = b.resumePoints;
    this.refusedBeforeEnd = false;
    this.markDirty = true;
    this.say(
      `log stream ${this.stream}: caught up from snapshot seq-${s.streamSeq} (${rowCount(this.log.position()) - before} rows added)`,
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
    const at = this.log.position().chains;
    const start = s.batch.from.chains;
    const chain = CHAIN_NAMES.find((c) => at[c].id < start[c].id);
    if (!chain) return;
    throw Object.assign(
      new Error(
        `log stream ${this.stream}: this file's ${chain} end at row ${at[chain].id}, but the group's log was compacted past it while this replica was away: its newest snapshot (seq-${s.streamSeq}) starts after row ${start[chain].id} and the stream no longer holds the batches between; move this file aside (or start with an empty --db) to bootstrap from the snapshot`,
      ),
      { code: BEHIND_CUT },
    );
  }

  private isEmpty(): boolean {
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
  private truncate(to: LogPosition, reason: string, next?: RowBatch): void {
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
  private persistMarkLate(): void {
    try {
      this.persistMark(true);
    } catch {
      // the log reports its write trouble itself (the next flush's write fails too, and says why)
    }
  }

  private persistMark(lazily: boolean): void {
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
    if (epoch !== this.epoch) throw new Error(`log stream ${this.stream}: append abandoned before it was sent`);
    const { promise: abandoned } = this.abandoned; // this epoch's: rejected by the next abandon()
    const unlessAbandoned = <T>(p: Promise<T>): Promise<T> => Promise.race([p, abandoned]);
    for (let attempt = 1; ; attempt++) {
      try {
        const ack = await unlessAbandoned(
          this.js.publish(this.subject, m.payload, {
            msgID: m.msgId,
            headers: h,
            timeout: 5000,
            expect: { streamName: this.stream, lastSequence: expectedLast },
          }),
        );
        if (epoch !== this.epoch) return await abandoned;
        return ack.seq;
      } catch (e) {
        if (epoch !== this.epoch) throw e;
        if (e instanceof JetStreamApiError && e.code === WRONG_LAST_SEQUENCE) {
          const next = await unlessAbandoned(
            this.jsm.streams.getMessage(this.stream, { seq: expectedLast + 1 }).catch(() => null),
          );
          if (next && next.header.get('Nats-Msg-Id') === m.msgId) return next.seq;
          throw new FencedError(
            `log stream ${this.stream}: another writer appended after seq ${expectedLast}; this replica no longer leads`,
          );
        }
        if (performance.now() > deadline) {
          throw new Error(
            `log stream ${this.stream}: append not acknowledged after ${attempt} tries: ${(e as Error).message}`,
            { cause: e },
          );
        }
        await unlessAbandoned(new Promise((res) => setTimeout(res, 250)));
      }
    }
  }
}
