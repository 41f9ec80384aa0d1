import type Database from 'better-sqlite3';
import {
  assertStagedPieces,
  checkpointHash,
  hasCheckpointAt,
  piecesHashSteps,
  readCheckpointObjects,
  stagePiecesSteps,
  type LogWrite,
} from './checkpoints.ts';
import { EventLogError } from './event-log-error.ts';
import { runSteps } from '../model/index.ts';
import { CHAIN_NAMES, CHAINS, GENESIS_HASH, chainHash, linkFields, type ChainName } from './row-chain.ts';

/**
 * Rows as they are stored, for copying a log to another file verbatim (the replicated log ships
 * them through a stream): every table the planner restores from. Chained rows keep their ids and
 * hashes, so a copy verifies, and replays, exactly like the original.
 */

export interface ChainHead {
  readonly id: number;
  readonly hash: string;
}

/** Where a log stands: each chain's head, and the newest checkpoint. */
export interface LogPosition {
  readonly chains: Readonly<Record<ChainName, ChainHead>>;
  readonly checkpointSeq: number;
}

export type RawRow = readonly (string | number | null)[];

/** The rows between two positions of one log. */
export interface RowBatch {
  readonly from: LogPosition;
  readonly to: LogPosition;
  /** Per chain, its rows after from's head: CHAINS[chain].columns (less NULL optional ones at the end), then row_hash. */
  readonly rows: Readonly<Record<ChainName, readonly RawRow[]>>;
  /**
   * Checkpoints with from.checkpointSeq < seq ≤ to.checkpointSeq, as CHECKPOINT_COLUMNS; one stored
   * in pieces (checkpoints.ts) as CHECKPOINT_COLUMNS with objects '' and then its piece count, its
   * pieces in checkpointPieces. A one-text row keeps the 8 cells every release has taken.
   */
  readonly checkpoints: readonly RawRow[];
  /** Every informer resume point as of `to` (one row per kind: a handful), as RESUME_COLUMNS. */
  readonly resumePoints: readonly RawRow[];
  /**
   * The pieces of the pieced checkpoints above, as PIECE_COLUMNS, in (seq, piece) order: shipped as
   * stored, never joined into one text (past V8's longest string that text cannot exist). Absent
   * when no checkpoint is pieced; last, so the wire form can read them one at a time
   * (replication-codec.ts).
   */
  readonly checkpointPieces?: readonly RawRow[];
}

export const CHECKPOINT_COLUMNS = [
  'seq',
  'version',
  'data_hash',
  'object_count',
  'objects',
  'objects_hash',
  'rejections',
  'created_at',
] as const;
/** A pieced checkpoint row's extra cell: how many PIECE_COLUMNS rows hold its objects. */
export const PIECES = CHECKPOINT_COLUMNS.length;
/** The cell after it: the reading revision (migration 0008), shipped only when not NULL. */
export const READING_REVISION = PIECES + 1;
/** What a checkpoint row is selected as, to ship it with shippedCheckpoint. */
export const CHECKPOINT_SELECT = `${CHECKPOINT_COLUMNS.join(', ')}, pieces, reading_revision`;

/**
 * A checkpoint row (CHECKPOINT_SELECT) as shipped: the trailing cells that hold their defaults left
 * out, so a revision-1 one-text row is the 8 cells every release has taken and a revision-1 pieced
 * one the 9; a row of another revision carries both (an older release refuses it).
 */
export function shippedCheckpoint(r: RawRow): RawRow {
  if (r[READING_REVISION] !== null) return r;
  return r[PIECES] === 0 ? r.slice(0, PIECES) : r.slice(0, READING_REVISION);
}
export const PIECE_COLUMNS = ['seq', 'piece', 'objects'] as const;
/**
 * Pieces as their checkpoint row owns them (its seq, below its count), as `p`, to select from:
 * pieces stored ahead of their row (checkpoints.ts stagePiecesSteps) are no checkpoint's yet.
 */
export const OWNED_PIECES = 'checkpoint_pieces p JOIN checkpoints c ON c.seq = p.seq AND p.piece < c.pieces';
export const RESUME_COLUMNS = ['kind', 'resource_version', 'updated_at'] as const;

/** The position of an empty log. */
export const EMPTY_POSITION: LogPosition = {
  chains: Object.fromEntries(CHAIN_NAMES.map((c) => [c, { id: 0, hash: GENESIS_HASH }])) as Record<
    ChainName,
    ChainHead
  >,
  checkpointSeq: 0,
};

/** Rows a position counts (sum of chain head ids): a batch's row count is to's minus from's. */
export function rowCount(p: LogPosition): number {
  return CHAIN_NAMES.reduce((n, c) => n + p.chains[c].id, 0);
}

export function batchRows(b: RowBatch): number {
  return CHAIN_NAMES.reduce((n, c) => n + b.rows[c].length, 0) + b.checkpoints.length;
}

export function samePosition(a: LogPosition, b: LogPosition): boolean {
  return (
    a.checkpointSeq === b.checkpointSeq &&
    CHAIN_NAMES.every((c) => a.chains[c].id === b.chains[c].id && a.chains[c].hash === b.chains[c].hash)
  );
}

export interface HeadRow {
  chain: ChainName;
  anchor_id: number;
  anchor_hash: string;
  head_id: number;
  head_hash: string;
}

export function heads(db: Database.Database): Record<ChainName, HeadRow> {
  const rows = db
    .prepare('SELECT chain, anchor_id, anchor_hash, head_id, head_hash FROM chain_heads')
    .all() as HeadRow[];
  return Object.fromEntries(rows.map((r) => [r.chain, r])) as Record<ChainName, HeadRow>;
}

export function positionOf(db: Database.Database): LogPosition {
  const h = heads(db);
  const cp = (db.prepare('SELECT max(seq) AS s FROM checkpoints').get() as { s: number | null }).s ?? 0;
  return {
    chains: Object.fromEntries(CHAIN_NAMES.map((c) => [c, { id: h[c].head_id, hash: h[c].head_hash }])) as Record<
      ChainName,
      ChainHead
    >,
    checkpointSeq: cp,
  };
}

/**
 * Where a whole export of this log starts (`exportRows(..., { whole: true }).from`): each chain's
 * anchor, no checkpoint. Read without exporting anything.
 */
export function anchorPositionOf(db: Database.Database): LogPosition {
  return anchorPosition(heads(db));
}

function anchorPosition(h: Record<ChainName, HeadRow>): LogPosition {
  return {
    chains: Object.fromEntries(CHAIN_NAMES.map((c) => [c, { id: h[c].anchor_id, hash: h[c].anchor_hash }])) as Record<
      ChainName,
      ChainHead
    >,
    checkpointSeq: 0,
  };
}

/** The stored hash of row `id` of a chain (its anchor's hash at the anchor), or undefined if not held. */
export function hashAt(db: Database.Database, chain: ChainName, head: HeadRow, id: number): string | undefined {
  if (id === head.anchor_id) return head.anchor_hash;
  if (id < head.anchor_id || id > head.head_id) return undefined;
  const r = db.prepare(`SELECT row_hash FROM ${chain} WHERE ${CHAINS[chain].id} = ?`).get(id) as
    | { row_hash: string }
    | undefined;
  return r?.row_hash;
}

/** True when this log holds `p` exactly: each chain's row at p's head carries p's hash. */
export function holdsPosition(db: Database.Database, p: LogPosition): boolean {
  const h = heads(db);
  return CHAIN_NAMES.every((c) => hashAt(db, c, h[c], p.chains[c].id) === p.chains[c].hash);
}

/**
 * Whether any chain of the log runs past `p`, or it holds checkpoints past what p's rows cover. A
 * checkpoint at or below p's last event is derived only from events p holds (a local `compact`
 * writes such ones): it is no row the group lacks, and the next flush sends it along.
 */
export function isAhead(db: Database.Database, p: LogPosition): boolean {
  const now = positionOf(db);
  return now.checkpointSeq > coveredCheckpointSeq(p) || CHAIN_NAMES.some((c) => now.chains[c].id > p.chains[c].id);
}

/** The highest checkpoint seq that position `p` accounts for: its own, or any up to its last event. */
function coveredCheckpointSeq(p: LogPosition): number {
  return Math.max(p.checkpointSeq, p.chains.events.id);
}

/**
 * The rows of one chain this process wrote last, as stored (CHAINS[chain].columns, then row_hash),
 * a contiguous run by id, kept so an export right after the write takes them from memory instead
 * of reading them back (the replicated log flushes what was just appended). Used only when its
 * last row is the chain's head, hash included: the links then vouch for every row before it, so
 * rows of a write that rolled back, or of another history, are never served.
 */
export class RecentRows {
  private first = 0;
  private rows: RawRow[] = [];

  constructor(private readonly max: number) {}

  /** Rows just committed; not contiguous with those held: they replace them. */
  add(rows: readonly RawRow[]): void {
    const id = rows[0]?.[0];
    if (typeof id !== 'number') return;
    if (this.rows.length === 0 || id !== this.first + this.rows.length) {
      this.first = id;
      this.rows = [];
    }
    for (const r of rows) this.rows.push(r);
    if (this.rows.length > this.max) this.dropThrough(this.first + this.rows.length - this.max - 1);
  }

  /** Rows with id ≤ `id` are no longer asked for (exported past them). */
  dropThrough(id: number): void {
    const n = Math.min(this.rows.length, id - this.first + 1);
    if (n <= 0) return;
    this.rows = this.rows.slice(n);
    this.first += n;
  }

  clear(): void {
    this.rows = [];
  }

  /** Rows after..head, when held and the last one is the head (id and hash); else undefined. */
  covering(after: number, headId: number, headHash: string): RawRow[] | undefined {
    const last = this.rows.at(-1);
    if (!last || last[0] !== headId || last[last.length - 1] !== headHash) return undefined;
    if (after + 1 < this.first || after > headId) return undefined;
    return this.rows.slice(after + 1 - this.first);
  }
}

/**
 * The rows after `since` up to the log's current position. `since` must be a position of this log
 * (else DIVERGED). `whole: true` exports everything still held, from each chain's anchor, for a
 * snapshot (then `since` is ignored). `upTo` (a position this log holds) stops the export there:
 * a snapshot of what the group acknowledged while later rows are already committed here.
 */
export function exportRows(
  db: Database.Database,
  since: LogPosition,
  opts: { whole?: boolean; upTo?: LogPosition; recentEvents?: RecentRows } = {},
): RowBatch {
  return runSteps(exportRowsSteps(db, since, opts));
}

/**
 * exportRows with its checkpoint pieces read a piece a step, each by its own query (no cursor
 * stays open across a step: the connection runs other statements meanwhile). The flush of a first
 * checkpoint's batch read ~0.5 GB of pieces in one call: 1.6 s of the leader's thread at 10,000
 * services of 250 endpoints. Everything else, and the position the batch ends at, is read at the
 * first step; a piece gone meanwhile (its checkpoint removed by retention) fails the export
 * (INVALID), and the flush is tried again.
 */
export function* exportRowsSteps(
  db: Database.Database,
  since: LogPosition,
  opts: { whole?: boolean; upTo?: LogPosition; recentEvents?: RecentRows } = {},
): Generator<void, RowBatch, void> {
  const h = heads(db);
  const from = opts.whole ? anchorPosition(h) : since;
  const rows = {} as Record<ChainName, RawRow[]>;
  for (const c of CHAIN_NAMES) {
    const at = from.chains[c];
    if (hashAt(db, c, h[c], at.id) !== at.hash) {
      throw new EventLogError(
        'DIVERGED',
        `export: ${c} row ${at.id} is not the one the position names (this log holds another history)`,
      );
    }
    const end = opts.upTo?.chains[c];
    if (end && hashAt(db, c, h[c], end.id) !== end.hash) {
      throw new EventLogError('DIVERGED', `export: ${c} row ${end.id} is not the one the end position names`);
    }
    const known = c === 'events' && !end ? opts.recentEvents?.covering(at.id, h[c].head_id, h[c].head_hash) : undefined;
    rows[c] =
      known ??
      shipped(
        c,
        db
          .prepare(
            `SELECT ${CHAINS[c].columns.join(', ')}, row_hash FROM ${c} WHERE ${CHAINS[c].id} > ? AND ${CHAINS[c].id} <= ? ORDER BY ${CHAINS[c].id}`,
          )
          .raw(true)
          .all(at.id, end?.id ?? Number.MAX_SAFE_INTEGER) as RawRow[],
      );
  }
  const cpFrom = from.checkpointSeq;
  const cpTo = opts.upTo?.checkpointSeq ?? Number.MAX_SAFE_INTEGER;
  const checkpoints = (
    db
      .prepare(`SELECT ${CHECKPOINT_SELECT} FROM checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq`)
      .raw(true)
      .all(cpFrom, cpTo) as RawRow[]
  ).map(shippedCheckpoint);
  const pieced = checkpoints.some((r) => r.length > PIECES && r[PIECES] !== 0);
  const resumePoints = db
    .prepare(`SELECT ${RESUME_COLUMNS.join(', ')} FROM resume_points ORDER BY kind`)
    .raw(true)
    .all() as RawRow[];
  const to = opts.upTo ?? positionOf(db);
  if (!pieced) return { from, to, rows, checkpoints, resumePoints };
  const keys = db
    .prepare(`SELECT p.seq, p.piece FROM ${OWNED_PIECES} WHERE p.seq > ? AND p.seq <= ? ORDER BY p.seq, p.piece`)
    .raw(true)
    .all(cpFrom, cpTo) as [number, number][];
  const pieceAt = db.prepare('SELECT objects FROM checkpoint_pieces WHERE seq = ? AND piece = ?').pluck();
  const checkpointPieces: RawRow[] = [];
  for (const [seq, piece] of keys) {
    yield;
    const text = pieceAt.get(seq, piece) as string | undefined;
    if (text === undefined)
      throw new EventLogError('INVALID', `export: checkpoint at seq ${seq}: piece ${piece} was removed while read`);
    checkpointPieces.push([seq, piece, text]);
  }
  return { from, to, rows, checkpoints, resumePoints, checkpointPieces };
}

/**
 * Rows as shipped: a NULL optional column (row-chain.ts: added by a later migration) is left out,
 * as its link leaves it out, so a row written before that migration ships in the form every
 * release takes.
 */
export function shipped(c: ChainName, rows: RawRow[]): RawRow[] {
  if (!CHAINS[c].optional) return rows;
  return rows.map((r) => {
    const cells = linkFields(c, r.slice(0, -1));
    return cells.length === r.length - 1 ? r : [...cells, r[r.length - 1]!];
  });
}

/**
 * Writes a batch exported from another log, verbatim, inside the caller's transaction. Every chain
 * must stand exactly at batch.from (or be empty, with `adoptAnchors`, for a snapshot of a compacted
 * log); each row must follow its predecessor's id and hash, and the chains must end at batch.to:
 * a batch that does not continue this file is refused whole (DIVERGED / INVALID) and writes nothing.
 */
export function importRows(
  db: Database.Database,
  b: RowBatch,
  opts: { adoptAnchors?: boolean; staged?: ReadonlySet<number> } = {},
): void {
  const h = heads(db);
  for (const c of CHAIN_NAMES) {
    const at = b.from.chains[c];
    const local = h[c];
    const empty = local.head_id === 0 && local.anchor_id === 0;
    if (opts.adoptAnchors && empty && at.id > 0) {
      db.prepare(
        'UPDATE chain_heads SET anchor_id = ?, anchor_hash = ?, head_id = ?, head_hash = ? WHERE chain = ?',
      ).run(at.id, at.hash, at.id, at.hash, c);
    } else if (local.head_id !== at.id || local.head_hash !== at.hash) {
      throw new EventLogError(
        'DIVERGED',
        `import: ${c} stands at ${local.head_id}, the batch starts after ${at.id}${local.head_id === at.id ? ' with another hash' : ''}`,
      );
    }
    const cols = CHAINS[c].columns;
    const fewest = cols.length - (CHAINS[c].optional ?? 0);
    const insert = db.prepare(
      `INSERT INTO ${c} (${cols.join(', ')}, row_hash) VALUES (${cols.map(() => '?').join(', ')}, ?)`,
    );
    let prev = at.hash;
    let id = at.id;
    for (const r of b.rows[c]) {
      // rows of a release before an optional column (row-chain.ts) come without it: stored as NULL
      if (r.length < fewest + 1 || r.length > cols.length + 1)
        throw new EventLogError(
          'INVALID',
          `import: a ${c} row has ${r.length} columns, expected ${fewest === cols.length ? '' : `${fewest + 1} to `}${cols.length + 1}`,
        );
      if (r[0] !== id + 1) throw new EventLogError('INVALID', `import: ${c} row ${String(r[0])} does not follow ${id}`);
      const cells = r.slice(0, -1);
      const hash = chainHash(prev, linkFields(c, cells));
      if (hash !== r[r.length - 1])
        throw new EventLogError('INVALID', `import: ${c} row ${id + 1} does not match its chained hash`);
      insert.run(...cells, ...Array(cols.length - cells.length).fill(null), hash);
      prev = hash;
      id++;
    }
    const end = b.to.chains[c];
    if (end.id !== id || end.hash !== prev)
      throw new EventLogError('INVALID', `import: ${c} rows end at ${id}, the batch says ${end.id}`);
    db.prepare('UPDATE chain_heads SET head_id = ?, head_hash = ? WHERE chain = ?').run(id, prev, c);
  }
  importCheckpoints(db, b.checkpoints, b.checkpointPieces ?? [], opts.staged ?? new Set());
  replaceResumePoints(db, b.resumePoints);
}

/**
 * The first part of a stepped import (EventLog.importRowsSteps): each pieced checkpoint of the
 * batch with no row at its seq here, its pieces checked against its hash in memory and written
 * ahead of its row (checkpoints.ts stagePiecesSteps), a piece a step. Returns the seqs staged,
 * which importRows then takes as stored and checked. A checkpoint whose pieces are not all there
 * or do not match is left to importRows, which refuses the batch with the same words as before.
 */
export function* stageBatchPiecesSteps(
  db: Database.Database,
  b: RowBatch,
  write: LogWrite,
): Generator<void, ReadonlySet<number>, void> {
  const pieces = b.checkpointPieces ?? [];
  const ready: { seq: number; pieces: string[] }[] = [];
  let next = 0;
  for (const r of b.checkpoints) {
    const n = r.length > PIECES ? r[PIECES] : 0;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) continue;
    const [seq, , , , , objectsHash, rejections] = r;
    const own = pieces.slice(next, next + n);
    next += n;
    const whole = own.length === n && own.every((p, i) => p[0] === seq && p[1] === i && typeof p[2] === 'string');
    if (!whole || typeof seq !== 'number' || typeof rejections !== 'string' || hasCheckpointAt(db, seq)) continue;
    const texts = own.map((p) => p[2] as string);
    if ((yield* piecesHashSteps(texts, rejections)) === objectsHash) ready.push({ seq, pieces: texts });
  }
  yield* stagePiecesSteps(db, write, ready);
  return new Set(ready.map((c) => c.seq));
}

/**
 * Stores shipped checkpoint rows: a one-text row checked against its hash as before; a pieced one
 * stored with exactly its pieces (0..N-1 of its seq) and checked by reading them back the way
 * replay does (the same objects_hash as the one-text form). Anything else is refused: INVALID.
 */
function importCheckpoints(
  db: Database.Database,
  rows: readonly RawRow[],
  pieces: readonly RawRow[],
  staged: ReadonlySet<number>,
): void {
  const cols = [...CHECKPOINT_COLUMNS, 'pieces', 'reading_revision'];
  const putCp = db.prepare(
    `INSERT OR REPLACE INTO checkpoints (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
  );
  const dropPieces = db.prepare('DELETE FROM checkpoint_pieces WHERE seq = ?');
  const putPiece = db.prepare(
    `INSERT INTO checkpoint_pieces (${PIECE_COLUMNS.join(', ')}) VALUES (${PIECE_COLUMNS.map(() => '?').join(', ')})`,
  );
  let next = 0; // pieces[next]: the first piece not yet stored
  for (const r of rows) {
    if (r.length < PIECES || r.length > READING_REVISION + 1)
      throw new EventLogError(
        'INVALID',
        `import: a checkpoint row has ${r.length} columns, expected ${PIECES} (or ${PIECES + 1} when in pieces, ${READING_REVISION + 1} with a reading revision)`,
      );
    const [seq, , , , objects, objectsHash, rejections] = r;
    const n = r.length > PIECES ? r[PIECES] : 0;
    const revision = r.length > READING_REVISION ? r[READING_REVISION] : null;
    if (revision !== null && (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 1))
      throw new EventLogError('INVALID', `import: checkpoint at seq ${String(seq)} has a bad reading revision`);
    const row = [...r.slice(0, PIECES), n, revision];
    if (typeof seq !== 'number' || typeof objects !== 'string' || typeof rejections !== 'string')
      throw new EventLogError('INVALID', `import: checkpoint at seq ${String(seq)} is malformed`);
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
      throw new EventLogError('INVALID', `import: checkpoint at seq ${seq} has a bad piece count (${String(n)})`);
    if (n > 0 && staged.has(seq)) {
      // checked against its hash and written ahead (stageBatchPiecesSteps): only their count is read back
      for (let i = 0; i < n; i++, next++) {
        const p = pieces[next];
        if (!p || p[0] !== seq || p[1] !== i)
          throw new EventLogError(
            'INVALID',
            `import: checkpoint at seq ${seq}: piece ${i} of ${n} is not in the batch`,
          );
      }
      assertStagedPieces(db, seq, n, 'import');
      putCp.run(...row);
      continue;
    }
    // REPLACE deletes without firing the pieces trigger: an earlier checkpoint at this seq may have left some
    dropPieces.run(seq);
    if (n === 0) {
      if (checkpointHash(objects, rejections) !== objectsHash)
        throw new EventLogError('INVALID', `import: checkpoint at seq ${seq} does not match its hash`);
      putCp.run(...row);
      continue;
    }
    putCp.run(...row);
    for (let i = 0; i < n; i++, next++) {
      const p = pieces[next];
      if (!p || p.length !== PIECE_COLUMNS.length || p[0] !== seq || p[1] !== i || typeof p[2] !== 'string')
        throw new EventLogError('INVALID', `import: checkpoint at seq ${seq}: piece ${i} of ${n} is not in the batch`);
      putPiece.run(...p);
    }
    const read = readCheckpointObjects(
      db,
      { seq, objects, objects_hash: String(objectsHash), rejections, pieces: n },
      { parse: false },
    );
    if ('problem' in read)
      throw new EventLogError('INVALID', `import: checkpoint at seq ${seq} in ${n} pieces: ${read.problem}`);
  }
  if (next !== pieces.length)
    throw new EventLogError(
      'INVALID',
      `import: ${pieces.length - next} checkpoint pieces in the batch belong to no pieced checkpoint row`,
    );
}

export function replaceResumePoints(db: Database.Database, points: readonly RawRow[]): void {
  const put = db.prepare(`INSERT INTO resume_points (kind, resource_version, updated_at) VALUES (?, ?, ?)
    ON CONFLICT (kind) DO UPDATE SET resource_version = excluded.resource_version, updated_at = excluded.updated_at`);
  for (const r of points) {
    if (r.length !== RESUME_COLUMNS.length || r.some((v) => typeof v !== 'string'))
      throw new EventLogError('INVALID', 'import: a resume point row is malformed');
    put.run(...r);
  }
}

/**
 * Drops every row after `to` (a position this log holds) inside the caller's transaction and moves
 * the chain heads back; returns the dropped rows (as a batch from `to`) so the caller can record them.
 */
export function truncateRows(db: Database.Database, to: LogPosition): RowBatch {
  const h = heads(db);
  for (const c of CHAIN_NAMES) {
    const at = to.chains[c];
    if (at.id < h[c].anchor_id)
      throw new EventLogError('COMPACTED', `truncate: ${c} row ${at.id} was compacted away (anchor ${h[c].anchor_id})`);
    if (at.id > h[c].head_id)
      throw new EventLogError('INVALID', `truncate: ${c} ends at ${h[c].head_id}, before ${at.id}`);
  }
  const dropped = exportRows(db, to);
  for (const c of CHAIN_NAMES) {
    const at = to.chains[c];
    db.prepare(`DELETE FROM ${c} WHERE ${CHAINS[c].id} > ?`).run(at.id);
    db.prepare('UPDATE chain_heads SET head_id = ?, head_hash = ? WHERE chain = ?').run(at.id, at.hash, c);
  }
  db.prepare('DELETE FROM checkpoints WHERE seq > ?').run(coveredCheckpointSeq(to));
  return dropped;
}

/**
 * The part of `b` after `from`, a position inside it (each chain's row at from's id carries from's
 * hash, or from is b's start): what a log standing at `from` still needs of a snapshot. DIVERGED
 * when `from` is not on b's history.
 */
export function sliceBatch(b: RowBatch, from: LogPosition): RowBatch {
  const rows = {} as Record<ChainName, RawRow[]>;
  for (const c of CHAIN_NAMES) {
    const at = from.chains[c];
    const start = b.from.chains[c];
    const all = b.rows[c];
    if (at.id === start.id && at.hash === start.hash) {
      rows[c] = [...all];
      continue;
    }
    const i = at.id - start.id - 1;
    const row = all[i];
    if (!row || row[0] !== at.id || row[row.length - 1] !== at.hash) {
      throw new EventLogError('DIVERGED', `${c} row ${at.id} of this log is not the snapshot's (another history)`);
    }
    rows[c] = all.slice(i + 1);
  }
  const checkpoints = b.checkpoints.filter((r) => (r[0] as number) > from.checkpointSeq);
  const out = { from, to: b.to, rows, checkpoints, resumePoints: b.resumePoints };
  const pieces = b.checkpointPieces?.filter((r) => (r[0] as number) > from.checkpointSeq);
  return pieces?.length ? { ...out, checkpointPieces: pieces } : out;
}

/**
 * The checkpoints of `b` newer than this log's (at `here`, whose chains hold b.to's), as a batch
 * from `here` with no chain rows; undefined when there are none. A batch whose chain rows a log
 * already holds can still carry a checkpoint it lacks (the leader's retention writes one at its
 * cut and ships it alone): taken for "already here", the log's position fell behind the group's
 * (probe9 G1). The resume points go along only when `here` stands exactly at b.to.
 */
export function checkpointsAfter(b: RowBatch, here: LogPosition): RowBatch | undefined {
  if (b.to.checkpointSeq <= here.checkpointSeq) return undefined;
  const checkpoints = b.checkpoints.filter((r) => (r[0] as number) > here.checkpointSeq);
  if (checkpoints.length === 0) return undefined;
  const atEnd = CHAIN_NAMES.every(
    (c) => here.chains[c].id === b.to.chains[c].id && here.chains[c].hash === b.to.chains[c].hash,
  );
  const out: RowBatch = {
    from: here,
    to: { chains: here.chains, checkpointSeq: Math.max(...checkpoints.map((r) => r[0] as number)) },
    rows: Object.fromEntries(CHAIN_NAMES.map((c) => [c, []])) as unknown as Record<ChainName, RawRow[]>,
    checkpoints,
    resumePoints: atEnd ? b.resumePoints : [],
  };
  const pieces = b.checkpointPieces?.filter((r) => (r[0] as number) > here.checkpointSeq);
  return pieces?.length ? { ...out, checkpointPieces: pieces } : out;
}
