/**
 * The replicated log's contract: what a planner holds (LogReplicator), what it passes to make one
 * (LogReplicatorOptions), the stream's names and the errors and codes callers react to. Separate
 * from the machinery (replication.ts: leader side; log-follower.ts: follower side; replica-state.ts:
 * what both share) so that a caller, or a reader, sees the surface without 1,000 lines of how.
 */
import type { NatsConnection } from '@nats-io/transport-node';
// A deep import kept on purpose (test/build/import-boundaries.test.ts says why).
import type { Signer } from '../bus/planner-signature.ts';
import type { EventLog } from './event-log.ts';

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
  /**
   * localSeq: the stream sequence this file has applied; streamSeq: the stream's last known; lagRows:
   * rows behind; groupVersion: the newest version the group's log holds as this replica last knew it
   * (a leader: what its last flush shipped; absent before it knows the group's end). A file whose
   * newest version is past it holds versions made here that the group never took (a leader's not
   * flushed yet; a deposed leader's until its follow() drops them).
   */
  position(): { localSeq: number; streamSeq: number; lagRows: number; groupVersion?: number };
  /**
   * Why this replica holds nothing of the group's log past a message it refused as not signed by
   * its key (another --signing-key than the group's, or a forged message: probe16 I4), undefined
   * otherwise. The planner group keeps such a replica out of the lease when the lease records say
   * the same (planner-group.ts checkKey); claim() itself goes on past a forged message.
   */
  refused(): string | undefined;
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

/** Stream and subject names of a group's log (JetStream names allow [A-Za-z0-9_-]). */
export function logStreamName(group: string): string {
  return `SB_LOG_${group.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}
export function logSubject(group: string): string {
  return `sb.log.${group.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

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
