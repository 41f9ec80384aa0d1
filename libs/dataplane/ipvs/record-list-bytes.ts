/**
 * The bytes of one ownership-record list as the state file holds it (`JSON.stringify(record,
 * null, 1)`: one level down, each string on its own line), kept per list and, for a list that
 * `edited` made from another, spliced from that list's bytes: a service that comes or goes
 * changes two lists of 10k+ strings by one each, and serialising both again was most of its
 * JavaScript at 10k services (~3.5 ms each on the host). Lists are never changed in place, so a
 * list's bytes, once made, stay right.
 */

/** One step of an edit, on the list as it stood then: an insert at `at`, or (no `insert`) a removal. */
export interface ListStep {
  readonly at: number;
  readonly insert?: string;
}

interface Derivation {
  readonly base: readonly string[];
  readonly steps: readonly ListStep[];
}

interface Bytes {
  readonly bytes: Buffer;
  /** Byte offset of each element's line (the '\n' that starts it), made when first needed. */
  offsets: Uint32Array | undefined;
}

const made = new WeakMap<readonly string[], Bytes>();
const derivations = new WeakMap<readonly string[], Derivation>();

/** Steps spliced at most; more, and the list is serialised. */
export const MAX_STEPS = 16;

const OPEN = Buffer.from('[');
const CLOSE = Buffer.from('\n ]');
const COMMA = Buffer.from(',');
const EMPTY = Buffer.from('[]');

/**
 * Notes that `out` is `base` after `steps`. A base whose bytes were never made is replaced by its
 * own base (steps joined), so a chain of unsaved edits never keeps more than one older list alive;
 * past MAX_STEPS nothing is noted.
 */
export function noteEdited(out: readonly string[], base: readonly string[], steps: readonly ListStep[]): void {
  const d = made.has(base) ? undefined : derivations.get(base);
  const joined = d ? [...d.steps, ...steps] : steps;
  if (joined.length > MAX_STEPS) return; // serialised when saved (spliced: more copying)
  derivations.set(out, { base: d ? d.base : base, steps: joined });
}

/** The list's bytes: kept, spliced from the list it was edited from, or serialised. */
export function listBytes(list: readonly string[]): Buffer {
  const have = made.get(list);
  if (have) return have.bytes;
  const d = derivations.get(list);
  const base = d && made.get(d.base);
  const bytes = (d && base && spliced(d.base, base, d.steps)) || {
    bytes: Buffer.from(indented(list)),
    offsets: undefined,
  };
  made.set(list, bytes);
  derivations.delete(list); // its base may go now
  return bytes.bytes;
}

/** A value as JSON.stringify(value, null, 1) writes it one level down. */
export const indented = (value: unknown) => JSON.stringify(value, null, 1).replaceAll('\n', '\n ');

/**
 * `base`'s bytes after `steps`, each an O(bytes) copy (no string serialised but the inserted
 * ones). Undefined for more than MAX_STEPS steps, or where the base's bytes do not have one line
 * per element (not made here).
 */
function spliced(base: readonly string[], from: Bytes, steps: readonly ListStep[]): Bytes | undefined {
  // each step copies the whole list's bytes: past a few, serialising it once is cheaper (a change
  // of hundreds of services would copy them hundreds of times)
  if (steps.length > MAX_STEPS) return undefined;
  let offsets = offsetsOf(base, from);
  if (!offsets) return undefined;
  let bytes = from.bytes;
  let n = base.length;
  for (const s of steps) {
    if (s.insert !== undefined) {
      const piece = Buffer.from(`\n  ${JSON.stringify(s.insert)}`);
      if (n === 0) {
        bytes = Buffer.concat([OPEN, piece, CLOSE]);
        offsets = Uint32Array.of(OPEN.length);
      } else if (s.at < n) {
        // before element `at`: the piece and its comma
        const at = offsets[s.at]!;
        bytes = Buffer.concat([bytes.subarray(0, at), piece, COMMA, bytes.subarray(at)]);
        offsets = withInsert(offsets, s.at, at, piece.length + COMMA.length);
      } else {
        // after the last element: a comma and the piece
        const end = bytes.length - CLOSE.length;
        bytes = Buffer.concat([bytes.subarray(0, end), COMMA, piece, bytes.subarray(end)]);
        offsets = withInsert(offsets, n, end + COMMA.length, 0);
      }
      n += 1;
    } else {
      if (n === 1) {
        bytes = EMPTY;
        offsets = new Uint32Array(0);
      } else if (s.at < n - 1) {
        // element `at` and the comma after it
        const start = offsets[s.at]!;
        const len = offsets[s.at + 1]! - start;
        bytes = Buffer.concat([bytes.subarray(0, start), bytes.subarray(start + len)]);
        offsets = withRemove(offsets, s.at, len);
      } else {
        // the last element and the comma before it
        const start = offsets[s.at]! - COMMA.length;
        bytes = Buffer.concat([bytes.subarray(0, start), bytes.subarray(bytes.length - CLOSE.length)]);
        offsets = withRemove(offsets, s.at, 0);
      }
      n -= 1;
    }
  }
  return { bytes, offsets };
}

/** Where each element's line starts in `b`'s bytes (every '\n' but the closing one; a string's own newlines are escaped). */
function offsetsOf(list: readonly string[], b: Bytes): Uint32Array | undefined {
  if (b.offsets) return b.offsets;
  const offsets = new Uint32Array(list.length);
  let at = 0;
  for (let i = 0; i < list.length; i++) {
    at = b.bytes.indexOf(0x0a, at);
    if (at < 0) return undefined;
    offsets[i] = at++;
  }
  if (list.length > 0 && b.bytes.indexOf(0x0a, at) !== b.bytes.length - CLOSE.length) return undefined;
  b.offsets = offsets;
  return offsets;
}

/** `offsets` with an element's offset `value` put at index i, those after it moved by `shift`. */
function withInsert(offsets: Uint32Array, i: number, value: number, shift: number): Uint32Array {
  const out = new Uint32Array(offsets.length + 1);
  out.set(offsets.subarray(0, i));
  out[i] = value;
  for (let j = i; j < offsets.length; j++) out[j + 1] = offsets[j]! + shift;
  return out;
}

/** `offsets` without index i, those after it moved back by `shift`. */
function withRemove(offsets: Uint32Array, i: number, shift: number): Uint32Array {
  const out = new Uint32Array(offsets.length - 1);
  out.set(offsets.subarray(0, i));
  for (let j = i + 1; j < offsets.length; j++) out[j - 1] = offsets[j]! - shift;
  return out;
}
