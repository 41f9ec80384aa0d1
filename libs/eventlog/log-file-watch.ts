/**
 * Whether the event log's file can still be trusted: the unusable latch (a statement met a
 * damaged file, its header says it was truncated or overwritten, its -wal or -shm was deleted
 * under this process) and the file deleted or replaced under its path. Its own module because it
 * is about the file on disk, not the rows: EventLog (event-log.ts) asks it before every write
 * (log-writes.ts) and for fileProblem(); the checks themselves are file-health.ts.
 */
import { statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { translateSqliteError } from './event-log-error.ts';
import { closeHeaderReader, damageOf, headerDamage } from './file-health.ts';

export class LogFileWatch {
  /** The file this log opened (device and inode), to notice it deleted or replaced under us. */
  private opened: string | undefined;
  /** Set (once, for good) when the file turned unusable: every write is refused with UNUSABLE after it. */
  private unusableWhy: string | undefined;
  /** The -wal and -shm files this log uses (device and inode), to notice them deleted (watched when writable). */
  private watchSidecars = false;
  private readonly sidecars = new Map<string, string>();
  /** The file's descriptor for header checks, held until close (file-health.ts openHeaderReader: probe11 K6). */
  private headerFd: number | undefined;
  /** The largest size the file was seen at (headerDamage: it never shrinks under its writer). */
  private bytesSeen = 0;

  constructor(
    private readonly file: string,
    private readonly db: Database.Database,
  ) {}

  /** Once the file is open: watch its -wal and -shm when writable, and its header through `headerFd`. */
  watch(opts: { readonly sidecars: boolean; readonly headerFd: number | undefined }): void {
    this.watchSidecars = opts.sidecars;
    this.opened = fileIdentity(this.file);
    this.headerFd = opts.headerFd;
  }

  /** EventLog.fileProblem(): why the log file cannot be trusted now, one line, or undefined. */
  problem(): string | undefined {
    if (this.unusableWhy !== undefined) return this.unusableWhy;
    if (this.opened === undefined) return undefined; // in memory
    const now = fileIdentity(this.file);
    if (now === this.opened) {
      const lost = this.lostSidecar();
      if (lost !== undefined) this.rescue(lost);
      else {
        const damage = this.headerFd === undefined ? undefined : headerDamage(this.headerFd, this.file, this.bytesSeen);
        if (damage !== undefined) this.markUnusable(damage);
        else this.bytesSeen = Math.max(this.bytesSeen, fileBytes(this.file));
      }
      return this.unusableWhy;
    }
    return now === undefined
      ? `${this.file} was deleted while open: what is written now is lost at exit; restart the planner (a group member rebuilds the file from the group's log stream)`
      : `${this.file} was replaced by another file while open: what is written now goes to the old one; restart the planner`;
  }

  /** The latched reason alone (see problem()): the log refuses writes for good. */
  get unusable(): string | undefined {
    return this.unusableWhy;
  }

  private markUnusable(cause: string): void {
    this.unusableWhy ??= `${this.file} is unusable: ${cause}; writes are refused, restart the planner on a sound file (db verify; a group member rebuilds it from the group's log stream)`;
  }

  /** The error to throw for a failed statement, latching the log unusable when it shows damage. */
  failed(e: unknown, context: string): unknown {
    const damage = damageOf(e);
    if (damage !== undefined) this.markUnusable(`damaged (${damage})`);
    return translateSqliteError(e, context);
  }

  /** The -wal or -shm path that no longer names the file this log had there, if any. */
  private lostSidecar(): string | undefined {
    if (!this.watchSidecars) return undefined;
    for (const side of [`${this.file}-wal`, `${this.file}-shm`]) {
      const id = fileIdentity(side);
      const seen = this.sidecars.get(side);
      if (seen === undefined) {
        if (id !== undefined) this.sidecars.set(side, id); // made by SQLite at the first read or write
      } else if (id !== seen) return side;
    }
    return undefined;
  }

  /**
   * A -wal or -shm deleted while open: this process still has both open, so a checkpoint copies
   * every committed frame of the WAL into the database file (and fsyncs it) before anything is
   * lost; a crash now would otherwise lose every commit since the last checkpoint, and another
   * process opening the file makes a new, empty WAL beside ours. Then the log is unusable.
   */
  private rescue(side: string): void {
    let how: string;
    try {
      const [r] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
      how =
        r && r.busy === 0 && r.checkpointed >= r.log
          ? `a rescue checkpoint copied what it held (${Math.max(0, r.log)} pages) into ${this.file}: nothing committed is lost`
          : `the rescue checkpoint copied ${r?.checkpointed ?? 0} of ${r?.log ?? '?'} pages: rows committed since the last checkpoint may be lost`;
    } catch (e) {
      how = `the rescue checkpoint failed (${(e as Error).message}): rows committed since the last checkpoint are lost at exit`;
    }
    this.markUnusable(`${side} was deleted while open; ${how}`);
  }

  /** Lets go of the header's descriptor (the log is closing). */
  close(): void {
    closeHeaderReader(this.headerFd);
    this.headerFd = undefined;
  }
}

function fileBytes(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** `dev:ino` of a file, or undefined when it is not there (or is not a file on disk). */
function fileIdentity(file: string): string | undefined {
  if (file === ':memory:' || file === '') return undefined;
  try {
    const st = statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}
