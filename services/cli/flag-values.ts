import { InvalidArgumentError } from 'commander';
import { accessSync, constants, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { UsageError } from './cli-errors.ts';
import { parseWaves } from '../../libs/control/parse-waves.ts'; // not the barrel: ctl must not load libs/model's schemas (zod)

/**
 * Parsers for flag values, given to commander (`.argParser`) so that a bad value is a usage error
 * (exit 2) in one line naming the flag, before anything is contacted or written.
 */

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError('expected a positive whole number.');
  return n;
}

/**
 * A whole number written as one (digits only: no sign, spaces, `0x2`, `1e0` or empty text, which
 * Number() reads as 2, 1 and 0) of at least `min` and exactly representable, or undefined. For
 * values checked in a command's action (`replay --to-version`, `audit diff A B`).
 */
export function wholeNumberOf(v: string, min: number): number | undefined {
  if (!/^[0-9]+$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= min ? n : undefined;
}

/** An http(s) URL with a host: `127.0.0.1:9440` (no scheme) is refused rather than guessed. */
export function serverUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError('expected an http:// or https:// URL such as http://127.0.0.1:9440.');
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) {
    throw new InvalidArgumentError('expected an http:// or https:// URL such as http://127.0.0.1:9440.');
  }
  return v;
}

/** Wave specs (`1,10%,50%,100%`); kept as text, the planner plans them over its fleet. */
export function waves(v: string): string {
  try {
    parseWaves(v);
  } catch (e) {
    throw new InvalidArgumentError(`${(e as Error).message}.`);
  }
  return v;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `500ms`, `30s`, `10m`, `2h`, `1d` (and compounds like `1h30m`) into milliseconds, or undefined. */
export function parseDuration(v: string): number | undefined {
  const text = v.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) return undefined;
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
  return ms;
}

export function duration(v: string): number {
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) throw new InvalidArgumentError('expected a duration such as 30s, 10m or 2h.');
  return ms;
}

/**
 * A point in time as operators type it: relative (`10m`, `2h`: that long ago), ISO-8601 with a
 * zone (`2026-11-30T14:02:00Z`), or local wall time with its date (`2026-11-30 14:02[:30]`, in this
 * machine's time zone). A bare clock time (`14:02`) is refused: today's or yesterday's is a guess
 * an audit answer must not rest on. Returns an ISO-8601 UTC string.
 */
export function parseTime(v: string, now: Date = new Date()): string | undefined {
  const text = v.trim();
  const ago = parseDuration(text);
  if (ago !== undefined) return new Date(now.getTime() - ago).toISOString();
  const local = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$/.exec(text);
  if (local) {
    const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(local[i] ?? 0)) as [
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const t = new Date(y, mo - 1, d, h, mi, s);
    // Date rolls 2026-02-31 over into March; a date that does not round-trip is not a date.
    if (t.getFullYear() !== y || t.getMonth() !== mo - 1 || t.getDate() !== d || h > 23 || mi > 59 || s > 59)
      return undefined;
    return t.toISOString();
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(text)) {
    const t = new Date(text);
    return Number.isNaN(t.getTime()) ? undefined : t.toISOString();
  }
  return undefined;
}

export function time(v: string): string {
  const t = parseTime(v);
  if (t === undefined)
    throw new InvalidArgumentError(
      'expected a time: 10m or 2h (ago), 2026-11-30 14:02 (local time), or ISO-8601 with a zone.',
    );
  return t;
}

/**
 * A file or directory the command reads, named on the command line: missing, unreadable or of
 * the wrong kind is a usage error (exit 2) naming the flag and the path, checked before anything
 * starts, in every command alike (before: exit 1 from some, 2 from others). Paths a command waits
 * for or creates (planner --manifests, --db, --signing-key; applier --planner-key) do not use it.
 */
function inputPath(v: string, kind: 'file' | 'directory'): string {
  let isDir: boolean;
  try {
    const st = statSync(v);
    isDir = st.isDirectory();
    // A FIFO (or a device) would block the read or never end it: the command hung silently (probe10 H10).
    if (!isDir && !st.isFile()) throw new InvalidArgumentError(`not a regular file (a FIFO, socket or device).`);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidArgumentError(
      code === 'ENOENT' || code === 'ENOTDIR'
        ? `no such ${kind}.`
        : `cannot read it (${code ?? (e as Error).message}).`,
    );
  }
  if (isDir !== (kind === 'directory')) throw new InvalidArgumentError(`not a ${kind}.`);
  try {
    accessSync(v, constants.R_OK | (isDir ? constants.X_OK : 0));
  } catch (e) {
    throw new InvalidArgumentError(`cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}).`);
  }
  return v;
}

export const inputFile = (v: string): string => inputPath(v, 'file');

/**
 * inputFile, then `read` reads it as the flag takes it (a token file, an nkey seed, a .creds
 * file): a file that is there but malformed is bad input too, a usage error (exit 2) in one line
 * naming the flag, the file and what is wrong, before anything starts (before: exit 1 after the
 * log was opened, or a process waiting for ever on a server that could never accept the file).
 * `read` comes from the command's module, so this file stays light for ctl.
 */
export function inputFileAs(read: (file: string) => unknown): (v: string) => string {
  return (v) => {
    inputFile(v);
    try {
      read(v);
    } catch (e) {
      const why = (e as Error).message.split('\n')[0]!.replace(/\.$/, '');
      throw new InvalidArgumentError(`${why.startsWith(`${v}: `) ? why.slice(v.length + 2) : why}.`);
    }
    return v;
  };
}
export const inputDir = (v: string): string => inputPath(v, 'directory');

/**
 * A file the command writes, and creates when it is missing (planner --db, db migrate --db, db
 * backup OUT): an empty path, a missing or unwritable directory, or something there that is not a
 * regular file is a usage error naming the flag, before anything is made beside it (the log's lock
 * file). A FIFO given to --db blocked SQLite's open for ever, silently, after the lock was taken.
 */
export function creatableFile(v: string): string {
  if (v === '') throw new InvalidArgumentError('an empty path.');
  let exists = true;
  try {
    const st = statSync(v);
    if (st.isDirectory()) throw new InvalidArgumentError('a directory, not a file.');
    if (!st.isFile()) throw new InvalidArgumentError('not a regular file (a FIFO, socket or device).');
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new InvalidArgumentError(`cannot reach it (${code ?? (e as Error).message}).`);
    exists = false;
  }
  const dir = dirname(v);
  try {
    if (!statSync(dir).isDirectory()) throw new InvalidArgumentError(`${dir} is not a directory.`);
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidArgumentError(
      code === 'ENOENT' || code === 'ENOTDIR' ? `no such directory ${dir}.` : `cannot reach ${dir} (${code}).`,
    );
  }
  // the log's lock and journal files go beside it: its directory must take new files either way
  for (const [path, what] of [...(exists ? [[v, 'it']] : []), [dir, dir]] as [string, string][]) {
    try {
      accessSync(path, constants.W_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new InvalidArgumentError(
        `cannot write ${what} (${code === 'EROFS' ? 'a read-only file system' : (code ?? (e as Error).message)}).`,
      );
    }
  }
  return v;
}

/** creatableFile for a flag or argument checked in the action (`db migrate --db`, `db backup OUT`). */
export function requireCreatableFile(flag: string, v: string): void {
  try {
    creatableFile(v);
  } catch (e) {
    throw new UsageError(`${flag} ${v === '' ? '""' : v}: ${(e as Error).message.replace(/\.$/, '')}`);
  }
}

/** inputFile for a flag whose need depends on the subcommand (`db migrate` creates its --db). */
export function requireInputFile(flag: string, v: string): void {
  try {
    inputFile(v);
  } catch (e) {
    throw new UsageError(`${flag} ${v}: ${(e as Error).message.replace(/\.$/, '')}`);
  }
}
