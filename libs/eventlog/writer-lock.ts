import fs from 'node:fs';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';
import { EventLogError } from './event-log-error.ts';

/**
 * One writing process per event log. Two planners on one `--db` (a second one started by
 * mistake, a copy of a unit file) each append to the same file and truncate each other's rows
 * (replication truncates what the group never accepted), and with different groups they fork the
 * version history. Read-only tools (audit, replay, db status/verify/backup) never take it.
 *
 * The lock is SQLite's own file lock on a sidecar database (`FILE.lock`) held in EXCLUSIVE
 * locking mode: a POSIX advisory lock, so the kernel drops it when the holder dies however it
 * dies (kill -9 included) — no stale lock to clean up. Who holds it is written beside it
 * (`FILE.lock.holder`, JSON) after it was taken, only to name the holder in the refusal.
 */
export interface WriterLock {
  release(): void;
}

export function acquireWriterLock(file: string, purpose: string): WriterLock {
  const lockFile = `${file}.lock`;
  const holderFile = `${lockFile}.holder`;
  let db: Database.Database;
  try {
    db = new Database(lockFile, { timeout: 0 });
    db.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the EXCLUSIVE lock; in this locking mode it is kept until close.
    db.exec('CREATE TABLE IF NOT EXISTS writer (id INTEGER PRIMARY KEY); BEGIN EXCLUSIVE; COMMIT;');
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED')
      throw new EventLogError('IO', `${lockFile}: cannot take the writer lock: ${(e as Error).message}`);
    throw new EventLogError('LOCKED', `${file}: in use by another process (${describeHolder(holderFile)})`);
  }
  const holder = { pid: process.pid, host: hostname(), purpose, since: new Date().toISOString() };
  fs.writeFileSync(holderFile, `${JSON.stringify(holder)}\n`);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      fs.rmSync(holderFile, { force: true });
      db.close();
    },
  };
}

function describeHolder(holderFile: string): string {
  try {
    const h = JSON.parse(fs.readFileSync(holderFile, 'utf8')) as Record<string, unknown>;
    return `${String(h.purpose)}, pid ${String(h.pid)} on ${String(h.host)} since ${String(h.since)}`;
  } catch {
    return 'holder not recorded';
  }
}
