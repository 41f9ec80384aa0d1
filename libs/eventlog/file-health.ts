import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import type Database from 'better-sqlite3';

/**
 * Signs that a log file became unusable under a running process (probe8 D1/D2): an operator's
 * `dd`, `truncate` or restore over it, a disk returning garbage. SQLite's page cache hides such
 * damage until a page is read from disk again, so both ends are watched: every statement's error
 * (the first read or write that meets the damage) and the file's header (a cheap read, checked
 * with the planner's file check).
 */

/** The damage an SQLite error shows (a one-line cause), or undefined for any other error. */
export function damageOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_IOERR_SHORT_READ' || code.startsWith('SQLITE_CORRUPT'))
    return `${e instanceof Error ? e.message : String(e)} (${code})`;
  return undefined;
}

const MAGIC = 'SQLite format 3\0';

/**
 * A descriptor of the log file held open for as long as the log's connection is (probe11 K6):
 * POSIX record locks belong to the process and ANY close() of a descriptor of the file drops them
 * all, SQLite's included. In WAL mode a connection holds a SHARED lock on the file until it
 * closes, which is what tells another process (an operator's `sqlite3` shell) that it is not the
 * last user: opening and closing the file for a header check every 2 s dropped that lock, so the
 * shell's close checkpointed and deleted the running planner's -wal and -shm. So the descriptor
 * is opened once and closed only after the connection is (EventLog.close).
 */
export function openHeaderReader(file: string): number | undefined {
  if (file === ':memory:' || file === '') return undefined;
  try {
    return openSync(file, 'r');
  } catch {
    return undefined; // not there (yet): a deleted file is another check's
  }
}

/** Closes a descriptor openHeaderReader gave: only once the file's SQLite connection is closed. */
export function closeHeaderReader(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing held
  }
}

/**
 * What is wrong with the SQLite header or length of the file `fd` reads (openHeaderReader: never
 * a descriptor opened and closed for the check), or undefined when it looks whole. `file` names
 * the -wal beside it. Shorter than `atLeast` (bytes this process
 * saw it hold: a log's file never shrinks under its writer, nothing here runs VACUUM) is a cut.
 * With no WAL beside it, the header's page count (valid when "version-valid-for" equals the change
 * counter) is a floor too; with one, the missing pages may be WAL frames a checkpoint could not
 * copy yet (a full disk), which SQLite reads from there.
 */
export function headerDamage(fd: number, file: string, atLeast = 0): string | undefined {
  const h = Buffer.alloc(100);
  let n: number;
  let size: number;
  try {
    n = readSync(fd, h, 0, 100, 0);
    size = fstatSync(fd).size;
  } catch {
    return undefined; // unreadable now: a statement's error says what it is
  }
  if (n < 100) return `truncated to ${size} bytes (not even an SQLite header)`;
  if (h.toString('latin1', 0, 16) !== MAGIC) return 'its header was overwritten (not an SQLite file any more)';
  if (size < atLeast) return `truncated to ${size} bytes (it held ${atLeast})`;
  const pageSize = h.readUInt16BE(16) === 1 ? 65536 : h.readUInt16BE(16);
  const pages = h.readUInt32BE(28);
  if (h.readUInt32BE(24) === h.readUInt32BE(92) && size < pages * pageSize && walBytes(file) === 0)
    return `truncated to ${size} bytes (its header says ${pages * pageSize})`;
  return undefined;
}

function walBytes(file: string): number {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
}

/**
 * Makes every statement prepared on `db` (the log's own and those of the modules reading through
 * databaseOf) hand its error to `onError` first, which returns the error to throw: the first
 * statement meeting damage latches the log unusable, wherever it runs. Iterators are not watched.
 * Returns the unwatched prepare, for a hot statement whose caller watches for damage itself.
 */
export function watchStatements(db: Database.Database, onError: (e: unknown) => unknown): Database.Database['prepare'] {
  const prepare = db.prepare.bind(db);
  db.prepare = ((sql: string) => {
    let stmt: Database.Statement;
    try {
      stmt = prepare(sql);
    } catch (e) {
      throw onError(e);
    }
    const methods = stmt as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const m of ['run', 'get', 'all'] as const) {
      const call = methods[m]!;
      methods[m] = function (this: unknown, ...args: unknown[]) {
        try {
          return call.apply(this, args);
        } catch (e) {
          throw onError(e);
        }
      };
    }
    return stmt;
  }) as typeof db.prepare;
  return prepare;
}

/** This process's open file descriptors and their soft limit (Linux /proc), or undefined elsewhere. */
export function fdUsage(): { readonly open: number; readonly limit: number } | undefined {
  try {
    const open = readdirSync('/proc/self/fd').length;
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m || m[1] === 'unlimited') return undefined;
    return { open, limit: Number(m[1]) };
  } catch {
    return undefined;
  }
}

/** The line saying this process is near its file-descriptor limit (at 95 % of it), or undefined (pure). */
export function fdWarning(u: { readonly open: number; readonly limit: number }): string | undefined {
  if (u.open < 0.95 * u.limit) return undefined;
  return `${u.open} of ${u.limit} file descriptors open (RLIMIT_NOFILE): new connections, watches and the log's files fail with EMFILE (too many open files) soon; raise the limit (ulimit -n, LimitNOFILE=)`;
}
