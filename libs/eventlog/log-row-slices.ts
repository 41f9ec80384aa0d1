import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { EventLogError, translateSqliteError } from './event-log-error.ts';
import {
  CHECKPOINT_SELECT,
  PIECES,
  OWNED_PIECES,
  hashAt,
  heads,
  shipped,
  shippedCheckpoint,
  type ChainHead,
  type LogPosition,
  type RawRow,
  type RowBatch,
} from './log-rows.ts';
import { CHAIN_NAMES, CHAINS, type ChainName } from './row-chain.ts';

/** Where a slice's rows go in a RowBatch: a chain's rows, checkpoints, or checkpoint pieces. */
export type SliceSection = ChainName | 'checkpoints' | 'checkpointPieces';

/**
 * A whole-log export in order: one head (the batch's from and to), then each chain's rows (every
 * chain at least once, an empty slice for an empty one), then the checkpoints (at least once), then
 * the checkpoint pieces (only when some checkpoint is pieced). Joined, the slices are exactly
 * exportRows(…, { whole: true, upTo }) less its resume points.
 */
export type RowSlice =
  | { readonly kind: 'head'; readonly from: LogPosition; readonly to: LogPosition }
  | { readonly kind: 'rows'; readonly section: SliceSection; readonly rows: readonly RawRow[] };

export interface SliceOptions {
  /** Most rows in one slice (default 500). */
  readonly rows?: number;
  /** A slice ends once reading it took this long, in ms (default 2). */
  readonly ms?: number;
  /** A slice ends once its text cells hold this many characters (default 256 Ki). */
  readonly chars?: number;
}

/**
 * The whole log as of `upTo` (a position this file holds), read in slices from a read-only
 * connection of its own inside one read transaction: WAL gives that transaction the file as of its
 * first read, so rows the writer commits meanwhile, or a truncation, change nothing it reads, and
 * the writer is never blocked by it. Between slices the generator waits for the event loop's next
 * turn, so a snapshot of any size holds the caller's thread for one slice at a time (its reading,
 * plus what the caller does with it) instead of the whole export (review4 G4). The connection is
 * closed when the generator ends, throws or is returned early.
 */
export async function* wholeLogSlices(file: string, upTo: LogPosition, o: SliceOptions = {}): AsyncGenerator<RowSlice> {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (e) {
    throw translateSqliteError(e, `event log ${file}: snapshot reader`);
  }
  try {
    db.pragma('busy_timeout = 5000');
    db.exec('BEGIN'); // deferred: the first read below fixes the view every later one sees
    const h = heads(db);
    for (const c of CHAIN_NAMES) {
      const end = upTo.chains[c];
      if (hashAt(db, c, h[c], end.id) !== end.hash)
        throw new EventLogError('DIVERGED', `export: ${c} row ${end.id} is not the one the end position names`);
    }
    const from: LogPosition = {
      chains: Object.fromEntries(CHAIN_NAMES.map((c) => [c, { id: h[c].anchor_id, hash: h[c].anchor_hash }])) as Record<
        ChainName,
        ChainHead
      >,
      checkpointSeq: 0,
    };
    yield { kind: 'head', from, to: upTo };
    await nextTurn();
    for (const c of CHAIN_NAMES) {
      const rows = db
        .prepare(
          `SELECT ${CHAINS[c].columns.join(', ')}, row_hash FROM ${c} WHERE ${CHAINS[c].id} > ? AND ${CHAINS[c].id} <= ? ORDER BY ${CHAINS[c].id}`,
        )
        .raw(true)
        .iterate(from.chains[c].id, upTo.chains[c].id) as IterableIterator<RawRow>;
      yield* sliced(c, rows, (r) => shipped(c, [r])[0]!, o);
    }
    let pieced = false;
    const checkpoints = db
      .prepare(`SELECT ${CHECKPOINT_SELECT} FROM checkpoints WHERE seq <= ? ORDER BY seq`)
      .raw(true)
      .iterate(upTo.checkpointSeq) as IterableIterator<RawRow>;
    // pieces = 0: the one-text row as it always was (log-rows.ts exportRows)
    yield* sliced(
      'checkpoints',
      checkpoints,
      (r) => {
        if (r[PIECES] !== 0) pieced = true;
        return shippedCheckpoint(r);
      },
      o,
    );
    if (pieced) {
      const pieces = db
        .prepare(`SELECT p.seq, p.piece, p.objects FROM ${OWNED_PIECES} WHERE p.seq <= ? ORDER BY p.seq, p.piece`)
        .raw(true)
        .iterate(upTo.checkpointSeq) as IterableIterator<RawRow>;
      yield* sliced('checkpointPieces', pieces, (r) => r, { ...o, rows: 1 }); // a piece is up to 32 Mi chars
    }
  } finally {
    db.close();
  }
}

/** A batch already in memory as the same slices (a log in memory has no file to read beside it). */
export async function* batchSlices(b: RowBatch): AsyncGenerator<RowSlice> {
  yield { kind: 'head', from: b.from, to: b.to };
  for (const c of CHAIN_NAMES) yield { kind: 'rows', section: c, rows: b.rows[c] };
  yield { kind: 'rows', section: 'checkpoints', rows: b.checkpoints };
  if (b.checkpointPieces?.length) yield { kind: 'rows', section: 'checkpointPieces', rows: b.checkpointPieces };
}

async function* sliced(
  section: SliceSection,
  rows: Iterable<RawRow>,
  map: (r: RawRow) => RawRow,
  o: SliceOptions,
): AsyncGenerator<RowSlice> {
  // The caller turns each slice into text before the next turn too: together a few ms of this
  // thread on a quiet host (~500 ACK rows of ~700 bytes).
  const maxRows = o.rows ?? 500;
  const maxMs = o.ms ?? 2;
  const maxChars = o.chars ?? 256 * 1024;
  let slice: RawRow[] = [];
  let chars = 0;
  let started = performance.now();
  let any = false;
  for (const r of rows) {
    slice.push(map(r));
    for (const cell of r) if (typeof cell === 'string') chars += cell.length;
    if (slice.length >= maxRows || chars >= maxChars || performance.now() - started >= maxMs) {
      yield { kind: 'rows', section, rows: slice };
      any = true;
      slice = [];
      chars = 0;
      await nextTurn();
      started = performance.now();
    }
  }
  // the last rows; an empty slice only when the section had none (it must still appear)
  if (slice.length > 0 || !any) {
    yield { kind: 'rows', section, rows: slice };
    await nextTurn();
  }
}
