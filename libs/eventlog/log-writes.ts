/**
 * How the event log runs a write: one immediate transaction, refused once the file is unusable,
 * with a failure for lack of disk or file descriptors said once (and once more when writes work
 * again), and slow commits counted. Its own module so EventLog (event-log.ts) says what each write
 * stores and this says how every write goes; the file's trust is log-file-watch.ts.
 */
import type Database from 'better-sqlite3';
import { EventLogError } from './event-log-error.ts';
import { fdUsage } from './file-health.ts';
import type { LogFileWatch } from './log-file-watch.ts';

const EMFILE = 'too many open files (EMFILE)';

/** Commits slower than the log's slowWriteMs: how many, the slowest, and when the last one ended. */
export interface SlowWrites {
  readonly count: number;
  readonly maxMs: number;
  readonly lastAt: string | null;
}

export class LogWrites {
  say = (line: string) => console.warn(line);
  slowWriteMs = 1000;
  /**
   * Runs after a write rolled back: what the log keeps in memory of rows it read or wrote inside
   * the transaction must go with them (a config revision read back inside a refused operation's
   * transaction stayed cached: a revision the file never held, rolled out to the fleet).
   */
  afterRollback: () => void = () => undefined;
  /** What makes writes fail now (disk full, out of file descriptors), said when it starts and ends. */
  private writeTrouble: string | undefined;
  private slow: SlowWrites = { count: 0, maxMs: 0, lastAt: null };

  constructor(
    private readonly file: string,
    private readonly db: Database.Database,
    private readonly fileWatch: LogFileWatch,
    private readonly now: () => Date,
  ) {}

  /** Commits slower than slowWriteMs so far. */
  slowWrites(): SlowWrites {
    return this.slow;
  }

  /**
   * Runs `fn` as one write transaction: refused once the file is unusable; a failure for lack of
   * disk or file descriptors is said once, and once more when a write works again (probe8 R3/F1);
   * a commit slower than slowWriteMs is counted (probe8 S1).
   */
  run<T>(context: string, fn: () => T): T {
    const unusable = this.fileWatch.unusable;
    if (unusable !== undefined)
      throw new EventLogError('UNUSABLE', `event log ${this.file}: ${context} refused: ${unusable}`);
    const t0 = performance.now();
    let out: T;
    try {
      out = this.db.transaction(fn).immediate();
    } catch (e) {
      this.afterRollback();
      const err = this.fileWatch.failed(e, `event log ${this.file}: ${context}`);
      const trouble = troubleOf(err);
      const fds = trouble === EMFILE ? fdUsage() : undefined;
      if (trouble !== undefined && trouble !== this.writeTrouble)
        this.say(
          `event log ${this.file}: writes fail: ${trouble}${fds ? ` (${fds.open} of ${fds.limit} file descriptors open)` : ''} (${err instanceof Error ? err.message : String(err)}); retried, nothing committed before is lost`,
        );
      if (trouble !== undefined) this.writeTrouble = trouble;
      throw err;
    }
    const ms = performance.now() - t0;
    if (ms > this.slowWriteMs)
      this.slow = {
        count: this.slow.count + 1,
        maxMs: Math.max(this.slow.maxMs, Math.round(ms)),
        lastAt: this.now().toISOString(),
      };
    if (this.writeTrouble !== undefined) {
      this.say(`event log ${this.file}: writes work again (they failed: ${this.writeTrouble})`);
      this.writeTrouble = undefined;
    }
    return out;
  }
}

/** 'disk full' or EMFILE when that is why a write failed (said once while it lasts), else undefined. */
function troubleOf(err: unknown): string | undefined {
  if (!(err instanceof EventLogError)) return undefined;
  if (err.code === 'DISK_FULL') return 'disk full';
  const fds = err.code === 'IO' ? fdUsage() : undefined;
  // SQLite says only SQLITE_CANTOPEN (or an I/O error) when open() fails with EMFILE
  if (fds && fds.open >= fds.limit - 2) return EMFILE;
  return undefined;
}
