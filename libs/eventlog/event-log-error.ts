/**
 * A failure of the event log that the caller should show as one line: the file is not an event
 * log, its schema is newer than this code, the disk is full, the chain is broken... `code` lets
 * callers and tests tell them apart without matching message text.
 */
export type EventLogErrorCode =
  | 'NOT_A_DATABASE'
  | 'FOREIGN_DATABASE'
  | 'SCHEMA_TOO_NEW'
  | 'DISK_FULL'
  | 'NOT_FOUND'
  | 'COMPACTED'
  | 'INVALID'
  | 'IO'
  /** Another process holds the file's writer lock (writer-lock.ts). */
  | 'LOCKED'
  /** The file turned unusable under this process (damaged, truncated, its -wal deleted): writes are refused for good (EventLog.fileProblem). */
  | 'UNUSABLE'
  /** Rows offered for import, export or truncation do not continue this file's chains (another history). */
  | 'DIVERGED';

export class EventLogError extends Error {
  constructor(
    readonly code: EventLogErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EventLogError';
  }
}

/** Maps SQLite's own errors to one-line event-log errors; anything else passes through. */
export function translateSqliteError(e: unknown, context: string): unknown {
  const code = (e as { code?: unknown })?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (code === 'SQLITE_FULL')
    return new EventLogError('DISK_FULL', `${context}: disk full (${msg}); nothing was written`, { cause: e });
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT')
    return new EventLogError('NOT_A_DATABASE', `${context}: not a usable SQLite file (${msg})`, { cause: e });
  if (code.startsWith('SQLITE_IOERR') || code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY') {
    return new EventLogError('IO', `${context}: ${msg} (${code})`, { cause: e });
  }
  return e;
}
