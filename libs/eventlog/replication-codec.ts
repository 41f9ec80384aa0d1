import { createHash, type Hash } from 'node:crypto';
import { z } from 'zod';
import { CHAIN_NAMES } from './row-chain.ts';
import { runSteps } from '../model/index.ts';
import { rowCount, type RawRow, type RowBatch } from './log-rows.ts';

/**
 * The wire form of the replicated log (pure: no I/O). One write batch is one stream message, split
 * into parts only when it exceeds the server's max payload (each part conditional on the one
 * before); a term marker is one message. Headers say what a message is; the payload is JSON.
 */
export const H = {
  kind: 'Sb-Log',
  batch: 'Sb-Log-Batch',
  part: 'Sb-Log-Part',
  term: 'Sb-Log-Term',
  /** rowCount(to) after this batch: how far the group is, for lag, without reading the payload. */
  rows: 'Sb-Log-Rows',
  /** Where a batch's checkpoint pieces lie in its payload (batchJson): read one at a time. */
  layout: 'Sb-Log-Layout',
  /**
   * The leader's signature (planner key) over logMessageStatement (libs/bus/planner-signature.ts):
   * on a term marker, and on the part that completes a batch (over all parts joined). A header, so
   * a replica of a release before this reads the message as before (docs/ha.md, "Signed log").
   */
  sig: 'Sb-Log-Sig',
} as const;

/** What a log message's signature covers, less the group and seq the replicator adds (see H.sig). */
export type LogSigned = {
  readonly kind: 'rows' | 'term';
  readonly term: number;
  /** The Sb-Log-Rows header as sent. */
  readonly rows: string;
} & (
  | {
      /** The payload: a batch's parts joined. */
      readonly payload: Uint8Array;
      /** sha256 (hex) of the payload when already taken (a batch's, as it was made): not hashed again. */
      readonly payloadDigest?: string;
    }
  /** A batch read in parts: the digest its reader took of the parts as they came, never joined. */
  | { readonly payload?: undefined; readonly payloadDigest: string }
);
/** Signs a log message; undefined: messages go unsigned (no signing key). */
export type LogSign = ((m: LogSigned) => string) | undefined;
/** Why a complete log message (seq: its first part's) is not the group's leader's; undefined when it is. */
export type LogCheck =
  | ((m: LogSigned & { readonly seq: number }, sig: string | undefined) => string | undefined)
  | undefined;

export interface WireMessage {
  readonly headers: Readonly<Record<string, string>>;
  readonly payload: Uint8Array;
  /** Nats-Msg-Id: a retry of the same part is deduplicated by the server. */
  readonly msgId: string;
}

export function encodeTerm(term: number, holder: string, rows: number, afterSeq: number, sign?: LogSign): WireMessage {
  const payload = new TextEncoder().encode(JSON.stringify({ term, holder }));
  const signed: LogSigned = { kind: 'term', term, rows: String(rows), payload };
  return {
    headers: {
      [H.kind]: 'term',
      [H.term]: String(term),
      [H.rows]: String(rows),
      ...(sign ? { [H.sig]: sign(signed) } : {}),
    },
    payload,
    msgId: `term-${term}-${holder}-${afterSeq}`,
  };
}

/** Rows stringified together: ~10-20 KB of JSON each (see batchJsonBytes). */
const ROWS_PER_PIECE = 16;
/**
 * Bytes encoded between two steps of encodeBatchSteps (a checkpoint piece row, up to 32 Mi
 * characters, is one step whatever its size): ~10-30 ms of work here.
 */
export const ENCODE_STEP_BYTES = 4 << 20;

/**
 * Exactly the UTF-8 of JSON.stringify(batch), made in pieces of a few rows. One JSON.stringify
 * of a 10-15 MB batch (the initial list's rows, each carrying its object as JSON text) builds
 * one huge rope whose flattening and UTF-8 encoding cost several times what small pieces written
 * into one buffer cost (~0.3 s of a 10k initial sync on this host, for ~0.1 s in pieces).
 */
export function batchJsonBytes(batch: RowBatch): Buffer {
  return batchJson(batch).bytes;
}

/** batchJsonSteps at once. */
export function batchJson(batch: RowBatch): { bytes: Buffer; layout?: string } {
  const { bytes, layout } = runSteps(batchJsonSteps(batch));
  return layout === undefined ? { bytes } : { bytes, layout };
}

/**
 * batchJsonBytes in steps of about ENCODE_STEP_BYTES, each piece turned into bytes (off V8's heap) as it
 * is made and handed to `onChunk` (the digest is taken as they come), with, when the batch ends
 * with checkpoint pieces (log-rows.ts: each up to 32 Mi characters of JSON, all of them past V8's
 * longest string), where they lie in it: the layout "HEAD:LEN,LEN,..." (byte counts) with which
 * parseBatchBytes reads the batch without ever making one string of it. Each piece row is
 * stringified alone. In one call, a first checkpoint's batch at 10,000 services of 250 endpoints
 * (~0.5 GB) held the leader's thread ~8 s, past its lease (docs/scale.md).
 */
export function* batchJsonSteps(
  batch: RowBatch,
  onChunk?: (chunk: Buffer) => void,
): Generator<void, { bytes: Buffer; layout: string | undefined }, void> {
  let chunks: (Buffer | undefined)[] = [];
  let size = 0;
  let unyielded = 0;
  let keyStart = 0; // where the key last written starts
  let cut = -1; // where ',"checkpointPieces":' starts while it is the last key
  const pieceLens: number[] = []; // each checkpoint piece row's bytes
  const push = (text: string): number => {
    const b = Buffer.from(text);
    chunks.push(b);
    size += b.length;
    unyielded += b.length;
    onChunk?.(b);
    return b.length;
  };
  function* rowsOf(rows: readonly unknown[], per: number, lens?: number[]): Generator<void, void, void> {
    if (rows.length === 0) push('[]');
    for (let i = 0; i < rows.length; i += per) {
      const json = JSON.stringify(rows.slice(i, i + per));
      // a row's bytes: its piece without the leading '[' or ',' (and the last one's ']' is pushed alone)
      const n = push(i === 0 ? json.slice(0, -1) : `,${json.slice(1, -1)}`);
      lens?.push(n - 1);
      if (i + per >= rows.length) push(']');
      if (unyielded >= ENCODE_STEP_BYTES) {
        unyielded = 0;
        yield;
      }
    }
  }
  function* object(o: object, value: (k: string, v: unknown) => Generator<void, void, void>) {
    let sep = '{';
    for (const [k, v] of Object.entries(o)) {
      if (v === undefined) continue;
      keyStart = size;
      push(`${sep}${JSON.stringify(k)}:`);
      sep = ',';
      yield* value(k, v);
    }
    push(sep === '{' ? '{}' : '}');
  }
  yield* object(batch, function* (k, v) {
    cut = -1; // a key after checkpointPieces: no layout
    if (k === 'rows') yield* object(v as object, (_, rows) => rowsOf(rows as unknown[], ROWS_PER_PIECE));
    else if (k === 'checkpointPieces') {
      cut = keyStart;
      pieceLens.length = 0;
      yield* rowsOf(v as unknown[], 1, pieceLens);
    } else if (k === 'checkpoints' || k === 'resumePoints') yield* rowsOf(v as unknown[], ROWS_PER_PIECE);
    else push(JSON.stringify(v));
  });
  // One buffer, copied a step at a time, each piece let go once copied.
  const bytes = Buffer.allocUnsafe(size);
  let at = 0;
  unyielded = 0;
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i]!;
    c.copy(bytes, at);
    at += c.length;
    unyielded += c.length;
    chunks[i] = undefined;
    if (unyielded >= 4 * ENCODE_STEP_BYTES) {
      unyielded = 0;
      yield;
    }
  }
  chunks = [];
  const layout = cut < 0 || pieceLens.length === 0 ? undefined : `${cut}:${pieceLens.join(',')}`;
  return { bytes, layout: layout !== undefined && layout.length <= MAX_LAYOUT_CHARS ? layout : undefined };
}

/** Longest layout header; a longer one is left out and the batch is read as one text. */
const MAX_LAYOUT_CHARS = 4096;
const PIECES_KEY = Buffer.from(',"checkpointPieces":[');

/** A batch's payload and what its messages say of it, before it is cut into parts and signed. */
export interface EncodedBatch {
  readonly term: number;
  readonly bytes: Buffer;
  readonly layout: string | undefined;
  /** The Sb-Log-Rows header. */
  readonly rows: string;
  /** sha256 (hex) of `bytes`, taken as they were made. */
  readonly digest: string;
  /** The Sb-Log-Batch id: of the term and the payload, so a retry of the same part is deduplicated. */
  readonly id: string;
}

/**
 * A batch's payload in steps (batchJsonSteps), its digest taken as its pieces are made: nothing
 * is read twice, and no step holds the thread for more than one checkpoint piece (the leader's
 * lease and heartbeats run between them: replication.ts runs it in slices).
 */
export function* encodeBatchSteps(batch: RowBatch, term: number): Generator<void, EncodedBatch, void> {
  const hash = createHash('sha256');
  const { bytes, layout } = yield* batchJsonSteps(batch, (chunk) => hash.update(chunk));
  const digest = hash.digest('hex');
  const id = createHash('sha256').update(`${term}\n${digest}`).digest('hex').slice(0, 32);
  return { term, bytes, layout, rows: String(rowCount(batch.to)), digest, id };
}

/** An encoded batch as parts of at most `maxPart` payload bytes each, the last one signed. */
export function batchParts(e: EncodedBatch, maxPart: number, sign?: LogSign): WireMessage[] {
  const n = Math.max(1, Math.ceil(e.bytes.length / maxPart));
  const sig = sign?.({ kind: 'rows', term: e.term, rows: e.rows, payload: e.bytes, payloadDigest: e.digest });
  return Array.from({ length: n }, (_, i) => ({
    headers: {
      [H.kind]: 'rows',
      [H.batch]: e.id,
      [H.part]: `${i + 1}/${n}`,
      [H.term]: String(e.term),
      [H.rows]: e.rows,
      // on the part that completes the batch, where the reader joins it
      ...(e.layout && i === n - 1 ? { [H.layout]: e.layout } : {}), // (a NATS header absent reads as '')
      ...(sig !== undefined && i === n - 1 ? { [H.sig]: sig } : {}),
    },
    payload: e.bytes.subarray(i * maxPart, (i + 1) * maxPart),
    msgId: `${e.id}.${i + 1}`,
  }));
}

/** One batch as parts of at most `maxPart` payload bytes each (encodeBatchSteps at once, then batchParts). */
export function encodeBatch(batch: RowBatch, term: number, maxPart: number, sign?: LogSign): WireMessage[] {
  return batchParts(runSteps(encodeBatchSteps(batch, term)), maxPart, sign);
}

const Head = z.object({ id: z.number().int().nonnegative(), hash: z.string().regex(/^[0-9a-f]{64}$/) });
/** A LogPosition's shape (also a log snapshot's head: replication-snapshot-text.ts). */
export const PositionSchema = z.object({
  chains: z.object(
    Object.fromEntries(CHAIN_NAMES.map((c) => [c, Head])) as Record<(typeof CHAIN_NAMES)[number], typeof Head>,
  ),
  checkpointSeq: z.number().int().nonnegative(),
});
const Cell = z.union([z.string(), z.number(), z.null()]);
const BatchSchema = z.object({
  from: PositionSchema,
  to: PositionSchema,
  rows: z.object(
    Object.fromEntries(CHAIN_NAMES.map((c) => [c, z.array(z.array(Cell))])) as Record<
      (typeof CHAIN_NAMES)[number],
      z.ZodArray<z.ZodArray<typeof Cell>>
    >,
  ),
  checkpoints: z.array(z.array(Cell)),
  resumePoints: z.array(z.array(Cell)),
  checkpointPieces: z.array(z.array(Cell)).optional(),
});
const PieceRow = z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative(), z.string()]);

/**
 * Parses and shape-checks a batch (a message's joined parts, a snapshot's body); throws a one-line
 * Error when it is not one. With a layout (batchJson) the part before the checkpoint pieces and
 * each piece row are parsed alone, so no string longer than one piece is made.
 */
export function parseBatch(bytes: Uint8Array, what: string, layout?: string): RowBatch {
  return runSteps(parseBatchSteps([bytes], what, layout));
}

/**
 * parseBatch of a payload given as its parts (never joined where a layout says where the pieces
 * lie: a piece across two parts is joined alone), a checkpoint piece a step: a first checkpoint's
 * batch at 10,000 services of 250 endpoints (~0.5 GB) held a follower's thread ~3 s in one call.
 */
export function* parseBatchSteps(
  parts: readonly Uint8Array[],
  what: string,
  layout?: string,
): Generator<void, RowBatch, void> {
  const bytes = new PartedBytes(parts);
  const json = (start: number, end: number, tail = ''): unknown => {
    try {
      return JSON.parse(bytes.text(start, end) + tail);
    } catch {
      throw new Error(`${what} is not JSON`);
    }
  };
  const check = <T>(schema: z.ZodType<T>, value: unknown): T => {
    const r = schema.safeParse(value);
    if (!r.success)
      throw new Error(
        `${what} is malformed: ${r.error.issues[0]?.message ?? ''} at ${r.error.issues[0]?.path.join('.') ?? ''}`,
      );
    return r.data;
  };
  if (layout === undefined) return check(BatchSchema, json(0, bytes.length)) as RowBatch;
  const m = /^(\d+):(\d+(?:,\d+)*)$/.exec(layout);
  const head = Number(m?.[1]);
  const lens = m?.[2]?.split(',').map(Number) ?? [];
  const total = head + PIECES_KEY.length + lens.reduce((a, n) => a + n + 1, 0) + 1; // ',' or ']' after each, then '}'
  if (!m || total !== bytes.length || !bytes.slice(head, head + PIECES_KEY.length).equals(PIECES_KEY))
    throw new Error(`${what}: its layout header ${JSON.stringify(layout)} does not fit its ${bytes.length} bytes`);
  const batch = check(BatchSchema, json(0, head, '}'));
  yield;
  const pieces: RawRow[] = [];
  let at = head + PIECES_KEY.length;
  for (const n of lens) {
    pieces.push(check(PieceRow, json(at, at + n)));
    at += n + 1;
    yield;
  }
  return { ...(batch as RowBatch), checkpointPieces: pieces };
}

/** A payload held as the parts it came in, read by byte range: only a range across parts is copied. */
class PartedBytes {
  private readonly parts: Buffer[];
  /** starts[i]: where parts[i] starts in the payload; the last entry is its length. */
  private readonly starts: number[] = [0];

  constructor(parts: readonly Uint8Array[]) {
    this.parts = parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
    for (const p of this.parts) this.starts.push(this.starts.at(-1)! + p.length);
  }

  get length(): number {
    return this.starts.at(-1)!;
  }

  /** Bytes [start, end): a view into one part, or a copy of the range where it spans several. */
  slice(start: number, end: number): Buffer {
    if (end <= start) return Buffer.alloc(0);
    let i = this.partAt(start);
    const first = this.parts[i]!;
    const off = start - this.starts[i]!;
    if (end <= this.starts[i + 1]!) return first.subarray(off, off + (end - start));
    const out = Buffer.allocUnsafe(end - start);
    let n = first.copy(out, 0, off);
    while (n < out.length) n += this.parts[++i]!.copy(out, n, 0, out.length - n);
    return out;
  }

  text(start: number, end: number): string {
    return this.slice(start, end).toString('utf8');
  }

  /** The part holding byte `at` (binary search over the starts). */
  private partAt(at: number): number {
    let lo = 0;
    let hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

export type ReadItem =
  | { readonly kind: 'batch'; readonly seq: number; readonly term: number; readonly batch: RowBatch }
  | { readonly kind: 'term'; readonly seq: number; readonly term: number }
  /** A message that is not (a complete part of) ours, or an incomplete batch given up: applied as nothing. */
  | {
      readonly kind: 'skip';
      readonly seq: number;
      readonly why: string;
      /** Whole and well-formed, but not signed by the group's key (LogCheck). */
      readonly refused?: true;
    };

/**
 * Reads the stream in order: joins parts, checks shapes, and gives up an incomplete batch (its
 * writer died or was fenced mid-batch) when anything else follows it. A batch is returned only
 * when whole, so a replica never applies part of a write batch.
 */
export class LogStreamReader {
  /** `check`: refuses what the group's leader did not sign (undefined: nothing is checked). */
  constructor(private readonly check?: LogCheck) {}

  /** The batch being read: its parts so far, and the digest of them taken as they came (never joined to be hashed). */
  private parts:
    | { id: string; n: number; term: number; chunks: Uint8Array[]; hash: Hash; firstSeq: number }
    | undefined;

  /** Items this message completes (an abandoned batch is reported as a skip before it). */
  read(seq: number, header: (k: string) => string | undefined, data: Uint8Array): ReadItem[] {
    return runSteps(this.readSteps(seq, header, data));
  }

  /**
   * read() with a batch's checkpoint pieces parsed a step each (parseBatchSteps): a follower runs
   * it in slices. Messages must be read one at a time (the next once this one's steps are done).
   */
  *readSteps(
    seq: number,
    header: (k: string) => string | undefined,
    data: Uint8Array,
  ): Generator<void, ReadItem[], void> {
    const out: ReadItem[] = [];
    const kind = header(H.kind);
    const term = Number(header(H.term));
    const abandon = (why: string) => {
      if (this.parts)
        out.push({
          kind: 'skip',
          seq: this.parts.firstSeq,
          why: `batch ${this.parts.id} from seq ${this.parts.firstSeq} ${why}`,
        });
      this.parts = undefined;
    };
    if (kind === 'term') {
      abandon('left incomplete before a term marker');
      const refused =
        Number.isSafeInteger(term) && term >= 1
          ? this.check?.({ kind: 'term', term, rows: header(H.rows) ?? '', payload: data, seq }, header(H.sig))
          : undefined;
      if (!Number.isSafeInteger(term) || term < 1)
        out.push({ kind: 'skip', seq, why: `term marker with bad term ${JSON.stringify(header(H.term))}` });
      else if (refused) out.push({ kind: 'skip', seq, why: `term marker ${term} refused: ${refused}`, refused: true });
      else out.push({ kind: 'term', seq, term });
      return out;
    }
    const id = header(H.batch);
    const m = /^(\d+)\/(\d+)$/.exec(header(H.part) ?? '');
    if (kind !== 'rows' || !id || !m || !Number.isSafeInteger(term) || term < 1) {
      out.push({ kind: 'skip', seq, why: 'not a log message (headers missing or malformed)' });
      return out;
    }
    const i = Number(m[1]);
    const n = Number(m[2]);
    if (i === 1) {
      abandon('left incomplete before another batch');
      this.parts = { id, n, term, chunks: [], hash: createHash('sha256'), firstSeq: seq };
    } else if (!this.parts || this.parts.id !== id || this.parts.chunks.length !== i - 1 || this.parts.n !== n) {
      abandon('interrupted');
      out.push({ kind: 'skip', seq, why: `part ${i}/${n} of batch ${id} without its predecessors` });
      return out;
    }
    this.parts!.chunks.push(data);
    this.parts!.hash.update(data);
    if (i < n) return out;
    const { chunks, hash, firstSeq } = this.parts!;
    this.parts = undefined;
    const refused = this.check?.(
      { kind: 'rows', term, rows: header(H.rows) ?? '', payloadDigest: hash.digest('hex'), seq: firstSeq },
      header(H.sig),
    );
    if (refused) {
      out.push({
        kind: 'skip',
        seq,
        why: `batch ${id} from seq ${firstSeq} refused: ${refused} (not applied)`,
        refused: true,
      });
      return out;
    }
    try {
      const batch = yield* parseBatchSteps(chunks, `batch ${id}`, header(H.layout) || undefined);
      out.push({ kind: 'batch', seq, term, batch });
    } catch (e) {
      out.push({ kind: 'skip', seq, why: (e as Error).message });
    }
    return out;
  }

  /** Whether a batch is half read (its remaining parts not yet seen). */
  get midBatch(): boolean {
    return this.parts !== undefined;
  }
}
