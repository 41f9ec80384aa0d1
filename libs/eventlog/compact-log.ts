import fs from 'node:fs';
import { EventLogError, translateSqliteError } from './event-log-error.ts';
import type { EventLog } from './event-log.ts';
import { writeCheckpoint } from './checkpoints.ts';
import { contentSource, rebuildAtSeq } from './replay.ts';
import { databaseOf } from './database-handle.ts';

export interface CompactResult {
  /** Events up to this seq were removed; the chain now starts after it (its anchor). */
  readonly cutSeq: number;
  readonly eventsRemoved: number;
  readonly checkpointsRemoved: number;
  /** Checkpoints written so retained versions stay replayable. */
  readonly checkpointsWritten: number;
}

/**
 * Opt-in retention: removes the events before version `before` while keeping every version from
 * `before` on replayable exactly. It ensures a checkpoint at version `before`'s seq, plus one at
 * the source of every retained pin/rollback that copies an older version, then deletes the events
 * up to that seq in one transaction and records the last removed event's hash as the chain's
 * anchor, so `verify` checks the remaining chain from there.
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
  try {
    return databaseOf(log)
      .transaction(() => {
        for (const w of toWrite)
          writeCheckpoint(databaseOf(log), {
            state: w.fold.state,
            rejections: w.fold.rejections.values(),
            seq: w.seq,
            version: before,
            createdAt,
          });
        if (cut <= anchor)
          return { cutSeq: anchor, eventsRemoved: 0, checkpointsRemoved: 0, checkpointsWritten: toWrite.length };
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
  return (
    databaseOf(log).prepare(`SELECT anchor_id AS a FROM chain_heads WHERE chain = 'events'`).get() as { a: number }
  ).a;
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
