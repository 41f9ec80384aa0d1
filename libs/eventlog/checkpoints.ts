import { createHash, type Hash } from 'node:crypto';
import type Database from 'better-sqlite3';
import {
  LATEST_READING_REVISION,
  readingRevisionOf,
  runSteps,
  sha256Hex,
  type KubeObject,
  type ReadingRevision,
} from '../model/index.ts';
import type { ClusterState, ObjectRejection } from '../planner/index.ts';
import { EventLogError } from './event-log-error.ts';
import { readingRevisionColumn } from './version-record.ts';

/** A full-state checkpoint: the objects of ClusterState after every event up to `seq`. */
export interface Checkpoint {
  readonly seq: number;
  /** Latest data version when the checkpoint was taken (informational). */
  readonly version: number;
  /** ClusterState.hash() of these objects. */
  readonly dataHash: string;
  readonly objectCount: number;
  readonly createdAt: string;
  /** The reading revision its objects were read (and dataHash built) with. */
  readonly readingRevision: ReadingRevision;
}

export interface CheckpointWithObjects extends Checkpoint {
  readonly objects: readonly KubeObject[];
  /** Objects whose latest event up to `seq` was rejected (their good state is in `objects`). */
  readonly rejections: readonly ObjectRejection[];
}

interface CheckpointRow {
  seq: number;
  version: number;
  data_hash: string;
  object_count: number;
  objects: string;
  objects_hash: string;
  rejections: string;
  created_at: string;
  /** 0: `objects` holds them all (one text); N > 0: N rows of checkpoint_pieces do. */
  pieces: number;
  /** NULL: revision 1 (rows older than migration 0008, and revision-1 rows since, stored as before). */
  reading_revision: number | null;
}

/**
 * Most characters of JSON in one stored piece (a piece holds at least one object, so one object
 * larger than this makes a larger piece). A checkpoint whose objects fit in one piece keeps the
 * one-text form every checkpoint had before pieces (migration 0004), so such rows read, verify
 * and replicate exactly as before. A piece is the unit every step over a checkpoint takes whole
 * (its store transaction, its export, its encoding into a batch, a follower's parse and import,
 * a restore's read): at 32 Mi characters each held the planner's thread 0.6–0.8 s at 10,000
 * services × 250 endpoints, a quarter of that at 8 Mi (pieces written before keep their size).
 */
export const CHECKPOINT_PIECE_CHARS = 8 * 1024 * 1024;

/**
 * The hash a checkpoint row stores: over its objects, and its rejections when there are any (so
 * checkpoints written before rejections were kept, with '[]', keep their hash).
 */
export function checkpointHash(objects: string, rejections: string): string {
  return sha256Hex(rejections === '[]' ? objects : `${objects}\n${rejections}`);
}

/**
 * checkpointHash computed piece by piece: fed each object's JSON in order, it gives the hash of
 * their one-text form ('[' + the objects' JSON joined by ',' + ']'), which is JSON.stringify of
 * the array since stringify is compositional. So a checkpoint stored in pieces has the same
 * objects_hash as the one-text row of the same objects (replicas and `db verify` compare them).
 */
class PiecewiseCheckpointHash {
  // object(): one object's JSON, or a run of them joined by ',' (a stored piece between its brackets)
  private readonly h: Hash = createHash('sha256').update('[');
  private first = true;

  object(json: string): void {
    this.h.update(this.first ? json : `,${json}`);
    this.first = false;
  }

  /** A stored piece's text ('[' + a run of objects' JSON + ']'), hashed as that run (an empty piece adds nothing). */
  piece(text: string): void {
    const body = text.slice(1, -1);
    if (body !== '') this.object(body);
  }

  digest(rejections: string): string {
    this.h.update(']');
    if (rejections !== '[]') this.h.update(`\n${rejections}`);
    return this.h.digest('hex');
  }
}

/** What writeCheckpoint and checkpointSteps are given. */
export interface CheckpointInput {
  readonly state: ClusterState;
  readonly rejections: Iterable<ObjectRejection>;
  readonly seq: number;
  readonly version: number;
  readonly createdAt: string;
  /** Default CHECKPOINT_PIECE_CHARS; tests lower it. */
  readonly pieceChars?: number;
}

/** A checkpoint serialised and hashed, not yet stored (storeCheckpoint writes it in one transaction). */
export interface PreparedCheckpoint {
  readonly checkpoint: Checkpoint;
  /** Every piece but the last, as UTF-8 (off V8's heap while the rest is serialised); none: one piece. */
  readonly pieces: readonly Buffer[];
  /** The last (or only) piece's text. */
  readonly last: string;
  readonly objectsHash: string;
  readonly rejections: string;
}

/** Objects' JSON serialised per step of checkpointSteps (~1 ms here for a 250-endpoint slice). */
const CHARS_PER_STEP = 256 * 1024;

/**
 * Writes a checkpoint of `state`, which must reflect exactly the events up to `seq`. Objects are
 * stored sorted by key so equal states give identical text (and identical objects_hash). They are
 * serialised one at a time into pieces of at most `pieceChars` characters: the whole checkpoint
 * never exists as one string (~500 MB at 10,000 services × 250 endpoints; V8's longest string is
 * 2^29 − 24 characters). One piece is stored in the one-text form.
 */
export function writeCheckpoint(db: Database.Database, opts: CheckpointInput): Checkpoint {
  return storeCheckpoint(db, runSteps(checkpointSteps(opts)));
}

/**
 * The checkpoint of writeCheckpoint serialised in steps of about CHARS_PER_STEP characters, for a
 * caller that must not block for all of it: at 7,500 services × 250 endpoints one call held the
 * planner's thread ~12 s, longer than its lease could wait (docs/scale.md, "Where it breaks
 * first"). The state must not change between the steps (the planner runs them in its serial
 * queue, where every change to its state is made). Finished pieces are kept as UTF-8 Buffers,
 * outside V8's heap, until storeCheckpoint writes them.
 */
export function* checkpointSteps(opts: CheckpointInput): Generator<void, PreparedCheckpoint, void> {
  const limit = opts.pieceChars ?? CHECKPOINT_PIECE_CHARS;
  const objects = opts.state.objectsInKeyOrder(); // one packed slice unpacked at a time
  const rejections = JSON.stringify([...opts.rejections].sort((a, b) => a.seq - b.seq));
  const checkpoint: Checkpoint = {
    seq: opts.seq,
    version: opts.version,
    dataHash: opts.state.hash(),
    objectCount: objects.count,
    createdAt: opts.createdAt,
    readingRevision: opts.state.readingRevision,
  };
  const hash = new PiecewiseCheckpointHash();
  const pieces: Buffer[] = [];
  let piece: string[] = [];
  let chars = 2; // the piece's text: '[' + its objects' JSON joined by ',' + ']'
  let sinceStep = 0;
  for (const o of objects) {
    const json = JSON.stringify(o);
    if (piece.length > 0 && chars + 1 + json.length > limit) {
      pieces.push(Buffer.from(`[${piece.join(',')}]`, 'utf8'));
      piece = [];
      chars = 2;
    }
    hash.object(json);
    chars += (piece.length > 0 ? 1 : 0) + json.length;
    piece.push(json);
    if ((sinceStep += json.length) >= CHARS_PER_STEP) {
      sinceStep = 0;
      yield;
    }
  }
  return { checkpoint, pieces, last: `[${piece.join(',')}]`, objectsHash: hash.digest(rejections), rejections };
}

/** Stores a prepared checkpoint (its pieces, then its row); the caller's transaction makes it one write. */
export function storeCheckpoint(db: Database.Database, p: PreparedCheckpoint): Checkpoint {
  const cp = p.checkpoint;
  // an earlier checkpoint at this seq (rewritten by compaction) may have left pieces behind
  db.prepare('DELETE FROM checkpoint_pieces WHERE seq = ?').run(cp.seq);
  const put = piecePut(db);
  let stored = 0;
  for (const bytes of p.pieces) put.run(cp.seq, stored++, bytes);
  if (stored > 0) put.run(cp.seq, stored++, p.last);
  return putCheckpointRow(db, p, stored);
}

/** One write transaction of the event log (LogWrites.run: what it stores, and the work). */
export type LogWrite = <T>(context: string, fn: () => T) => T;

/**
 * storeCheckpoint a piece a transaction, then the row in one more: the store of a first
 * checkpoint at 10,000 services of 250 endpoints (~0.5 GB in ~17 pieces) held the leader's thread
 * ~5 s in one transaction (docs/scale.md). The pieces go first (stagePiecesSteps: no reader sees
 * them before the row); a checkpoint of one piece, or over a row already at its seq (its pieces
 * are read now), is stored in one transaction as before.
 */
export function* storeCheckpointSteps(
  db: Database.Database,
  p: PreparedCheckpoint,
  write: LogWrite,
): Generator<void, Checkpoint, void> {
  const cp = p.checkpoint;
  if (p.pieces.length === 0 || hasCheckpointAt(db, cp.seq)) return write('checkpoint', () => storeCheckpoint(db, p));
  const pieces = [...p.pieces, p.last];
  yield* stagePiecesSteps(db, write, [{ seq: cp.seq, pieces }]);
  return write('checkpoint', () => {
    assertStagedPieces(db, cp.seq, pieces.length, 'checkpoint');
    return putCheckpointRow(db, p, pieces.length);
  });
}

/**
 * Writes checkpoints' pieces ahead of their rows, a piece a transaction. A piece belongs to a
 * checkpoint only through its row (`pieces` N: pieces 0..N-1 of its seq), and every reader goes
 * through the row (readCheckpointObjects, exportRows, the whole-log slices), so pieces written
 * ahead are read by none until the row's own transaction makes them one checkpoint
 * (assertStagedPieces). A store that never wrote its row (a crash, a refused import, a follower
 * stopped between pieces) leaves pieces no row owns: each staging removes those first.
 */
export function* stagePiecesSteps(
  db: Database.Database,
  write: LogWrite,
  checkpoints: readonly { readonly seq: number; readonly pieces: readonly (string | Buffer)[] }[],
): Generator<void, void, void> {
  write('removal of checkpoint pieces no checkpoint owns', () => dropUnownedPieces(db));
  const put = piecePut(db);
  for (const { seq, pieces } of checkpoints) {
    for (let i = 0; i < pieces.length; i++) {
      write(`checkpoint at seq ${seq}: piece ${i} of ${pieces.length}`, () => put.run(seq, i, pieces[i]));
      yield;
    }
  }
}

/** Removes pieces whose seq has no checkpoint row (a staging given up); how many. */
export function dropUnownedPieces(db: Database.Database): number {
  return db.prepare('DELETE FROM checkpoint_pieces WHERE seq NOT IN (SELECT seq FROM checkpoints)').run().changes;
}

/** Inside the row's transaction: throws unless exactly pieces 0..n-1 of `seq` are stored (what was staged). */
export function assertStagedPieces(db: Database.Database, seq: number, n: number, what: string): void {
  const r = db
    .prepare('SELECT count(*) AS count, min(piece) AS lo, max(piece) AS hi FROM checkpoint_pieces WHERE seq = ?')
    .get(seq) as { count: number; lo: number | null; hi: number | null };
  if (r.count !== n || r.lo !== 0 || r.hi !== n - 1)
    throw new EventLogError(
      'INVALID',
      `${what}: checkpoint at seq ${seq}: ${r.count} pieces stored ahead of its row, ${n} expected (removed meanwhile?)`,
    );
}

export function hasCheckpointAt(db: Database.Database, seq: number): boolean {
  return db.prepare('SELECT 1 FROM checkpoints WHERE seq = ?').get(seq) !== undefined;
}

/** A piece insert; a Buffer binds as a BLOB: cast back to the TEXT every reader of the column expects. */
function piecePut(db: Database.Database): Database.Statement {
  return db.prepare('INSERT INTO checkpoint_pieces (seq, piece, objects) VALUES (?, ?, CAST(? AS TEXT))');
}

/**
 * The objects_hash of a checkpoint stored as these pieces' texts (each '[' + objects' JSON + ']'),
 * a piece a step: what readCheckpointObjects checks a stored one against, for pieces not yet stored.
 */
export function* piecesHashSteps(texts: readonly string[], rejections: string): Generator<void, string, void> {
  const hash = new PiecewiseCheckpointHash();
  for (const text of texts) {
    hash.piece(text);
    yield;
  }
  return hash.digest(rejections);
}

function putCheckpointRow(db: Database.Database, p: PreparedCheckpoint, stored: number): Checkpoint {
  const cp = p.checkpoint;
  db.prepare(`INSERT OR REPLACE INTO checkpoints
    (seq, version, data_hash, object_count, objects, objects_hash, rejections, created_at, pieces, reading_revision)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
    cp.seq,
    cp.version,
    cp.dataHash,
    cp.objectCount,
    stored > 0 ? '' : p.last,
    p.objectsHash,
    p.rejections,
    cp.createdAt,
    stored,
    readingRevisionColumn(cp.readingRevision),
  );
  return cp;
}

export function listCheckpoints(db: Database.Database): Checkpoint[] {
  const rows = db
    .prepare('SELECT seq, version, data_hash, object_count, created_at, reading_revision FROM checkpoints ORDER BY seq')
    .all() as CheckpointRow[];
  return rows.map(toCheckpoint);
}

/** The seq of the checkpoint checkpointAtOrBefore would read (no objects read): replay's cheap test. */
export function checkpointSeqAtOrBefore(
  db: Database.Database,
  seq: number,
  revision: ReadingRevision = LATEST_READING_REVISION,
  opts: { olderRevisions?: boolean } = {},
): number | undefined {
  return db
    .prepare(`SELECT seq FROM checkpoints WHERE ${foldCheckpointWhere(opts)}`)
    .pluck()
    .get(seq, revision) as number | undefined;
}

function foldCheckpointWhere(opts: { olderRevisions?: boolean }): string {
  return `seq <= ? AND coalesce(reading_revision, 1) ${opts.olderRevisions ? '<' : '='} ? ORDER BY seq DESC LIMIT 1`;
}

/**
 * The nearest checkpoint at or before `seq` made under reading revision `revision` (with
 * `olderRevisions`: under an older one), with its objects (undefined: start from empty). A fold
 * at one revision never starts from another's objects unless it must (replay.ts).
 */
export function checkpointAtOrBefore(
  db: Database.Database,
  seq: number,
  revision: ReadingRevision = LATEST_READING_REVISION,
  opts: { olderRevisions?: boolean } = {},
): CheckpointWithObjects | undefined {
  return runSteps(checkpointAtOrBeforeSteps(db, seq, revision, opts));
}

/** checkpointAtOrBefore with its objects read a piece a step (readCheckpointObjectsSteps). */
export function* checkpointAtOrBeforeSteps(
  db: Database.Database,
  seq: number,
  revision: ReadingRevision = LATEST_READING_REVISION,
  opts: { olderRevisions?: boolean } = {},
): Generator<void, CheckpointWithObjects | undefined, void> {
  const row = db.prepare(`SELECT * FROM checkpoints WHERE ${foldCheckpointWhere(opts)}`).get(seq, revision) as
    | CheckpointRow
    | undefined;
  if (!row) return undefined;
  const read = yield* readCheckpointObjectsSteps(db, row);
  if ('problem' in read)
    throw new EventLogError('INVALID', `checkpoint at seq ${row.seq} is damaged (${read.problem})`);
  return {
    ...toCheckpoint(row),
    objects: read.objects,
    rejections: JSON.parse(row.rejections) as ObjectRejection[],
  };
}

/**
 * A stored checkpoint's objects, checked against its objects_hash, whichever form it is stored in
 * (one text, or pieces read and parsed one at a time), or what is wrong with it. For `db verify`
 * as well as replay.
 */
export function readCheckpointObjects(
  db: Database.Database,
  row: { seq: number; objects: string; objects_hash: string; rejections: string; pieces?: number },
  opts: { parse?: boolean } = {},
): { objects: KubeObject[] } | { problem: string } {
  return runSteps(readCheckpointObjectsSteps(db, row, opts));
}

/**
 * readCheckpointObjects a piece a step (each up to 32 Mi characters: ~0.3 s to parse here), so a
 * planner restoring a large cluster's view lets its lease, heartbeats and status run between
 * them. Each piece is read by its own query: no cursor stays open across a step (the connection
 * runs other queries meanwhile); a piece gone meanwhile (the checkpoint replaced) reads as missing.
 */
export function* readCheckpointObjectsSteps(
  db: Database.Database,
  row: { seq: number; objects: string; objects_hash: string; rejections: string; pieces?: number },
  opts: { parse?: boolean } = {},
): Generator<void, { objects: KubeObject[] } | { problem: string }, void> {
  const parse = opts.parse ?? true;
  const pieces = row.pieces ?? piecesOf(db, row.seq);
  if (!Number.isSafeInteger(pieces) || pieces < 0) return { problem: `unknown storage form (pieces ${pieces})` };
  if (pieces === 0) {
    if (checkpointHash(row.objects, row.rejections) !== row.objects_hash) return { problem: HASH_MISMATCH };
    return { objects: parse ? (JSON.parse(row.objects) as unknown[]).map(storedObject) : [] };
  }
  if (row.objects !== '') return { problem: `stored in ${pieces} pieces and as one text` };
  const hash = new PiecewiseCheckpointHash();
  const objects: KubeObject[] = [];
  const pieceAt = db.prepare('SELECT objects FROM checkpoint_pieces WHERE seq = ? AND piece = ?').pluck();
  const after = db.prepare('SELECT count(*) FROM checkpoint_pieces WHERE seq = ? AND piece > ?').pluck();
  const extra = db
    .prepare('SELECT count(*) FROM checkpoint_pieces WHERE seq = ? AND (piece < 0 OR piece >= ?)')
    .pluck();
  for (let n = 0; n < pieces; n++) {
    const text = pieceAt.get(row.seq, n) as string | undefined;
    if (text === undefined)
      return {
        problem:
          (after.get(row.seq, n) as number) === 0
            ? `${pieces - n} of ${pieces} pieces are missing`
            : `piece ${n} of ${pieces} is missing`,
      };
    let list: unknown = [];
    try {
      if (parse) list = JSON.parse(text);
    } catch {
      return { problem: `piece ${n} of ${pieces} is not JSON` };
    }
    if (!Array.isArray(list)) return { problem: `piece ${n} of ${pieces} is not a JSON array` };
    // the stored text itself is hashed (a run of objects' JSON between the brackets), as one-text rows are
    hash.piece(text);
    for (const o of list) objects.push(storedObject(o));
    yield;
  }
  const more = extra.get(row.seq, pieces) as number;
  if (more > 0) return { problem: `${more} pieces past its ${pieces}` };
  if (hash.digest(row.rejections) !== row.objects_hash) return { problem: HASH_MISMATCH };
  return { objects };
}

/**
 * A checkpoint object as this release reads it. Checkpoints hold the parsed objects (KubeObject) as
 * the release that wrote them had them, and fields were added since: an endpoint's `hintNodes`
 * (6bf90a6, PreferSameNode hints) and a Node's `beingRemoved` (f78c342). A checkpoint written by a
 * release before them (e.g. 0f3dc3b) lacks them, and the fold read `undefined.length`: a planner
 * restarted on such a log, and every replay or audit through that checkpoint, failed with
 * "Cannot read properties of undefined". A missing field means what that release did: no node
 * hints, not being removed. The stored text and its hash are untouched.
 */
function storedObject(o: unknown): KubeObject {
  const obj = o as KubeObject;
  if (obj.kind === 'EndpointSlice' && obj.endpoints.some((e) => e.hintNodes === undefined))
    return { ...obj, endpoints: obj.endpoints.map((e) => (e.hintNodes === undefined ? { ...e, hintNodes: [] } : e)) };
  if (obj.kind === 'Node' && obj.beingRemoved === undefined) return { ...obj, beingRemoved: '' };
  return obj;
}

/** readCheckpointObjects' problem when the stored objects do not match objects_hash. */
export const HASH_MISMATCH = 'objects hash mismatch';

function piecesOf(db: Database.Database, seq: number): number {
  return (
    (db.prepare('SELECT pieces FROM checkpoints WHERE seq = ?').get(seq) as { pieces: number } | undefined)?.pieces ?? 0
  );
}

function toCheckpoint(r: CheckpointRow): Checkpoint {
  return {
    seq: r.seq,
    version: r.version,
    dataHash: r.data_hash,
    objectCount: r.object_count,
    createdAt: r.created_at,
    readingRevision: readingRevisionOf(r.reading_revision, `checkpoint at seq ${r.seq}`),
  };
}
