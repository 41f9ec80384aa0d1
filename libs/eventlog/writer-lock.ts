import { tryProcessLock, type ProcessLock } from '../locks/index.ts';
import { EventLogError } from './event-log-error.ts';

/**
 * One writing process per event log. Two planners on one `--db` (a second one started by
 * mistake, a copy of a unit file) each append to the same file and truncate each other's rows
 * (replication truncates what the group never accepted), and with different groups they fork the
 * version history. Read-only tools (audit, replay, db status/verify/backup) never take it.
 *
 * The lock (libs/locks/process-lock.ts) is a sidecar file, `FILE.lock`, which the kernel frees
 * when the holder dies however it dies; who holds it is written beside it (`FILE.lock.holder`).
 */
export type WriterLock = ProcessLock;

export function acquireWriterLock(file: string, purpose: string): WriterLock {
  let attempt: ReturnType<typeof tryProcessLock>;
  try {
    attempt = tryProcessLock(`${file}.lock`, purpose);
  } catch (e) {
    throw new EventLogError(
      'IO',
      `${(e as Error).message.replace(/: cannot take the lock:/, ': cannot take the writer lock:')}`,
    );
  }
  if ('heldBy' in attempt) throw new EventLogError('LOCKED', `${file}: in use by another process (${attempt.heldBy})`);
  return attempt.lock;
}
