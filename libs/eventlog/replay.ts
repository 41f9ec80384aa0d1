import {
  LATEST_READING_REVISION,
  readingRevisionOf,
  runSteps,
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
import { checkpointAtOrBefore, checkpointAtOrBeforeSteps, checkpointSeqAtOrBefore } from './checkpoints.ts';
import { EventLogError } from './event-log-error.ts';
import type { EventLog } from './event-log.ts';
import type { EventRow } from './event-row.ts';
import type { VersionRecord } from './version-record.ts';
import { databaseOf } from './database-handle.ts';
import { latestEventSeqsSql } from './log-queries.ts';
import { objectBeforeParity, rawBeforeParity } from './pre-parity-reading.ts';

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
  /** Read as a release before the parity readings (RebuildOptions.beforeParity). */
  readonly beforeParity?: true;
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
  /**
   * Read as a release before the parity readings did (pre-parity-reading.ts): only for a
   * revision-1 version whose recorded hash the present reading misses (replayVersion does that).
   */
  readonly beforeParity?: boolean;
}

/**
 * The one fold of the log, used by planner restart, `replay`, audit, verify and compaction: the
 * object state (and current rejections) after every event up to `seq`. It starts from the nearest
 * checkpoint and reads only the deciding event of each object changed since, so its cost is
 * O(checkpoint + objects changed after it), not O(events).
 */
export function rebuildAtSeq(log: EventLog, seq: number, opts: RebuildOptions = {}): RebuildResult {
  return runSteps(rebuildAtSeqSteps(log, seq, opts));
}

/** Rows of the fold applied per step of rebuildAtSeqSteps. */
const FOLD_ROWS_PER_STEP = 256;

/**
 * rebuildAtSeq in steps: the checkpoint a piece a step, its objects a service a step, the events
 * after it a few hundred a step. At 10,000 services × 250 endpoints one call held the planner's
 * thread ~16 s, past its lease, at every role change (docs/scale.md); run in slices, the lease and
 * heartbeats go on between steps. Everything read is bounded by `seq` (the checkpoint at or before
 * it, the events up to it, read together once the checkpoint's objects are built), so rows appended
 * meanwhile are not part of it.
 */
export function* rebuildAtSeqSteps(
  log: EventLog,
  seq: number,
  opts: RebuildOptions = {},
): Generator<void, RebuildResult, void> {
  const last = log.lastSeq();
  if (!Number.isInteger(seq) || seq < 0 || seq > last)
    throw new EventLogError('NOT_FOUND', `seq ${seq} is not in the log (last seq ${last})`);
  const revision = opts.readingRevision ?? LATEST_READING_REVISION;
  const start = foldStart(log, seq, revision, opts.ignoreCheckpoints);
  if (start === 'compacted')
    throw new EventLogError(
      'COMPACTED',
      `events up to seq ${eventsAnchor(log)} were compacted and no checkpoint covers seq ${seq}`,
    );
  const cp =
    start.checkpoint === 'none'
      ? undefined
      : yield* checkpointAtOrBeforeSteps(databaseOf(log), seq, revision, {
          olderRevisions: start.checkpoint === 'older',
        });
  const from = cp?.seq ?? 0;
  const cpObjects = cp && opts.beforeParity ? cp.objects.map(objectBeforeParity) : cp?.objects;
  const state = cpObjects ? yield* ClusterState.fromObjectsSteps(cpObjects, revision) : new ClusterState(revision);
  const rejections = new Map((cp?.rejections ?? []).map((r) => [rejectionKey(r), r]));
  const db = databaseOf(log);
  const sql = 'SELECT seq, kind, type, namespace, name, object FROM events WHERE seq > ? AND seq <= ? ORDER BY seq';
  type Row = Pick<EventRow, 'seq' | 'kind' | 'type' | 'namespace' | 'name' | 'object'>;
  /**
   * Each object's latest event after `after`, in seq order: their seqs first (integers), then each
   * row by its own query as the fold takes it, so its steps share the reading. Read in one query, a
   * fold of every object at 10,000 services × 250 endpoints held a follower's thread ~0.5–0.6 s a
   * refresh; and no cursor stays open across a step (better-sqlite3 refuses a second query on the
   * connection while an iterator is open: the walk-back below, and others between steps).
   */
  function* latestRows(after: number): Generator<Row, void, void> {
    const seqs = db
      .prepare(`${latestEventSeqsSql('WHERE seq > ? AND seq <= ?')} ORDER BY 1`)
      .pluck()
      .all(after, seq) as number[];
    const rowAt = db.prepare('SELECT seq, kind, type, namespace, name, object FROM events WHERE seq = ?');
    for (const s of seqs) {
      const r = rowAt.get(s) as Row | undefined;
      // (retention removed it meanwhile: the caller's next rebuild reads the log as it stands then)
      if (!r)
        throw new EventLogError('NOT_FOUND', `event seq ${s} was removed while the state at seq ${seq} was rebuilt`);
      yield r;
    }
  }
  const outcome = (r: Row): WatchEventOutcome =>
    watchEventChange(
      {
        kind: r.kind,
        type: r.type,
        namespace: r.namespace,
        name: r.name,
        object: opts.beforeParity ? rawBeforeParity(r.kind, JSON.parse(r.object)) : JSON.parse(r.object),
      },
      revision,
    );
  // When an object's last event was rejected, its state is decided by an earlier event: walk back.
  const older = db.prepare(`SELECT seq, kind, type, namespace, name, object FROM events
    WHERE kind = ? AND namespace = ? AND name = ? AND seq > ? AND seq < ? ORDER BY seq DESC`);
  let n = 0;
  const rows = opts.sequential ? (db.prepare(sql).iterate(from, seq) as Iterable<Row>) : latestRows(from);
  for (const r of rows) {
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
    // (no step while the sequential path's cursor is open: the connection serves others between steps)
    if (!opts.sequential && n % FOLD_ROWS_PER_STEP === 0) yield;
  }
  yield* state.commitSteps();
  return {
    seq,
    hash: state.hash(),
    state,
    rejections,
    checkpointSeq: from,
    eventsApplied: n,
    ...(opts.beforeParity && { beforeParity: true as const }),
  };
}

/**
 * Where the fold up to `seq` at `revision` starts (reads no checkpoint's objects), or 'compacted'
 * when it cannot: the one test of "can this be rebuilt", which rebuildAtSeq applies and
 * replayableFrom asks of versions. A checkpoint holds objects as read under its revision. A fold
 * at a newer revision therefore starts from one of its own revision, or from the first event; only
 * where the events before every such start were compacted away does it start from a checkpoint of
 * an older revision: those objects keep the reading they were checkpointed with until their next
 * event (the entry builder's rules apply to all). Deterministic for a given log, so what it made
 * replays alike.
 */
function foldStart(
  log: EventLog,
  seq: number,
  revision: ReadingRevision,
  ignoreCheckpoints = false,
): { readonly checkpoint: 'own' | 'older' | 'none' } | 'compacted' {
  const anchor = eventsAnchor(log);
  const db = databaseOf(log);
  let at = ignoreCheckpoints ? undefined : checkpointSeqAtOrBefore(db, seq, revision);
  let checkpoint: 'own' | 'older' | 'none' = at === undefined ? 'none' : 'own';
  if (!ignoreCheckpoints && (at ?? 0) < anchor && seq > (at ?? 0)) {
    const older = checkpointSeqAtOrBefore(db, seq, revision, { olderRevisions: true });
    if (older !== undefined) {
      at = older;
      checkpoint = 'older';
    }
  }
  return (at ?? 0) < anchor && seq > (at ?? 0) ? 'compacted' : { checkpoint };
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
 * Why version n cannot be given: it is older than the oldest version the log rebuilds (COMPACTED,
 * one line naming that version, whether retention removed n's row or kept it as the parent of the
 * first rebuildable one or between a kept rollback and its source), or it never existed
 * (NOT_FOUND). The sentence an operator gets for any version retention took, in the log's terms
 * of versions, never of seqs and checkpoints.
 */
export function missingVersion(log: EventLog, n: number): EventLogError {
  const latest = log.latestVersion()?.version ?? 0;
  if (Number.isInteger(n) && n >= 1 && n <= latest) {
    const from = replayableFrom(log);
    return new EventLogError(
      'COMPACTED',
      from === undefined
        ? `version ${n} was compacted from the log (it rebuilds no version: run db verify --deep)`
        : `version ${n} was compacted from the log (it rebuilds versions from ${from} on)`,
    );
  }
  return new EventLogError('NOT_FOUND', `version ${n} does not exist (latest ${latest})`);
}

/** The versions chain's anchor: retention removed the version rows up to it (0: none). */
function versionsAnchor(log: EventLog): number {
  return databaseOf(log).prepare(`SELECT anchor_id FROM chain_heads WHERE chain = 'versions'`).pluck().get() as number;
}

/** The events chain's anchor: events up to it were compacted (0: none). */
function eventsAnchor(log: EventLog): number {
  return databaseOf(log).prepare(`SELECT anchor_id FROM chain_heads WHERE chain = 'events'`).pluck().get() as number;
}

/**
 * Whether version n's content rebuilds from this log: its row and its content source's are kept
 * and the fold of that source is not refused (foldStart).
 */
function versionRebuilds(log: EventLog, n: number): boolean {
  const src = followContent(log, n);
  return 'version' in src && foldStart(log, src.seqTo, src.readingRevision) !== 'compacted';
}

/**
 * The oldest version the log rebuilds, and every later one with it (probe11 K3: the one notion of
 * it): what `/status` and `db status` call `retention.oldestVersion`, where `ctl versions` starts,
 * what the COMPACTED sentence names, and the oldest version replay, pin, rollback and diff accept.
 * 1 when nothing was compacted; after `compactLog(log, N)`, N or an earlier version whose content
 * the checkpoint at the cut still gives. Undefined: no version. Rows kept below it (the parent of
 * the first one, kept for the versions stream's check; the rows between a kept rollback and its
 * source) are not rebuildable and answer COMPACTED. A planner whose versions stream lacks versions
 * below it republishes from it (review2 R8). Versions ending before the anchor are gone. Of those
 * ending at or after it, the ones up to the first checkpoint at or past the anchor are checked
 * (after a whole compaction: those ending exactly at the cut, a pin among them may copy a version
 * before it; after a run a crash cut short: those between the anchor and the cut, whose nearest
 * checkpoint is below the anchor), and every pin or rollback after them (one a run cut short did
 * not keep may copy removed content): every other version after them has its events from that
 * checkpoint on.
 */
export function replayableFrom(log: EventLog): number | undefined {
  const latest = log.latestVersion();
  if (!latest) return undefined;
  const anchor = eventsAnchor(log);
  if (anchor === 0) return 1;
  const db = databaseOf(log);
  const first = (db.prepare('SELECT min(seq) AS s FROM checkpoints WHERE seq >= ?').get(anchor) as { s: number | null })
    .s;
  if (first === null) return undefined; // nothing rebuilds past the anchor (run db verify --deep)
  const seqTo = db.prepare('SELECT seq_to AS s FROM versions WHERE version = ?').pluck();
  const lo = firstVersionEndingAtOrAfter(log, anchor, latest.version + 1);
  let from = lo;
  for (let v = lo; v <= latest.version && (seqTo.get(v) as number) <= first; v++)
    if (!versionRebuilds(log, v)) from = v + 1;
  // Pins and rollbacks copy older content: a run cut short may have removed the events of one it
  // does not keep (below the version it keeps from, above the anchor so far). Few rows: read them all.
  const pins = db
    .prepare('SELECT version FROM versions WHERE version >= ? AND content_of IS NOT NULL ORDER BY version DESC')
    .pluck()
    .all(from) as number[];
  for (const v of pins)
    if (!versionRebuilds(log, v)) {
      from = Math.max(from, v + 1);
      break;
    }
  return from <= latest.version ? from : undefined;
}

/**
 * The first version whose last event is at or after `seq`, found by bisection below `hi` (seq_to
 * never decreases along versions: a pin takes its parent's), without reading every version row;
 * `hi` when none is.
 */
export function firstVersionEndingAtOrAfter(log: EventLog, seq: number, hi: number): number {
  const seqTo = databaseOf(log).prepare('SELECT seq_to AS s FROM versions WHERE version = ?').pluck();
  let lo = versionsAnchor(log) + 1; // the rows below were compacted
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if ((seqTo.get(mid) as number) >= seq) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Follows pins/rollbacks (contentOf) to the version whose content came from events. */
export function contentSource(log: EventLog, n: number): VersionRecord {
  const r = followContent(log, n);
  if ('version' in r) return r;
  const why = missingVersion(log, r.missing);
  if (r.copiedBy === undefined) throw why;
  throw new EventLogError(why.code, `version ${r.copiedBy} copies version ${r.missing}: ${why.message}`);
}

/** contentSource's walk, saying which row is missing instead of why (versionRebuilds asks it). */
function followContent(log: EventLog, n: number): VersionRecord | { missing: number; copiedBy?: number } {
  let v = log.version(n);
  if (!v) return { missing: n };
  const seen = new Set<number>();
  while (v.contentOf !== undefined) {
    if (seen.has(v.version) || v.contentOf >= v.version)
      throw new EventLogError('INVALID', `version ${n}: content_of chain is not well founded at ${v.version}`);
    seen.add(v.version);
    const src: VersionRecord | undefined = log.version(v.contentOf);
    if (!src) return { missing: v.contentOf, copiedBy: v.version };
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
  // a row kept below the oldest rebuildable version (a parent, a rollback's span) says what an
  // older one says, not the fold's seq and checkpoint terms (probe11 K3)
  if (foldStart(log, source.seqTo, source.readingRevision, opts.ignoreCheckpoints) === 'compacted')
    throw missingVersion(log, n);
  return {
    ...rebuildVersionContent(log, source, source.hash, opts),
    version,
    source,
  };
}

/**
 * The fold of a version's content at the rules it was made under: its reading revision, and for a
 * revision-1 version that misses `recordedHash` so, the reading of a release before the parity
 * readings (pre-parity-reading.ts) when that one gives the recorded hash. Otherwise the first fold
 * (whose hash the caller compares and reports).
 */
export function rebuildVersionContent(
  log: EventLog,
  source: { readonly seqTo: number; readonly readingRevision: ReadingRevision },
  recordedHash: string,
  opts: RebuildOptions = {},
): RebuildResult {
  return runSteps(rebuildVersionContentSteps(log, source, recordedHash, opts));
}

/** rebuildVersionContent in steps (rebuildAtSeqSteps). */
export function* rebuildVersionContentSteps(
  log: EventLog,
  source: { readonly seqTo: number; readonly readingRevision: ReadingRevision },
  recordedHash: string,
  opts: RebuildOptions = {},
): Generator<void, RebuildResult, void> {
  const r = yield* rebuildAtSeqSteps(log, source.seqTo, { ...opts, readingRevision: source.readingRevision });
  if (r.hash === recordedHash || source.readingRevision !== 1 || opts.beforeParity) return r;
  const before = yield* rebuildAtSeqSteps(log, source.seqTo, { ...opts, readingRevision: 1, beforeParity: true });
  return before.hash === recordedHash ? before : r;
}

/** Rebuilds the version that was current at `at` (ISO-8601). */
export function replayAt(log: EventLog, at: string, opts: RebuildOptions = {}): VersionReplay {
  if (Number.isNaN(Date.parse(at))) throw new EventLogError('INVALID', `--at ${at}: not an ISO-8601 time`);
  const v = log.versionAt(new Date(at).toISOString());
  if (!v) {
    // before the oldest row kept: the version current then, if any, was compacted
    const from = versionsAnchor(log) > 0 ? replayableFrom(log) : undefined;
    const oldest = from === undefined ? undefined : log.version(from);
    if (oldest)
      throw new EventLogError(
        'COMPACTED',
        `the version current at ${at} was compacted from the log (it rebuilds versions from ${oldest.version} on, made at ${oldest.createdAt})`,
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

/**
 * The fold at `seq` under reading revision 1, as the release that wrote the log read it: with the
 * parity fields hidden when the newest revision-1 version up to `seq` rebuilds to its recorded hash
 * only so (a pre-K3 log, pre-parity-reading.ts). A checkpoint a compaction writes for revision-1
 * versions from it then rebuilds them (probe15 U8: the plain fold made their checkpoint, and every
 * retained version, the latest too, rebuilt to another hash: the planner refused to start).
 */
export function rebuildAtSeqAsWritten(log: EventLog, seq: number): RebuildResult {
  const v = databaseOf(log)
    .prepare(
      `SELECT seq_to AS seqTo, hash FROM versions
       WHERE seq_to <= ? AND content_of IS NULL AND reading_revision IS NULL ORDER BY version DESC LIMIT 1`,
    )
    .get(seq) as { seqTo: number; hash: string } | undefined;
  const plain = rebuildAtSeq(log, seq, { readingRevision: 1 });
  if (!v || (v.seqTo === seq && plain.hash === v.hash)) return plain;
  const its = rebuildVersionContent(log, { seqTo: v.seqTo, readingRevision: 1 }, v.hash);
  return its.beforeParity ? rebuildAtSeq(log, seq, { readingRevision: 1, beforeParity: true }) : plain;
}
