import type { ReadingRevision } from '../model/index.ts';
import { EventLogError, translateSqliteError } from './event-log-error.ts';
import type { EventLog } from './event-log.ts';
import { writeCheckpoint } from './checkpoints.ts';
import {
  contentSource,
  firstVersionEndingAtOrAfter,
  rebuildAtSeq,
  rebuildAtSeqAsWritten,
  replayableFrom,
  replayVersion,
  type RebuildResult,
} from './replay.ts';
import { lastReportIds } from './audit-queries.ts';
import { databaseOf } from './database-handle.ts';
import type { CompactionRecord } from './compaction-record.ts';

export { describeCompaction, type CompactionRecord } from './compaction-record.ts';
export { replayableFrom } from './replay.ts';

export interface CompactResult {
  /** Events up to this seq were removed; the chain now starts after it (its anchor). */
  readonly cutSeq: number;
  readonly eventsRemoved: number;
  readonly checkpointsRemoved: number;
  /** Checkpoints written so retained versions stay replayable. */
  readonly checkpointsWritten: number;
  /** ACK/NACK rows up to this id were removed; the acks chain now starts after it (its anchor). */
  readonly acksCutId: number;
  readonly acksRemoved: number;
  /** Version rows up to this one were removed; the versions chain now starts after it (its anchor). */
  readonly versionsCutId: number;
  readonly versionsRemoved: number;
  /**
   * The node whose last report (or last ACK) held the acks cut below the first report of version
   * `before`; undefined when nothing did.
   */
  readonly acksHeldBy?: { readonly node: string; readonly id: number };
}

/** How a compaction may cut, beyond the version it keeps from. */
export interface CompactionLimits {
  /**
   * Cut the events at the newest checkpoint at or before version `before`'s last event, when one
   * lies past the current anchor, instead of exactly there: nothing to fold and no checkpoint to
   * write (the planner writes one every 10,000 events), so every step of the run is a small delete;
   * the versions from the first one ending at or after that checkpoint stay replayable (a few more
   * than asked). Without one there, the cut is exact, as `db compact`'s always is.
   */
  readonly atCheckpoint?: boolean;
  /** Never cut the acks chain past this row id (what the group's log acknowledged). */
  readonly maxAcksId?: number;
  /** Never cut the versions chain past this version (what the group's log acknowledged). */
  readonly maxVersionsId?: number;
  /** Whether a node is one of the cluster's (default: the Nodes of the latest version, replayed). */
  readonly clusterHas?: (node: string) => boolean;
  /** Who runs it, as recorded in the compactions table (default 'db compact'). */
  readonly by?: string;
  readonly now?: () => Date;
}

type Phase = 'checkpoints' | 'events' | 'acks' | 'versions' | 'done';

/**
 * One compaction, planned from the log as it stands and carried out in small transactions
 * (`step`), each of which leaves a log that verifies and replays: (1) the checkpoints the retained
 * versions need are written; (2) events are removed a slice at a time from the chain's anchor up
 * to the cut, each slice moving the anchor to its last removed row (and removing the checkpoints
 * below it that no retained version reads); (3) ACK/NACK rows likewise up to the acks cut; (4) the
 * versions rows no kept version, pin or ACK/NACK row needs (versionsCut), likewise. A crash
 * between (or inside) steps leaves a log compacted up to the last committed slice: every
 * version it still rebuilds rebuilds exactly (rebuildAtSeq refuses, COMPACTED, a version whose
 * nearest checkpoint lies below the anchor), and `replayableFrom` says which those are. Each step
 * first checks that the plan still holds (the row at the cut and the checkpoints it keeps are
 * the ones planned): a replicated-log truncation in between makes it refuse, and the next run
 * plans afresh.
 */
export class Compaction {
  private phase: Phase = 'checkpoints';
  private folds: { seq: number; fold: RebuildResult }[] | undefined;
  private record = 0;
  private eventsRemoved = 0;
  private acksRemoved = 0;
  private versionsRemoved = 0;
  private checkpointsRemoved = 0;
  private checkpointsWritten = 0;
  private steps = 0;
  private longestMs = 0;

  private constructor(
    private readonly log: EventLog,
    /** The version asked for. */
    readonly before: number,
    /** The first version whose events (from the checkpoint at the cut) all stay. */
    readonly keepsFrom: number,
    readonly cut: number,
    private readonly cutHash: string,
    private readonly needed: ReadonlySet<number>,
    private readonly toWrite: readonly { readonly seq: number; readonly readingRevision: ReadingRevision }[],
    private readonly acks: { cutId: number; cutHash: string; heldBy?: { node: string; id: number } },
    /** latest: the newest version when planned (pins after it are read at each step). */
    private readonly versions: { cutId: number; cutHash: string; latest: number },
    private readonly limits: CompactionLimits,
  ) {}

  /**
   * Plans removing what lies before version `before` (reads only). The cut is `before`'s last
   * event (or, `atCheckpoint`, the newest checkpoint at or before it); the checkpoints kept are the
   * one at the cut and one at the content source of every retained pin/rollback that copies older
   * content; the acks cut is acksCut's for the first retained version, at most `maxAcksId`.
   */
  static plan(log: EventLog, before: number, limits: CompactionLimits = {}): Compaction {
    const target = log.version(before);
    if (!target) throw new EventLogError('NOT_FOUND', `compact: version ${before} does not exist`);
    const db = databaseOf(log);
    const anchor = chainAnchor(log, 'events');
    let cut = target.seqTo;
    if (limits.atCheckpoint) {
      const cp = (db.prepare('SELECT max(seq) AS s FROM checkpoints WHERE seq <= ?').get(cut) as { s: number | null })
        .s;
      if (cp !== null && cp > anchor) cut = cp;
    }
    const keepsFrom = cut === target.seqTo ? before : firstVersionEndingAtOrAfter(log, cut, before);
    // Each checkpoint is written under the reading revision of the versions that fold from it: the
    // one at the cut under the latest version's (what a restart and every version since the last
    // upgrade read with), one at a pin's older content under that content's. A retained version of
    // an older revision whose fold starts at the cut then replays only from a checkpoint of its own
    // revision past the cut, else is refused (COMPACTED): one seq holds one checkpoint.
    const revisionAt = new Map<number, ReadingRevision>([
      [cut, contentSource(log, log.latestVersion()!.version).readingRevision],
    ]);
    const pins = db
      .prepare('SELECT version FROM versions WHERE version >= ? AND content_of IS NOT NULL ORDER BY version')
      .pluck()
      .all(keepsFrom) as number[];
    for (const v of [keepsFrom, ...pins]) {
      const src = contentSource(log, v);
      if (src.seqTo < cut) revisionAt.set(src.seqTo, src.readingRevision);
    }
    const needed = new Set(revisionAt.keys());
    const have = new Set(
      (
        db.prepare('SELECT seq, coalesce(reading_revision, 1) AS r FROM checkpoints').all() as {
          seq: number;
          r: number;
        }[]
      )
        .filter((c) => revisionAt.get(c.seq) === c.r)
        .map((c) => c.seq),
    );
    const toWrite = [...needed]
      .filter((s) => !have.has(s))
      .sort((a, b) => a - b)
      .map((seq) => ({ seq, readingRevision: revisionAt.get(seq)! }));
    const cutHash = cut > anchor ? rowHash(log, 'events', cut) : chainAnchorHash(log, 'events');
    const a = acksCut(log, keepsFrom, limits.clusterHas);
    const acksAnchor = chainAnchor(log, 'acks');
    const cutId = Math.max(acksAnchor, Math.min(a.cutId, limits.maxAcksId ?? a.cutId));
    const acks = {
      cutId,
      cutHash: cutId > acksAnchor ? rowHash(log, 'acks', cutId) : chainAnchorHash(log, 'acks'),
      ...(a.heldBy ? { heldBy: a.heldBy } : {}),
    };
    const vAnchor = chainAnchor(log, 'versions');
    const vCut = Math.max(vAnchor, Math.min(versionsCut(log, cut), limits.maxVersionsId ?? Number.MAX_SAFE_INTEGER));
    const versions = {
      cutId: vCut,
      cutHash: vCut > vAnchor ? rowHash(log, 'versions', vCut) : chainAnchorHash(log, 'versions'),
      latest: log.latestVersion()!.version,
    };
    return new Compaction(log, before, keepsFrom, cut, cutHash, needed, toWrite, acks, versions, limits);
  }

  /**
   * Plans removing only the version rows before what the log already rebuilds (versionsCut at the
   * events' anchor; nothing of the other tables): what a run left when a crash cut it short in
   * its last phase, or what a release before probe9 V1 never removed, while the policy's target
   * stays at or below `replayableFrom` (no event is removed, no checkpoint written). The steps,
   * the record and the checks are a Compaction's.
   */
  static planVersionRows(log: EventLog, limits: CompactionLimits = {}): Compaction {
    const from = replayableFrom(log);
    const anchor = chainAnchor(log, 'events');
    const keeps = { cutId: chainAnchor(log, 'acks'), cutHash: chainAnchorHash(log, 'acks') };
    const vAnchor = chainAnchor(log, 'versions');
    // nothing rebuilds past the anchor (a damaged log: db verify --deep): no row goes
    const vCut =
      from === undefined
        ? vAnchor
        : Math.max(
            vAnchor,
            Math.min(versionsCut(log, anchor), from - 2, limits.maxVersionsId ?? Number.MAX_SAFE_INTEGER),
          );
    const versions = {
      cutId: vCut,
      cutHash: vCut > vAnchor ? rowHash(log, 'versions', vCut) : chainAnchorHash(log, 'versions'),
      latest: log.latestVersion()?.version ?? 0,
    };
    const cutHash = chainAnchorHash(log, 'events');
    const at = from ?? versions.latest;
    return new Compaction(log, at, at, anchor, cutHash, new Set(), [], keeps, versions, limits);
  }

  /** Whether the plan removes or writes anything (an idle retention run makes no record). */
  get hasWork(): boolean {
    return (
      this.toWrite.length > 0 ||
      this.cut > chainAnchor(this.log, 'events') ||
      this.acks.cutId > chainAnchor(this.log, 'acks') ||
      this.versions.cutId > chainAnchor(this.log, 'versions')
    );
  }

  get finished(): boolean {
    return this.phase === 'done';
  }

  /**
   * Runs the next transaction: the checkpoints, or up to `maxRows` rows removed. Returns whether
   * more remains. Throws (nothing of that step written) when the plan no longer holds or SQLite
   * fails; what earlier steps removed stays removed, consistently.
   */
  step(maxRows = 5000): boolean {
    if (this.phase === 'done') return false;
    const log = this.log;
    const db = databaseOf(log);
    // The fold reads only; done before the transaction so the writer is held for the write alone.
    if (this.phase === 'checkpoints')
      this.folds ??= this.toWrite.map(({ seq, readingRevision }) => ({
        seq,
        fold: readingRevision === 1 ? rebuildAtSeqAsWritten(log, seq) : rebuildAtSeq(log, seq, { readingRevision }),
      }));
    const t0 = performance.now();
    const folds = this.folds;
    this.folds = undefined; // written by this step, or folded afresh by the next try
    // Counters and the phase move only once the transaction committed.
    const n: {
      phase: Phase;
      events: number;
      acks: number;
      versions: number;
      checkpoints: number;
      written: number;
      record: number;
    } = {
      phase: this.phase,
      events: this.eventsRemoved,
      acks: this.acksRemoved,
      versions: this.versionsRemoved,
      checkpoints: this.checkpointsRemoved,
      written: this.checkpointsWritten,
      record: this.record,
    };
    try {
      db.transaction(() => {
        this.checkPlan();
        if (n.phase === 'checkpoints') {
          const startedAt = this.stamp();
          n.record = Number(
            db
              .prepare(`INSERT INTO compactions (started_at, by, before_version, cut_seq, acks_cut_id, versions_removed)
                VALUES (?, ?, ?, ?, ?, 0)`)
              .run(startedAt, this.limits.by ?? 'db compact', this.before, this.cut, this.acks.cutId).lastInsertRowid,
          );
          for (const w of folds ?? [])
            writeCheckpoint(db, {
              state: w.fold.state,
              rejections: w.fold.rejections.values(),
              seq: w.seq,
              version: this.before,
              createdAt: startedAt,
            });
          n.written = folds?.length ?? 0;
          n.phase = 'events';
        } else if (n.phase === 'events') {
          const to = Math.min(this.cut, chainAnchor(log, 'events') + maxRows);
          if (to > chainAnchor(log, 'events')) {
            n.events += cutChain(log, 'events', to);
            // below the new anchor a checkpoint serves no replay, unless a retained version reads exactly it
            const keep = [...this.needed];
            n.checkpoints += db
              .prepare(`DELETE FROM checkpoints WHERE seq < ? AND seq NOT IN (${keep.map(() => '?').join(',')})`)
              .run(to, ...keep).changes;
          }
          if (to >= this.cut) n.phase = 'acks';
        } else if (n.phase === 'acks') {
          const to = Math.min(this.acks.cutId, chainAnchor(log, 'acks') + maxRows);
          if (to > chainAnchor(log, 'acks')) n.acks += cutChain(log, 'acks', to);
          if (to >= this.acks.cutId) n.phase = 'versions';
        } else {
          const upTo = this.versionsUpTo();
          const to = Math.min(upTo, chainAnchor(log, 'versions') + maxRows);
          if (to > chainAnchor(log, 'versions')) n.versions += cutChain(log, 'versions', to);
          if (to >= upTo) n.phase = 'done';
        }
        // A phase with nothing left is passed in the same transaction, so the step that removes the
        // last rows also finishes the record: a crash just after it left a record unfinished for
        // good, since the next run, with nothing to do, makes no record and finishes none.
        if (n.phase === 'events' && this.cut <= chainAnchor(log, 'events')) n.phase = 'acks';
        if (n.phase === 'acks' && this.acks.cutId <= chainAnchor(log, 'acks')) n.phase = 'versions';
        if (n.phase === 'versions' && this.versionsUpTo() <= chainAnchor(log, 'versions')) n.phase = 'done';
        db.prepare(`UPDATE compactions SET events_removed = ?, acks_removed = ?, versions_removed = ?,
            checkpoints_removed = ?, checkpoints_written = ?, steps = ?, longest_step_ms = ?, finished_at = ?
            WHERE id = ?`).run(
          n.events,
          n.acks,
          n.versions,
          n.checkpoints,
          n.written,
          this.steps + 1,
          Math.max(this.longestMs, performance.now() - t0),
          n.phase === 'done' ? this.stamp() : null,
          n.record,
        );
      }).immediate();
    } catch (e) {
      throw translateSqliteError(e, `compact ${log.file}`);
    }
    this.phase = n.phase;
    this.eventsRemoved = n.events;
    this.acksRemoved = n.acks;
    this.versionsRemoved = n.versions;
    this.checkpointsRemoved = n.checkpoints;
    this.checkpointsWritten = n.written;
    this.record = n.record;
    this.steps++;
    this.longestMs = Math.max(this.longestMs, performance.now() - t0);
    return this.phase !== 'done';
  }

  /** The id of the run's record in `compactions` (0: none yet, the first step has not committed). */
  get recordId(): number {
    return this.record;
  }

  /** Transactions run so far. */
  get stepCount(): number {
    return this.steps;
  }

  /** The longest step so far, in ms, commit included. */
  get longestStepMs(): number {
    return this.longestMs;
  }

  result(): CompactResult {
    return {
      cutSeq: chainAnchor(this.log, 'events'),
      eventsRemoved: this.eventsRemoved,
      checkpointsRemoved: this.checkpointsRemoved,
      checkpointsWritten: this.checkpointsWritten,
      acksCutId: chainAnchor(this.log, 'acks'),
      acksRemoved: this.acksRemoved,
      versionsCutId: chainAnchor(this.log, 'versions'),
      versionsRemoved: this.versionsRemoved,
      ...(this.acks.heldBy ? { acksHeldBy: this.acks.heldBy } : {}),
    };
  }

  /**
   * How far the versions step may cut now: the plan's cut, below the oldest version an ACK/NACK
   * row still reports (after the acks step those are the ones kept: a cluster node's last
   * reports; one index probe), and below the content source of a pin or rollback recorded since
   * the plan (an operator may pin a version the plan would remove whose content a kept checkpoint
   * still gives).
   */
  private versionsUpTo(): number {
    const db = databaseOf(this.log);
    let upTo = this.versions.cutId;
    const reported = db.prepare('SELECT min(version) FROM acks WHERE version > 0').pluck().get() as number | null;
    if (reported !== null) upTo = Math.min(upTo, reported - 1);
    const late = db
      .prepare('SELECT version FROM versions WHERE version > ? AND content_of IS NOT NULL')
      .pluck()
      .all(this.versions.latest) as number[];
    for (const v of late) upTo = Math.min(upTo, contentSource(this.log, v).version - 1);
    return upTo;
  }

  /** Refuses a step when the file moved under the plan (a replicated-log truncation, another history). */
  private checkPlan(): void {
    const log = this.log;
    const db = databaseOf(log);
    const stale = (what: string) =>
      new EventLogError('DIVERGED', `compact: ${what} changed since this compaction was planned; plan it again`);
    const at = (chain: CutChain, id: number) =>
      id === chainAnchor(log, chain)
        ? chainAnchorHash(log, chain)
        : id > chainAnchor(log, chain)
          ? (
              db.prepare(`SELECT row_hash FROM ${chain} WHERE ${ID_COLUMN[chain]} = ?`).get(id) as
                | { row_hash: string }
                | undefined
            )?.row_hash
          : undefined;
    const anchor = chainAnchor(log, 'events');
    if (this.cut >= anchor && at('events', this.cut) !== this.cutHash) throw stale(`event ${this.cut}`);
    if (this.acks.cutId >= chainAnchor(log, 'acks') && at('acks', this.acks.cutId) !== this.acks.cutHash)
      throw stale(`acks row ${this.acks.cutId}`);
    if (
      this.versions.cutId >= chainAnchor(log, 'versions') &&
      at('versions', this.versions.cutId) !== this.versions.cutHash
    )
      throw stale(`version ${this.versions.cutId}`);
    if (this.phase !== 'checkpoints') {
      const keep = [...this.needed];
      const n = db
        .prepare(`SELECT count(*) FROM checkpoints WHERE seq IN (${keep.map(() => '?').join(',')})`)
        .pluck()
        .get(...keep) as number;
      if (n !== keep.length) throw stale('the checkpoints it keeps');
    }
  }

  private stamp(): string {
    return (this.limits.now?.() ?? new Date()).toISOString();
  }
}

/**
 * Opt-in retention (`db compact --before-version N`): removes the events before version `before`
 * while keeping every version from `before` on replayable exactly (a checkpoint at its last event,
 * plus one at the source of every retained pin/rollback that copies an older version), and the
 * ACK/NACK rows before it (review4 G3: one row per node and version, never removed; see acksCut).
 * The Compaction's steps run back to back, in slices of `maxRows` rows (each slice leaves a
 * consistent log, so a crash halfway leaves one too).
 */
export function compactLog(
  log: EventLog,
  before: number,
  limits: CompactionLimits = {},
  maxRows = 50_000,
): CompactResult {
  const at = () => limits.now?.() ?? new Date();
  // no run of this process is under way: one left unfinished and unmarked was a process's that ended during it
  settleLeftRecord(log, limits.by ?? 'db compact', at());
  const c = Compaction.plan(log, before, limits);
  try {
    while (c.step(maxRows));
  } catch (e) {
    markStoppedQuietly(log, c.recordId, `a step failed: ${e instanceof Error ? e.message : String(e)}`, at());
    throw e;
  }
  return c.result();
}

/** markStopped for a run that is failing anyway: its own failure (a full disk) must not hide the step's. */
export function markStoppedQuietly(log: EventLog, id: number, why: string, at: Date): void {
  if (id <= 0) return;
  try {
    markStopped(log, id, why, at);
  } catch {
    // the record stays unmarked: the next run marks it as left by a process that ended during it
  }
}

/**
 * The newest version whose row a compaction cutting the events at `cut` may remove (the versions
 * chain is cut as a prefix, like the events): below the first version ending at or after the cut
 * (the content of every one before it is gone with its events: none rebuilds) and its parent (a
 * versions stream that ends at the parent, a leader's held by "not on the stream yet", is still
 * checked against the log's row before the next is published as a delta on it), and below the
 * content source of every pin or rollback from that first version on (replay follows content_of
 * to its row; a pin before it that this lowering keeps does not rebuild: its source's checkpoint
 * is not kept). The step lowers it further below the oldest version an ACK/NACK row kept reports.
 */
function versionsCut(log: EventLog, cut: number): number {
  const latest = log.latestVersion()?.version ?? 0;
  const first = firstVersionEndingAtOrAfter(log, cut, latest + 1);
  let upTo = first - 2;
  // the rows between a source and its pin stay too (a prefix is cut), content_of chains included
  const pins = databaseOf(log)
    .prepare('SELECT version FROM versions WHERE version >= ? AND content_of IS NOT NULL')
    .pluck()
    .all(first) as number[];
  for (const v of pins) upTo = Math.min(upTo, contentSource(log, v).version - 1);
  return upTo;
}

/** The chains compaction cuts as a prefix (config revisions and operations are kept whole). */
type CutChain = 'events' | 'acks' | 'versions';

function chainAnchor(log: EventLog, chain: CutChain): number {
  return databaseOf(log).prepare('SELECT anchor_id FROM chain_heads WHERE chain = ?').pluck().get(chain) as number;
}

function chainAnchorHash(log: EventLog, chain: CutChain): string {
  return databaseOf(log).prepare('SELECT anchor_hash FROM chain_heads WHERE chain = ?').pluck().get(chain) as string;
}

const ID_COLUMN = { events: 'seq', acks: 'id', versions: 'version' } as const;

function rowHash(log: EventLog, chain: CutChain, id: number): string {
  const h = databaseOf(log).prepare(`SELECT row_hash FROM ${chain} WHERE ${ID_COLUMN[chain]} = ?`).pluck().get(id) as
    | string
    | undefined;
  if (h === undefined) throw new EventLogError('INVALID', `compact: ${chain} row ${id} is missing; run db verify`);
  return h;
}

/**
 * Where `db compact --before-version N` cuts the acks chain: below the first row that reports
 * version N or later (an ACK of an older version names content whose events compaction removes:
 * `audit node` could not rebuild it, and it holds no retained event for `audit service`), and
 * below the last ACK (else the last report) of every node of the latest version's cluster, so
 * each such node keeps its last report, its last ACK and the NACKs since (`audit behind`,
 * `audit node` without --at, a restarted planner's seed). A node that left the cluster keeps
 * nothing older than the cut. The chain is cut as a prefix, like events (rows are chained in id
 * order; `verify` walks from the anchor), so a node silent since long ago holds the cut back:
 * heldBy names it.
 */
function acksCut(
  log: EventLog,
  before: number,
  clusterHas?: (node: string) => boolean,
): { cutId: number; heldBy?: { node: string; id: number } } {
  const db = databaseOf(log);
  const head = db.prepare(`SELECT head_id FROM chain_heads WHERE chain = 'acks'`).pluck().get() as number;
  const firstNew =
    (db.prepare('SELECT min(id) FROM acks INDEXED BY acks_by_version WHERE version >= ?').pluck().get(before) as
      | number
      | null) ?? head + 1;
  let inCluster = clusterHas;
  if (!inCluster) {
    const latest = log.latestVersion();
    const cluster = latest && replayVersion(log, latest.version).state.data;
    inCluster = (n) => cluster?.node(n) !== undefined;
  }
  let heldBy: { node: string; id: number } | undefined;
  for (const n of lastReportIds(log)) {
    const keep = n.ackId ?? n.nackId!;
    if (!inCluster(n.node) || keep >= firstNew) continue;
    if (!heldBy || keep < heldBy.id) heldBy = { node: n.node, id: keep };
  }
  return heldBy ? { cutId: heldBy.id - 1, heldBy } : { cutId: firstNew - 1 };
}

/**
 * Deletes a chain's rows up to `cutId` and anchors it at that row (inside the caller's
 * transaction; a no-op at or below its anchor). Ids are contiguous from the anchor up.
 */
function cutChain(log: EventLog, chain: CutChain, cutId: number): number {
  const db = databaseOf(log);
  if (cutId <= chainAnchor(log, chain)) return 0;
  const last = rowHash(log, chain, cutId);
  const removed = db.prepare(`DELETE FROM ${chain} WHERE ${ID_COLUMN[chain]} <= ?`).run(cutId).changes;
  db.prepare('UPDATE chain_heads SET anchor_id = ?, anchor_hash = ? WHERE chain = ?').run(cutId, last, chain);
  return removed;
}

/**
 * Finishes the newest compaction record when its run stopped with what it planned done, as a later
 * run sees it: that run (`by`, at `at`) found nothing to remove, and the events and acks chains'
 * anchors reached the record's cuts. A SIGKILL after the last removal step and before the record
 * was marked finished leaves exactly this; nothing continues such a run, so its record said
 * UNFINISHED for good. A record whose cuts were not reached (a run stopped part way, a floor now
 * holding the rest) stays unfinished: it did stop part way. One transaction; returns the record's
 * id when it finished one.
 */
export function finishLeftRecord(log: EventLog, by: string, at: Date): number | undefined {
  const db = databaseOf(log);
  try {
    return db
      .transaction(() => {
        const r = db
          .prepare('SELECT id, finished_at, cut_seq, acks_cut_id FROM compactions ORDER BY id DESC LIMIT 1')
          .get() as Pick<CompactionRow, 'id' | 'finished_at' | 'cut_seq' | 'acks_cut_id'> | undefined;
        if (!r || r.finished_at !== null) return undefined;
        if (chainAnchor(log, 'events') < r.cut_seq || chainAnchor(log, 'acks') < r.acks_cut_id) return undefined;
        db.prepare('UPDATE compactions SET finished_at = ?, finished_by = ? WHERE id = ?').run(
          at.toISOString(),
          by,
          r.id,
        );
        return r.id;
      })
      .immediate();
  } catch (e) {
    throw translateSqliteError(e, `compact ${log.file}`);
  }
}

/**
 * `finished_by` of a record whose run ended part way (finished_at NULL): `stopped at ISO: WHY`.
 * No column of its own: a migration would make the file one an older release refuses to open
 * (unknown migration), for a word of audit; an older release shows such a record as UNFINISHED,
 * as it showed every stopped run, and may still finish it (finishLeftRecord).
 */
const STOPPED = /^stopped at (\S+): ([\s\S]*)$/;

/**
 * Marks record `id` as ended part way (`why`, at `at`), unless it is finished or marked already:
 * what an operator reads in `db status`, `ctl status` and /status instead of a bare UNFINISHED
 * that said "the next run goes on" while nothing did (a floor holding the rest, a stopped planner).
 * Returns whether it marked it.
 */
export function markStopped(log: EventLog, id: number, why: string, at: Date): boolean {
  try {
    return (
      databaseOf(log)
        .prepare('UPDATE compactions SET finished_by = ? WHERE id = ? AND finished_at IS NULL AND finished_by IS NULL')
        .run(`stopped at ${at.toISOString()}: ${why}`, id).changes > 0
    );
  } catch (e) {
    throw translateSqliteError(e, `compact ${log.file}`);
  }
}

/**
 * Settles the newest record when a run of this process is about to start and none of its own is
 * under way, so an unfinished unmarked one was left by a process that ended during its run (killed,
 * crashed, or an older release stopped): finished when its cuts were reached (finishLeftRecord),
 * else marked stopped. Returns what it did, or undefined when there was nothing to settle.
 */
export function settleLeftRecord(
  log: EventLog,
  by: string,
  at: Date,
): { id: number; how: 'finished' | 'stopped' } | undefined {
  const finished = finishLeftRecord(log, by, at);
  if (finished !== undefined) return { id: finished, how: 'finished' };
  const r = databaseOf(log)
    .prepare('SELECT id FROM compactions WHERE finished_at IS NULL AND finished_by IS NULL ORDER BY id DESC LIMIT 1')
    .get() as { id: number } | undefined;
  const newest = databaseOf(log).prepare('SELECT max(id) FROM compactions').pluck().get() as number | null;
  if (!r || r.id !== newest) return undefined;
  const why = 'its process ended during the run (killed, crashed, or stopped by an older release)';
  return markStopped(log, r.id, why, at) ? { id: r.id, how: 'stopped' } : undefined;
}

interface CompactionRow {
  id: number;
  started_at: string;
  finished_at: string | null;
  finished_by: string | null;
  by: string;
  before_version: number;
  cut_seq: number;
  acks_cut_id: number;
  events_removed: number;
  acks_removed: number;
  versions_removed: number | null;
  checkpoints_removed: number;
  checkpoints_written: number;
  steps: number;
  longest_step_ms: number;
}

/** The newest compaction runs recorded in this file, newest first (a read-only log reads them too). */
export function compactionRecords(log: EventLog, limit = 1): CompactionRecord[] {
  const rows = databaseOf(log)
    .prepare('SELECT * FROM compactions ORDER BY id DESC LIMIT ?')
    .all(limit) as CompactionRow[];
  return rows.map((r) => ({
    id: r.id,
    startedAt: r.started_at,
    ...(r.finished_at === null ? {} : { finishedAt: r.finished_at }),
    ...(r.finished_by === null
      ? {}
      : r.finished_at === null
        ? stoppedOf(r.finished_by)
        : { finishedBy: r.finished_by }),
    by: r.by,
    beforeVersion: r.before_version,
    cutSeq: r.cut_seq,
    acksCutId: r.acks_cut_id,
    eventsRemoved: r.events_removed,
    acksRemoved: r.acks_removed,
    ...(r.versions_removed === null ? {} : { versionsRemoved: r.versions_removed }),
    checkpointsRemoved: r.checkpoints_removed,
    checkpointsWritten: r.checkpoints_written,
    steps: r.steps,
    longestStepMs: r.longest_step_ms,
  }));
}

function stoppedOf(text: string): { stopped?: { at: string; why: string } } {
  const m = STOPPED.exec(text);
  return m ? { stopped: { at: m[1]!, why: m[2]! } } : {};
}
