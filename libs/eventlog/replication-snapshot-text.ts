import { constants } from 'node:buffer';
import { z } from 'zod';
import type { LogPosition, RawRow, RowBatch } from './log-rows.ts';
import type { SliceSection } from './log-row-slices.ts';
import { PositionSchema } from './replication-codec.ts';
import { CHAIN_NAMES, type ChainName } from './row-chain.ts';

/**
 * The text of a log snapshot (pure: no I/O). It is the JSON of the snapshot's RowBatch, as before,
 * laid out one row per line:
 *
 *   {"from":…,"to":…,"resumePoints":[…]
 *   ,"rows":{
 *   "events":[
 *   [row]
 *   ,[row]
 *   ]
 *   ,"versions":[
 *   …
 *   }
 *   ,"checkpoints":[
 *   …
 *   ]
 *   }
 *
 * JSON.stringify never writes a raw newline (it escapes those inside strings), so the newlines are
 * exactly these. A writer makes it slice by slice and a reader parses it line by line, so neither
 * ever holds one string of the whole: the older form (one JSON text, parsed as one string) cannot
 * be read past V8's longest string, ~537 MB (review4 G4). Being the same JSON, it stays readable by
 * a planner of the release before, which parses it whole (as far as that limit allows), so a group
 * upgraded one planner at a time keeps bootstrapping replicas from the newest snapshot.
 */
export const SNAPSHOT_TEXT_FORMAT = 'lines';

const CHAINS = new Set<string>(CHAIN_NAMES);

/** Makes the text in pieces: head() once, then rows() for each slice in order, then end(). */
export class SnapshotTextWriter {
  private section: SliceSection | undefined;
  private inRows = false;
  private rowsDone = false;
  private first = true;

  head(from: LogPosition, to: LogPosition, resumePoints: readonly RawRow[]): string {
    return `{"from":${JSON.stringify(from)},"to":${JSON.stringify(to)},"resumePoints":${JSON.stringify(resumePoints)}\n`;
  }

  rows(section: SliceSection, rows: readonly RawRow[]): string {
    let out = '';
    if (section !== this.section) {
      if (this.section !== undefined) out += ']\n';
      const chain = CHAINS.has(section);
      if (chain && this.rowsDone) throw new Error(`snapshot text: ${section} rows after the checkpoints`);
      let comma = ',';
      if (chain && !this.inRows) {
        out += ',"rows":{\n';
        this.inRows = true;
        comma = '';
      } else if (!chain && this.inRows) {
        out += '}\n';
        this.inRows = false;
        this.rowsDone = true;
      }
      out += `${comma}${JSON.stringify(section)}:[\n`;
      this.section = section;
      this.first = true;
    }
    for (const r of rows) {
      out += `${this.first ? '' : ','}${JSON.stringify(r)}\n`;
      this.first = false;
    }
    return out;
  }

  end(): string {
    return `${this.section === undefined ? '' : ']\n'}${this.inRows ? '}\n' : ''}}\n`;
  }
}

/** Cuts bytes into lines (without the newline), refusing a line longer than `maxLineBytes`. */
export class LineSplitter {
  private held: Buffer[] = [];
  private heldBytes = 0;

  /**
   * `maxLineBytes`: the longest line made into a string (default: V8's longest string; a line's
   * UTF-8 bytes are at least its characters, so any line within it can be made).
   */
  constructor(
    private readonly what: string,
    private readonly maxLineBytes = constants.MAX_STRING_LENGTH,
  ) {}

  *push(chunk: Uint8Array): Generator<string> {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let at = 0;
    for (let nl = buf.indexOf(10, at); nl >= 0; nl = buf.indexOf(10, at)) {
      this.check(this.heldBytes + nl - at);
      if (this.held.length === 0) yield buf.toString('utf8', at, nl);
      else {
        this.held.push(buf.subarray(at, nl));
        const line = Buffer.concat(this.held).toString('utf8');
        this.held = [];
        this.heldBytes = 0;
        yield line;
      }
      at = nl + 1;
    }
    if (at < buf.length) {
      this.check(this.heldBytes + buf.length - at);
      this.held.push(buf.subarray(at));
      this.heldBytes += buf.length - at;
    }
  }

  /** The text after the last newline ('' when the bytes ended with one). */
  end(): string {
    const rest = Buffer.concat(this.held).toString('utf8');
    this.held = [];
    this.heldBytes = 0;
    return rest;
  }

  private check(bytes: number): void {
    if (bytes > this.maxLineBytes)
      throw new Error(`${this.what}: a line longer than ${this.maxLineBytes} bytes (more than one string can hold)`);
  }
}

const Cell = z.union([z.string(), z.number(), z.null()]);
const HeadSchema = z.object({
  from: PositionSchema,
  to: PositionSchema,
  resumePoints: z.array(z.array(Cell)),
});
const PieceRow = z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative(), z.string()]);
const KEY = /^(,?)"([A-Za-z_]+)":\[$/;

type State = 'head' | 'top' | 'rows' | 'section' | 'done';

/** Parses the text line by line into the snapshot's RowBatch; throws a one-line Error naming the line. */
export class SnapshotTextReader {
  private state: State = 'head';
  private n = 0;
  private head: z.infer<typeof HeadSchema> | undefined;
  private readonly chains = new Map<ChainName, RawRow[]>();
  private checkpoints: RawRow[] | undefined;
  private pieces: RawRow[] | undefined;
  private rowsSeen = false;
  /** The section being read and where it returns to. */
  private into: { rows: RawRow[]; parent: 'top' | 'rows'; piece: boolean } | undefined;

  constructor(private readonly what: string) {}

  line(text: string): void {
    this.n++;
    switch (this.state) {
      case 'head': {
        if (!text.startsWith('{"from":')) this.fail('it does not start with the head');
        const r = HeadSchema.safeParse(this.json(`${text}}`));
        if (!r.success)
          this.fail(`bad head: ${r.error.issues[0]?.message ?? ''} at ${r.error.issues[0]?.path.join('.')}`);
        this.head = r.data;
        this.state = 'top';
        return;
      }
      case 'top': {
        if (text === ',"rows":{' && !this.rowsSeen) {
          this.rowsSeen = true;
          this.state = 'rows';
          return;
        }
        if (text === '}') {
          if (!this.rowsSeen || !this.checkpoints) this.fail('it ends before its rows and checkpoints');
          this.state = 'done';
          return;
        }
        const m = KEY.exec(text);
        const key = m?.[2];
        if (m?.[1] !== ',' || !this.rowsSeen) this.fail('a key line where none belongs');
        if (key === 'checkpoints' && !this.checkpoints) this.open((this.checkpoints = []), 'top', false);
        else if (key === 'checkpointPieces' && this.checkpoints && !this.pieces)
          this.open((this.pieces = []), 'top', true);
        else this.fail(`an unexpected section ${JSON.stringify(key)}`);
        return;
      }
      case 'rows': {
        if (text === '}') {
          const missing = CHAIN_NAMES.filter((c) => !this.chains.has(c));
          if (missing.length) this.fail(`no rows section for ${missing.join(', ')}`);
          this.state = 'top';
          return;
        }
        const m = KEY.exec(text);
        const key = m?.[2] as ChainName | undefined;
        if (!m || (m[1] === ',') !== this.chains.size > 0) this.fail('a key line where none belongs');
        if (!key || !CHAINS.has(key) || this.chains.has(key)) this.fail(`an unexpected chain ${JSON.stringify(key)}`);
        const rows: RawRow[] = [];
        this.chains.set(key, rows);
        this.open(rows, 'rows', false);
        return;
      }
      case 'section': {
        const into = this.into!;
        if (text === ']') {
          this.state = into.parent;
          this.into = undefined;
          return;
        }
        const first = into.rows.length === 0;
        if (!text.startsWith(first ? '[' : ',[')) this.fail('not a row');
        const row = this.json(first ? text : text.slice(1));
        if (into.piece) {
          if (!PieceRow.safeParse(row).success) this.fail('a malformed checkpoint piece');
        } else if (
          !Array.isArray(row) ||
          !row.every((c) => c === null || typeof c === 'string' || typeof c === 'number')
        )
          this.fail('a malformed row');
        into.rows.push(row as RawRow);
        return;
      }
      case 'done':
        this.fail('text after the end');
    }
  }

  /** The batch, once the text ended where it should. */
  end(): RowBatch {
    if (this.state !== 'done' || !this.head || !this.checkpoints) this.fail('it ends early (truncated)');
    const rows = Object.fromEntries(CHAIN_NAMES.map((c) => [c, this.chains.get(c)!])) as Record<ChainName, RawRow[]>;
    const b = {
      from: this.head.from,
      to: this.head.to,
      rows,
      checkpoints: this.checkpoints,
      resumePoints: this.head.resumePoints,
    };
    return this.pieces ? { ...b, checkpointPieces: this.pieces } : b;
  }

  private open(rows: RawRow[], parent: 'top' | 'rows', piece: boolean): void {
    this.into = { rows, parent, piece };
    this.state = 'section';
  }

  private json(text: string): unknown {
    try {
      return JSON.parse(text);
    } catch {
      this.fail('not JSON');
    }
  }

  private fail(why: string): never {
    throw new Error(`${this.what} is malformed: line ${this.n}: ${why}`);
  }
}
