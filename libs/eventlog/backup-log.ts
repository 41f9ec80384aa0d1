import fs from 'node:fs';
import path from 'node:path';
import { databaseOf } from './database-handle.ts';
import { EventLogError, translateSqliteError } from './event-log-error.ts';
import type { EventLog } from './event-log.ts';

/**
 * A consistent copy of the log (VACUUM INTO), safe while the planner keeps writing. The copy is
 * made beside `out` under a temporary name, fsynced, then linked to `out` (which fails if `out`
 * appeared meanwhile: an existing file is never overwritten) and the directory fsynced: a crash, a
 * full disk or a kill leaves either no `out` or a whole one, never a 0-byte or partial backup that
 * a restore would take for the log (probe8 B1). VACUUM INTO itself does not sync what it writes.
 */
export function backupLog(log: EventLog, out: string): { bytes: number } {
  if (fs.existsSync(out)) throw new EventLogError('INVALID', `backup: ${out} already exists; not overwriting`);
  const tmp = path.join(path.dirname(out), `.${path.basename(out)}.partial-${process.pid}`);
  try {
    fs.rmSync(tmp, { force: true }); // one a killed backup of this pid left
    try {
      databaseOf(log).prepare('VACUUM INTO ?').run(tmp);
    } catch (e) {
      throw translateSqliteError(e, `backup to ${out}`);
    }
    fsyncPath(tmp);
    publish(tmp, out);
    fsyncPath(path.dirname(out));
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if (e instanceof EventLogError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EEXIST') throw new EventLogError('INVALID', `backup: ${out} already exists; not overwriting`);
    throw new EventLogError(err.code === 'ENOSPC' ? 'DISK_FULL' : 'IO', `backup to ${out}: ${err.message}`, {
      cause: e,
    });
  }
  fs.rmSync(tmp, { force: true });
  return { bytes: fs.statSync(out).size };
}

/** Gives the whole copy its final name: a hard link (refused when `out` exists), else a rename. */
function publish(tmp: string, out: string): void {
  try {
    fs.linkSync(tmp, out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // filesystems without hard links: a rename, after the check (a race could still replace `out`)
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
    if (fs.existsSync(out)) throw Object.assign(new Error(`${out} exists`), { code: 'EEXIST' });
    fs.renameSync(tmp, out);
  }
}

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
