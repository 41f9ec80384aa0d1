import {
  LATEST_READING_REVISION,
  readingRevisionOf,
  type ReadingRevision,
  type VersionArtifact,
} from '../model/index.ts';
import {
  ClusterState,
  rejectionKey,
  watchEventChange,
  type ObjectRejection,
  type WatchEventOutcome,
} from '../planner/index.ts';
import { checkpointAtOrBefore } from './checkpoints.ts';
import { EventLogError } from './event-log-error.ts';
import type { EventLog } from './event-log.ts';
import type { EventRow } from './event-row.ts';
import type { VersionRecord } from './version-record.ts';
import { databaseOf } from './database-handle.ts';

export interface RebuildResult {
  readonly seq: number;
  readonly hash: string;
  readonly state: ClusterState;
  /** Objects whose latest event up to `seq` was rejected, by rejectionKey (their good state is in `state`). */
  readonly rejections: Map<string, ObjectRejection>;
  /** Seq of the checkpoint replay started from (0: from the empty state). */
  readonly checkpointSeq: number;
  /** Events read after the checkpoint. */
  readonly eventsApplied: number;
}

export interface RebuildOptions {
  /**
   * Apply every event in order instead of only the deciding event per object (default false).
   * Both give the same state because an object's state depends only on its last event that is
   * valid or a deletion (see watchEventChange); the sequential path exists to test that claim.
   */
  readonly sequential?: boolean;
  /** Ignore checkpoints and fold from the first event (the cold scan benchmarks compare against). */
  readonly ignoreCheckpoints?: boolean;
  /**
   * The reading revision to read the events with (default: the latest, what a planner reads new
   * events with). replayVersion passes the one the version was made under.
   */
  readonly readingRevision?: ReadingRevision;
}

/**
 * The one fold of the log, used by planner restart, `replay`, audit, verify and compaction: the
 * object state (and current rejections) after every event up to `seq`. It starts from the nearest
 * checkpoint and reads only the deciding event of each object changed since, so its cost is
 * O(checkpoint + objects changed after it), not O(events).
 */
export function rebuildAtSeq(log: EventLog, seq: number, opts: RebuildOptions = {}): RebuildResult {
  const last = log.lastSeq();
  if (!Number.isInteger(seq) || seq < 0 || seq > last)
    throw new EventLogError('NOT_FOUND', `seq ${seq} is not in the log (last seq ${last})`);
  const revision = opts.readingRevision ?? LATEST_READING_REVISION;
  const anchor = (
    databaseOf(log).prepare(`SELECT anchor_id AS a FROM chain_heads WHERE chain = 'events'`).get() as { a: number }
  ).a;
  let cp = opts.ignoreCheckpoints ? undefined : checkpointAtOrBefore(databaseOf(log), seq, revision);
  // A checkpoint holds objects as read under its revision. A fold at a newer revision therefore
  // starts from one of its own revision, or from the first event; only where the events before
  // every such start were compacted away does it start from a checkpoint of an older revision:
  // those objects keep the reading they were checkpointed with until their next event (the entry
  // builder's rules apply to all). Deterministic for a given log, so what it made replays alike.
  if (!opts.ignoreCheckpoints && (cp?.seq ?? 0) < anchor && seq > (cp?.seq ?? 0))
    cp = checkpointAtOrBefore(databaseOf(log), seq, revision, { olderRevisions: true }) ?? cp;
  const from = cp?.seq ?? 0;
  if (from < anchor && seq > from)
    throw new EventLogError(
      'COMPACTED',
      `events up to seq ${anchor} were compacted and no checkpoint covers seq ${seq}`,
    );
  const state = cp ? ClusterState.fromObjects(cp.objects, revision) : new ClusterState(revision);
  const rejections = new Map((cp?.rejections ?? []).map((r) => [rejectionKey(r), r]));
  const sql = opts.sequential
    ? 'SELECT seq, kind, type, namespace, name, object FROM events WHERE seq > ? AND seq <= ? ORDER BY seq'
    : `SELECT e.seq, e.kind, e.type, e.namespace, e.name, e.object FROM events e
         JOIN (SELECT max(seq) AS seq FROM events WHERE seq > ? AND seq <= ? GROUP BY kind, namespace, name) l ON e.seq = l.seq
       ORDER BY e.seq`;
  type Row = Pick<EventRow, 'seq' | 'kind' | 'type' | 'namespace' | 'name' | 'object'>;
  const outcome = (r: Row): WatchEventOutcome =>
    watchEventChange(
      {
        kind: r.kind,
        type: r.type,
        namespace: r.namespace,
        name: r.name,
        object: JSON.parse(r.object),
      },
      revision,
    );
  // When an object's last event was rejected, its state is decided by an earlier event: walk back.
  const older = databaseOf(log).prepare(`SELECT seq, kind, type, namespace, name, object FROM events
    WHERE kind = ? AND namespace = ? AND name = ? AND seq > ? AND seq < ? ORDER BY seq DESC`);
  let n = 0;
  // The fold reads one row per object, so it is materialised: better-sqlite3 refuses a second
  // query on the connection while an iterator is open, and the walk-back needs one.
  const rows = databaseOf(log).prepare(sql);
  for (const r of (opts.sequential ? rows.iterate(from, seq) : rows.all(from, seq)) as Iterable<Row>) {
    n++;
    let o = outcome(r);
    const key = rejectionKey(r);
    if ('rejected' in o)
      rejections.set(key, { kind: r.kind, namespace: r.namespace, name: r.name, reason: o.rejected, seq: r.seq });
    else rejections.delete(key);
    if (!opts.sequential && 'rejected' in o) {
      for (const e of older.iterate(r.kind, r.namespace, r.name, from, r.seq) as Iterable<Row>) {
        n++;
        o = outcome(e);
        if ('change' in o) break;
      }
    }
    if ('change' in o) state.apply(o.change); // else: the checkpoint's state of that object stands
  }
  state.commit();
  return { seq, hash: state.hash(), state, rejections, checkpointSeq: from, eventsApplied: n };
}

/**
 * The reading revision the planner read the events up to `seq` with: that of the first version
 * made from events that covers `seq` (its seq range ends at or after it), or the latest revision
 * when no version covers it yet (a planner reads new events with the latest). `replay --to-seq`
 * folds with it, so a seq inside a revision-1 stretch of an upgraded log rebuilds what that
 * planner saw, not what this release would read.
 */
export function readingRevisionAtSeq(log: EventLog, seq: number): ReadingRevision {
  const row = databaseOf(log)
    .prepare(
      `SELECT coalesce(reading_revision, 1) AS r FROM versions
        WHERE seq_to >= ? AND content_of IS NULL ORDER BY version LIMIT 1`,
    )
    .get(seq) as { r: number } | undefined;
  return row ? readingRevisionOf(row.r, `the version covering seq ${seq}`) : LATEST_READING_REVISION;
}

/**
 * Why version n has no row: retention removed it (COMPACTED, one line naming the oldest row kept),
 * or it never existed (NOT_FOUND).
 */
export function missingVersion(log: EventLog, n: number): EventLogError {
  const anchor = versionsAnchor(log);
  if (Number.isInteger(n) && n >= 1 && n <= anchor)
    return new EventLogError(
      'COMPACTED',
      `version ${n} was compacted from the log (retention removed versions up to ${anchor}; the oldest kept is ${anchor + 1})`,
    );
  return new EventLogError('NOT_FOUND', `version ${n} does not exist (latest ${log.latestVersion()?.version ?? 0})`);
}

/** The versions chain's anchor: retention removed the version rows up to it (0: none). */
function versionsAnchor(log: EventLog): number {
  return databaseOf(log).prepare(`SELECT anchor_id FROM chain_heads WHERE chain = 'versions'`).pluck().get() as number;
}

/** Follows pins/rollbacks (contentOf) to the version whose content came from events. */
export function contentSource(log: EventLog, n: number): VersionRecord {
  let v = log.version(n);
  if (!v) throw missingVersion(log, n);
  const seen = new Set<number>();
  while (v.contentOf !== undefined) {
    if (seen.has(v.version) || v.contentOf >= v.version)
      throw new EventLogError('INVALID', `version ${n}: content_of chain is not well founded at ${v.version}`);
    seen.add(v.version);
    const src: VersionRecord | undefined = log.version(v.contentOf);
    if (!src) {
      const why = missingVersion(log, v.contentOf);
      throw new EventLogError(why.code, `version ${v.version} copies version ${v.contentOf}: ${why.message}`);
    }
    v = src;
  }
  return v;
}

export interface VersionReplay extends RebuildResult {
  readonly version: VersionRecord;
  /** The version whose events gave the content (itself unless a pin/rollback). */
  readonly source: VersionRecord;
}

/**
 * Rebuilds version n from the log, reading its events with the reading revision its content was
 * made under (its content source's); `hash` must equal the hash recorded for n.
 */
export function replayVersion(log: EventLog, n: number, opts: RebuildOptions = {}): VersionReplay {
  const version = log.version(n);
  if (!version) throw missingVersion(log, n);
  const source = contentSource(log, n);
  return {
    ...rebuildAtSeq(log, source.seqTo, { ...opts, readingRevision: source.readingRevision }),
    version,
    source,
  };
}

/** Rebuilds the version that was current at `at` (ISO-8601). */
export function replayAt(log: EventLog, at: string, opts: RebuildOptions = {}): VersionReplay {
  if (Number.isNaN(Date.parse(at))) throw new EventLogError('INVALID', `--at ${at}: not an ISO-8601 time`);
  const v = log.versionAt(new Date(at).toISOString());
  if (!v) {
    // before the oldest row kept: the version current then, if any, was compacted
    const anchor = versionsAnchor(log);
    const oldest = anchor > 0 ? log.version(anchor + 1) : undefined;
    if (oldest)
      throw new EventLogError(
        'COMPACTED',
        `the version current at ${at} was compacted from the log (the oldest kept, ${oldest.version}, was made at ${oldest.createdAt})`,
      );
    throw new EventLogError('NOT_FOUND', `no version existed at ${at}`);
  }
  return replayVersion(log, v.version, opts);
}

/**
 * What a publisher republishes for version n after a restart: the stored delta when there is one
 * (O(change)), else a full checkpoint form rebuilt from the log.
 */
export function versionArtifact(log: EventLog, n: number): VersionArtifact {
  const v = log.version(n);
  if (!v) throw missingVersion(log, n);
  const header = { version: v.version, parent: v.parent, hash: v.hash, reason: v.reason, createdAt: v.createdAt };
  const delta = log.versionDelta(n);
  if (delta) return { ...header, form: 'delta', delta };
  return { ...header, form: 'checkpoint', data: replayVersion(log, n).state.data.toClusterData() };
}
