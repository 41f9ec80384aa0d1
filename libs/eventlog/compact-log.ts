import fs from 'node:fs';
import { EventLogError, translateSqliteError } from './event-log-error.ts';
import type { EventLog } from './event-log.ts';
import { writeCheckpoint } from './checkpoints.ts';
import { contentSource, rebuildAtSeq, replayVersion } from './replay.ts';
import { lastReportIds } from './audit-queries.ts';
import { databaseOf } from './database-handle.ts';

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
  /**
   * The node whose last report (or last ACK) held the acks cut below the first report of version
   * `before`; undefined when nothing did.
   */
  readonly acksHeldBy?: { readonly node: string; readonly id: number };
}

/**
 * Opt-in retention: removes the events before version `before` while keeping every version from
 * `before` on replayable exactly. It ensures a checkpoint at version `before`'s seq, plus one at
 * the source of every retained pin/rollback that copies an older version, then deletes the events
 * up to that seq in one transaction and records the last removed event's hash as the chain's
 * anchor, so `verify` checks the remaining chain from there.
 *
 * ACK/NACK rows are cut the same way, in the same transaction (review4 G3: one row per node and
 * version, never removed): see acksCut.
 */
export function compactLog(log: EventLog, before: number): CompactResult {
  const target = log.version(before);
  if (!target) throw new EventLogError('NOT_FOUND', `compact: version ${before} does not exist`);
  const cut = target.seqTo;
  const anchor = eventsAnchor(log);
  const needed = new Set<number>([cut]);
  for (const v of log.versions({ from: before })) {
    const src = contentSource(log, v.version);
    if (src.seqTo < cut) needed.add(src.seqTo);
  }
  needed.add(contentSource(log, before).seqTo);
  // Rebuild what is needed before deleting anything (reads only), then write in one transaction.
  const have = new Set(log.checkpoints().map((c) => c.seq));
  const toWrite = [...needed].filter((s) => !have.has(s)).map((seq) => ({ seq, fold: rebuildAtSeq(log, seq) }));
  const createdAt = new Date().toISOString();
  const acks = acksCut(log, before);
  try {
    return databaseOf(log)
      .transaction(() => {
        const acksRemoved = cutChain(log, 'acks', acks.cutId);
        for (const w of toWrite)
          writeCheckpoint(databaseOf(log), {
            state: w.fold.state,
            rejections: w.fold.rejections.values(),
            seq: w.seq,
            version: before,
            createdAt,
          });
        const acksResult = {
          acksCutId: Math.max(acks.cutId, chainAnchor(log, 'acks')),
          acksRemoved,
          ...(acks.heldBy ? { acksHeldBy: acks.heldBy } : {}),
        };
        if (cut <= anchor)
          return {
            cutSeq: anchor,
            eventsRemoved: 0,
            checkpointsRemoved: 0,
            checkpointsWritten: toWrite.length,
            ...acksResult,
          };
        const last = databaseOf(log).prepare('SELECT row_hash FROM events WHERE seq = ?').get(cut) as
          | { row_hash: string }
          | undefined;
        if (!last) throw new EventLogError('INVALID', `compact: event ${cut} is missing; run db verify`);
        const removed = databaseOf(log).prepare('DELETE FROM events WHERE seq <= ?').run(cut).changes;
        const placeholders = [...needed].map(() => '?').join(',');
        const cpRemoved = databaseOf(log)
          .prepare(`DELETE FROM checkpoints WHERE seq < ? AND seq NOT IN (${placeholders})`)
          .run(cut, ...needed).changes;
        databaseOf(log)
          .prepare(`UPDATE chain_heads SET anchor_id = ?, anchor_hash = ? WHERE chain = 'events'`)
          .run(cut, last.row_hash);
        return {
          cutSeq: cut,
          eventsRemoved: removed,
          checkpointsRemoved: cpRemoved,
          checkpointsWritten: toWrite.length,
          ...acksResult,
        };
      })
      .immediate();
  } catch (e) {
    throw translateSqliteError(e, `compact ${log.file}`);
  }
}

/**
 * The oldest version from which every later one can still be rebuilt from this log (its content,
 * hence its checkpoint form): 1 when nothing was compacted; after `compactLog(log, N)`, N or an
 * earlier version whose content the checkpoint at the cut still gives. Undefined: no version.
 * A planner whose versions stream lacks versions below it republishes from it (review2 R8).
 * Only the versions ending exactly at the cut are checked (a pin among them may copy a version
 * before it): every version after them has its events (or, a retained pin, the checkpoint
 * compaction wrote for its source), and every version before them ends at a removed event.
 */
export function replayableFrom(log: EventLog): number | undefined {
  const latest = log.latestVersion();
  if (!latest) return undefined;
  const anchor = eventsAnchor(log);
  if (anchor === 0) return 1;
  const db = databaseOf(log);
  const seqTo = db.prepare('SELECT seq_to AS s FROM versions WHERE version = ?');
  const seqOf = (v: number) => (seqTo.get(v) as { s: number }).s;
  // seq_to never decreases along versions (a pin takes its parent's): the first at or past the
  // cut is found by bisection, without reading every version row.
  let lo = 1;
  let hi = latest.version + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (seqOf(mid) >= anchor) hi = mid;
    else lo = mid + 1;
  }
  let from = lo;
  // The same test as rebuildAtSeq's: the nearest checkpoint is past the anchor, or exactly at seq.
  const nearest = db.prepare('SELECT max(seq) AS s FROM checkpoints WHERE seq <= ?');
  for (let v = lo; v <= latest.version && seqOf(v) === anchor; v++) {
    const seq = contentSource(log, v).seqTo;
    const cp = (nearest.get(seq) as { s: number | null }).s;
    if (seq !== 0 && cp !== seq && (cp === null || cp < anchor)) from = v + 1;
  }
  return from <= latest.version ? from : undefined;
}

/** The events chain's anchor: events up to it were compacted (0: none). */
function eventsAnchor(log: EventLog): number {
  return chainAnchor(log, 'events');
}

function chainAnchor(log: EventLog, chain: 'events' | 'acks'): number {
  return (databaseOf(log).prepare('SELECT anchor_id AS a FROM chain_heads WHERE chain = ?').get(chain) as { a: number })
    .a;
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
function acksCut(log: EventLog, before: number): { cutId: number; heldBy?: { node: string; id: number } } {
  const db = databaseOf(log);
  const head = (db.prepare(`SELECT head_id AS h FROM chain_heads WHERE chain = 'acks'`).get() as { h: number }).h;
  const firstNew =
    (db.prepare('SELECT min(id) AS id FROM acks WHERE version >= ?').get(before) as { id: number | null }).id ??
    head + 1;
  const latest = log.latestVersion();
  const cluster = latest && replayVersion(log, latest.version).state.data;
  let heldBy: { node: string; id: number } | undefined;
  for (const n of lastReportIds(log)) {
    const keep = n.ackId ?? n.nackId!;
    if (cluster?.node(n.node) === undefined || keep >= firstNew) continue;
    if (!heldBy || keep < heldBy.id) heldBy = { node: n.node, id: keep };
  }
  return heldBy ? { cutId: heldBy.id - 1, heldBy } : { cutId: firstNew - 1 };
}

/** Deletes a chain's rows up to `cutId` and anchors it at that row (a no-op at or below its anchor). */
function cutChain(log: EventLog, chain: 'acks', cutId: number): number {
  const db = databaseOf(log);
  if (cutId <= chainAnchor(log, chain)) return 0;
  const last = db.prepare(`SELECT row_hash FROM ${chain} WHERE id = ?`).get(cutId) as { row_hash: string } | undefined;
  if (!last) throw new EventLogError('INVALID', `compact: ${chain} row ${cutId} is missing; run db verify`);
  const removed = db.prepare(`DELETE FROM ${chain} WHERE id <= ?`).run(cutId).changes;
  db.prepare('UPDATE chain_heads SET anchor_id = ?, anchor_hash = ? WHERE chain = ?').run(cutId, last.row_hash, chain);
  return removed;
}

/** A consistent copy of the log (VACUUM INTO), safe while the planner keeps writing. */
export function backupLog(log: EventLog, out: string): { bytes: number } {
  if (fs.existsSync(out)) throw new EventLogError('INVALID', `backup: ${out} already exists; not overwriting`);
  try {
    databaseOf(log).prepare('VACUUM INTO ?').run(out);
  } catch (e) {
    throw translateSqliteError(e, `backup to ${out}`);
  }
  return { bytes: fs.statSync(out).size };
}
