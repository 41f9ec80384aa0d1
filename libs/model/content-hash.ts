import crypto, { createHash } from 'node:crypto';

/**
 * Canonical JSON: object keys sorted by code unit, no insignificant whitespace, arrays kept in
 * order. Two equal values always serialize to the same bytes, whatever order their keys were
 * built in, which is what makes content hashes comparable across processes and replays.
 * `undefined` members are omitted (as JSON.stringify does); non-finite numbers are refused
 * because they have no JSON form and would silently turn into null.
 */
export function canonicalJson(value: unknown, known?: KnownTexts): string {
  if (known) return writeKnown(value, known);
  return canonicalJsonOf(value).text;
}

/**
 * canonicalJson(value), and whether that text is also exactly JSON.stringify(value)'s. A caller
 * that keeps the text (see KnownTexts) can then hand it to a writer of plain JSON too, such as
 * the bus's checkpoint encoder, instead of serialising the value again.
 */
export function canonicalJsonOf(value: unknown): { readonly text: string; readonly stringified: boolean } {
  // When every object's keys already come in code-unit order (the planner builds its entries so,
  // and values parsed from canonical text keep it), JSON.stringify writes exactly this text,
  // natively: about twice as fast as the loop below, with far less garbage.
  return inCanonicalOrder(value)
    ? { text: JSON.stringify(value), stringified: true }
    : { text: write(value), stringified: false };
}

/**
 * True when JSON.stringify(value) is its canonical text: plain objects and arrays whose own keys
 * (in the order JSON.stringify takes them) are in code-unit order, and nothing JSON.stringify
 * would write differently from write() (non-finite numbers, functions, symbols, toJSON, class
 * instances such as Date or Map), which takes the slow path and its errors instead.
 */
function inCanonicalOrder(value: unknown): boolean {
  if (value === null) return true;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const v: unknown = value[i];
          if (v !== undefined && !inCanonicalOrder(v)) return false;
        }
        return true;
      }
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      const obj = value as Record<string, unknown>;
      let prev: string | undefined;
      for (const k in obj) {
        if (prev !== undefined && !(prev < k)) return false;
        prev = k;
        const v = obj[k];
        if (v !== undefined && !inCanonicalOrder(v)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/**
 * Canonical texts already computed for some (frozen) objects: `canonicalJson(v, known)` splices
 * them in instead of serialising those objects again (a version's delta is made of entries that
 * were just serialised to be hashed). The planner keeps only texts that are also the objects'
 * JSON.stringify text (canonicalJsonOf's `stringified`), so the bus's checkpoint encoder reuses
 * the same map.
 */
export interface KnownTexts {
  get(o: object): string | undefined;
}

const quotedKeys = new Map<string, string>();
function quoteKey(k: string): string {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    q = JSON.stringify(k) + ':';
    if (quotedKeys.size < 10_000) quotedKeys.set(k, q); // object keys are few; bound the cache anyway
  }
  return q;
}

// Written with plain loops and string appends: this runs over every entry of every version, and
// the map/filter/join form allocated enough garbage to dominate a 10k-service build.
function write(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`canonicalJson: non-finite number ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const v: unknown = value[i];
          out += v === undefined ? 'null' : write(v);
        }
        return out + ']';
      }
      if (value instanceof Map) throw new Error('canonicalJson: Map is not JSON; convert it first');
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj);
      keys.sort(); // default sort compares UTF-16 code units, which is the canonical order here
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = obj[k];
        if (v === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += quoteKey(k) + write(v);
      }
      return out + '}';
    }
    default:
      throw new Error(`canonicalJson: unsupported ${typeof value}`);
  }
}

/** write() for values whose objects may have a known text (checked for every object and array). */
function writeKnown(value: unknown, known: KnownTexts): string {
  if (value === null || typeof value !== 'object') return write(value);
  const text = known.get(value);
  if (text !== undefined) return text;
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v: unknown = value[i];
      out += v === undefined ? 'null' : writeKnown(v, known);
    }
    return out + ']';
  }
  if (value instanceof Map) throw new Error('canonicalJson: Map is not JSON; convert it first');
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  keys.sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += quoteKey(k) + writeKnown(v, known);
  }
  return out + '}';
}

/**
 * crypto.hash (Node ≥ 20.12) digests in one native call without a Hash object: per small input
 * (an entry, a log row) about half the cost of createHash().update().digest(). Same digest.
 */
const oneShot = (crypto as { hash?: typeof crypto.hash }).hash;

export function sha256Hex(data: string | Uint8Array): string {
  return oneShot ? oneShot('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex');
}

/** sha256Hex's digest as its 32 bytes. */
export function sha256Bytes(data: string | Uint8Array): Buffer {
  return oneShot ? oneShot('sha256', data, 'buffer') : createHash('sha256').update(data).digest();
}

/** SHA-256 of the canonical JSON of a value. */
export function contentHash(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}

/**
 * Units (array elements and object members, counted through every level) serialised per step of
 * canonicalJsonHashSteps: about 1 000 endpoints of a service entry, ~1–2 ms here.
 */
const UNITS_PER_STEP = 10_000;

/** What canonicalJsonHashSteps returns: canonicalJsonOf(value) and sha256Hex of its text. */
export interface HashedCanonicalJson {
  readonly text: string;
  readonly stringified: boolean;
  readonly hash: string;
}

/**
 * canonicalJsonOf(value) with sha256Hex of its text, in steps of about UNITS_PER_STEP units, for a
 * caller that must not block for one large value (a service of 100 000 endpoints: ~12 MB of text,
 * serialised and hashed at once held the planner's thread for all of it, probe10 H9). Canonical text
 * is made of its members' texts, so the value is cut where it is large: the members of a large
 * object, runs of a large array's small elements (each run one canonicalJsonOf call); the hash
 * takes the text piece by piece (pieces end between JSON tokens, so their UTF-8 is the whole's).
 * Same text, same `stringified`, same hash as the one-call forms: test/libs/model/content-hash-steps.test.ts.
 */
export function* canonicalJsonHashSteps(value: unknown): Generator<void, HashedCanonicalJson, void> {
  if (unitsUpTo(value, UNITS_PER_STEP) < UNITS_PER_STEP) {
    const r = canonicalJsonOf(value); // one step: the one-call forms (a one-shot digest)
    return { text: r.text, stringified: r.stringified, hash: sha256Hex(r.text) };
  }
  const h = createHash('sha256');
  let text = '';
  const emit = (piece: string) => {
    text += piece;
    h.update(piece, 'utf8');
  };
  let units = 0; // written since the last step ended
  const due = (n: number) => {
    units += n;
    if (units < UNITS_PER_STEP) return false;
    units = 0;
    return true;
  };
  const stringified = yield* writeSteps(value, emit, due);
  return { text, stringified, hash: h.digest('hex') };
}

/** Writes value's canonical text through `emit`, yielding when `due` (given the units just written) says so. */
function* writeSteps(
  value: unknown,
  emit: (piece: string) => void,
  due: (units: number) => boolean,
): Generator<void, boolean, void> {
  const size = unitsUpTo(value, UNITS_PER_STEP);
  if (size < UNITS_PER_STEP || !isPlainContainer(value)) {
    const r = canonicalJsonOf(value);
    emit(r.text);
    if (due(size)) yield;
    return r.stringified;
  }
  let stringified = true;
  if (Array.isArray(value)) {
    emit('[');
    let run: unknown[] = [];
    let runUnits = 0;
    let first = true;
    const flush = () => {
      if (run.length === 0) return;
      const r = canonicalJsonOf(run); // '[a,b]': its elements' texts joined as the whole array's are
      stringified &&= r.stringified;
      emit((first ? '' : ',') + r.text.slice(1, -1));
      first = false;
      run = [];
    };
    for (const v of value) {
      const n = unitsUpTo(v, UNITS_PER_STEP);
      if (n < UNITS_PER_STEP) {
        run.push(v);
        runUnits += n;
        if (runUnits < UNITS_PER_STEP) continue;
        flush();
        const written = runUnits;
        runUnits = 0;
        if (due(written)) yield;
        continue;
      }
      flush();
      if (due(runUnits)) yield;
      runUnits = 0;
      if (!first) emit(',');
      first = false;
      stringified = (yield* writeSteps(v, emit, due)) && stringified;
    }
    flush();
    if (due(runUnits)) yield;
    emit(']');
    return stringified;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]! < keys[i]!)) stringified = false;
  keys.sort();
  emit('{');
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    emit((first ? '' : ',') + quoteKey(k));
    first = false;
    stringified = (yield* writeSteps(v, emit, due)) && stringified;
  }
  emit('}');
  return stringified;
}

/** Arrays and plain objects: what canonicalJsonOf's two paths write member by member alike. */
function isPlainContainer(v: unknown): v is object {
  if (v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return true;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** 1 + the array elements and object members under value, counted up to `limit` (then limit). */
function unitsUpTo(value: unknown, limit: number): number {
  if (value === null || typeof value !== 'object') return 1;
  let n = 1;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length && n < limit; i++) n += unitsUpTo(value[i], limit - n);
  } else
    for (const k in value as Record<string, unknown>) {
      n += unitsUpTo((value as Record<string, unknown>)[k], limit - n);
      if (n >= limit) break;
    }
  return Math.min(n, limit);
}
