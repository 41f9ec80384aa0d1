/**
 * Splits one JSON document, fed as byte chunks, into its values without ever holding the whole
 * document: the containers `descend` names are walked; every other value (an array element or
 * an object member inside them) is handed over whole, as its own bytes, as soon as it ends. A
 * checkpoint of 10,000 services × 250 endpoints is ~400 MB of JSON, close to V8's longest string
 * (2^29 − 24 characters); read this way, the largest thing ever decoded is one service entry.
 *
 * It finds value boundaries only (strings, escapes, nesting); whether a value is valid JSON is
 * the caller's JSON.parse of its bytes. Structure it cannot follow (a missing colon, a stray
 * byte, a truncated document) throws a SyntaxError naming the byte offset.
 *
 * Why not a streaming JSON library: those tokenise and build every value in JavaScript; here the
 * values are whole service entries, and V8's native JSON.parse of each entry's bytes is what is
 * fast, so only the boundaries are found by hand.
 */
export type JsonPath = readonly string[];

export interface JsonValueSplitterOptions {
  /** Whether the container at `path` is walked rather than handed over whole. */
  readonly descend: (path: JsonPath, kind: 'object' | 'array') => boolean;
  /**
   * A value handed over: `path` is its object member's path (key last) or, with `element`, the
   * path of the array holding it. `bytes` is valid only during the call (it may view a chunk).
   */
  readonly onValue: (path: JsonPath, element: boolean, bytes: Uint8Array) => void;
  /** A value longer than this many bytes is refused (default: 256 MiB). */
  readonly maxValueBytes?: number;
}

type Frame = {
  readonly kind: 'object' | 'array';
  readonly path: JsonPath;
  /** object: key|colon|value|next ; array: value|next ('first' states also accept the close). */
  state: 'firstKey' | 'key' | 'colon' | 'value' | 'next' | 'firstValue';
  key: string;
};

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export class JsonValueSplitter {
  private readonly stack: Frame[] = [];
  private rootDone = false;
  /** The value being captured: its kind, nesting, string state and the bytes seen so far. */
  private cap:
    | {
        kind: 'string' | 'container' | 'scalar' | 'key';
        depth: number;
        inString: boolean;
        escaped: boolean;
        parts: Uint8Array[];
        size: number;
        path: JsonPath;
        element: boolean;
      }
    | undefined;
  private offset = 0;
  private readonly maxValueBytes: number;
  private readonly keyDecoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly opts: JsonValueSplitterOptions) {
    this.maxValueBytes = opts.maxValueBytes ?? 256 * 1024 * 1024;
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.cap) {
        i = this.continueCapture(chunk, i);
        continue;
      }
      const c = chunk[i]!;
      if (isSpace(c)) {
        i++;
        continue;
      }
      i = this.structural(chunk, i, c);
    }
    this.offset += n;
  }

  /** Ends the document: throws when it is incomplete. */
  end(): void {
    if (this.cap?.kind === 'scalar') this.finishCapture();
    if (this.cap || this.stack.length > 0 || !this.rootDone)
      throw new SyntaxError(`JSON ends early (at byte ${this.offset})`);
  }

  private fail(at: number, what: string): never {
    throw new SyntaxError(`JSON: ${what} at byte ${this.offset + at}`);
  }

  /** Handles one non-space byte outside any captured value; returns the next index. */
  private structural(b: Uint8Array, i: number, c: number): number {
    const top = this.stack[this.stack.length - 1];
    if (!top) {
      if (this.rootDone) this.fail(i, 'content after the document');
      return this.startValue(b, i, c, [], false);
    }
    switch (top.state) {
      case 'firstKey':
      case 'key':
        if (c === CLOSE_OBJ && top.state === 'firstKey') return this.close(i);
        if (c !== QUOTE) this.fail(i, 'expected a key');
        this.cap = {
          kind: 'key',
          depth: 0,
          inString: true,
          escaped: false,
          parts: [],
          size: 0,
          path: [],
          element: false,
        };
        return this.captureFrom(b, i, i + 1);
      case 'colon':
        if (c !== COLON) this.fail(i, 'expected a colon');
        top.state = 'value';
        return i + 1;
      case 'firstValue':
        if (c === CLOSE_ARR) return this.close(i);
        top.state = 'next';
        return this.startValue(b, i, c, top.path, true);
      case 'value':
        top.state = 'next';
        return top.kind === 'object'
          ? this.startValue(b, i, c, [...top.path, top.key], false)
          : this.startValue(b, i, c, top.path, true);
      case 'next':
        if (c === COMMA) {
          top.state = top.kind === 'object' ? 'key' : 'value';
          return i + 1;
        }
        if (c === (top.kind === 'object' ? CLOSE_OBJ : CLOSE_ARR)) return this.close(i);
        return this.fail(i, 'expected a comma or the end of the container');
    }
  }

  private close(i: number): number {
    this.stack.pop();
    if (this.stack.length === 0) this.rootDone = true;
    return i + 1;
  }

  private startValue(b: Uint8Array, i: number, c: number, path: JsonPath, element: boolean): number {
    // array elements are always handed over whole: only containers at a member path are walked
    if (
      (c === OPEN_OBJ || c === OPEN_ARR) &&
      !element &&
      this.opts.descend(path, c === OPEN_OBJ ? 'object' : 'array')
    ) {
      this.stack.push({
        kind: c === OPEN_OBJ ? 'object' : 'array',
        path,
        state: c === OPEN_OBJ ? 'firstKey' : 'firstValue',
        key: '',
      });
      return i + 1;
    }
    const kind = c === QUOTE ? 'string' : c === OPEN_OBJ || c === OPEN_ARR ? 'container' : 'scalar';
    if (kind === 'scalar' && (c === CLOSE_OBJ || c === CLOSE_ARR || c === COMMA || c === COLON))
      this.fail(i, 'expected a value');
    this.cap = {
      kind,
      depth: kind === 'container' ? 1 : 0,
      inString: kind === 'string',
      escaped: false,
      parts: [],
      size: 0,
      path,
      element,
    };
    if (this.stack.length === 0) this.rootDone = true;
    return this.captureFrom(b, i, i + 1);
  }

  /** Scans a captured value from `from` (its bytes start at `start`) to its end or the chunk's. */
  private captureFrom(b: Uint8Array, start: number, from: number): number {
    const cap = this.cap!;
    const n = b.length;
    let i = from;
    let depth = cap.depth;
    let inString = cap.inString;
    let escaped = cap.escaped;
    let done = false;
    if (cap.kind === 'scalar') {
      for (; i < n; i++) {
        const c = b[i]!;
        if (c === COMMA || c === CLOSE_OBJ || c === CLOSE_ARR || isSpace(c)) {
          done = true;
          break;
        }
      }
    } else {
      for (; i < n; i++) {
        const c = b[i]!;
        if (inString) {
          if (escaped) escaped = false;
          else if (c === BACKSLASH) escaped = true;
          else if (c === QUOTE) {
            inString = false;
            if (depth === 0) {
              i++;
              done = true;
              break;
            }
          }
        } else if (c === QUOTE) inString = true;
        else if (c === OPEN_OBJ || c === OPEN_ARR) depth++;
        else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
          if (--depth === 0) {
            i++;
            done = true;
            break;
          }
        }
      }
    }
    cap.depth = depth;
    cap.inString = inString;
    cap.escaped = escaped;
    const piece = b.subarray(start, i);
    cap.size += piece.length;
    if (cap.size > this.maxValueBytes) this.fail(i, `a value over ${this.maxValueBytes} bytes`);
    // a value inside one chunk is handed over as a view of it; one spanning chunks is copied
    if (!done || cap.parts.length > 0) cap.parts.push(done ? piece : piece.slice());
    if (done) this.finishCapture(cap.parts.length > 0 ? undefined : piece);
    return i;
  }

  private continueCapture(b: Uint8Array, i: number): number {
    return this.captureFrom(b, i, i);
  }

  private finishCapture(whole?: Uint8Array): void {
    const cap = this.cap!;
    this.cap = undefined;
    const bytes = whole ?? concat(cap.parts, cap.size);
    if (cap.kind === 'key') {
      const top = this.stack[this.stack.length - 1]!;
      try {
        top.key = JSON.parse(this.keyDecoder.decode(bytes)) as string;
      } catch {
        this.fail(0, 'a key that is not a JSON string');
      }
      top.state = 'colon';
      return;
    }
    this.opts.onValue(cap.path, cap.element, bytes);
  }
}

function concat(parts: readonly Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
