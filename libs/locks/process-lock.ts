// One process at a time: an exclusive lock on a file, held for as long as the process keeps it.
//
// The lock is SQLite's own file lock on a small database (`FILE`) held in EXCLUSIVE locking mode:
// a POSIX advisory lock, so the kernel drops it when the holder dies however it dies (kill -9
// included), and it holds across containers that share the file (a hostPath): no stale lock to
// clean up, and no PID to trust (every container's first process is PID 1). Who holds it is
// written beside it (`FILE.holder`, JSON) after it was taken, only to name the holder in a refusal.
// Users: the event log's writer (libs/eventlog/writer-lock.ts), a node's applier (one per node).

import fs from 'node:fs';
import { hostname } from 'node:os';
import Database from 'better-sqlite3';

export interface ProcessLock {
  release(): void;
}

/** Taken, or held by another process (`heldBy` names it: purpose, pid, host, since). */
export type LockAttempt = { readonly lock: ProcessLock } | { readonly heldBy: string };

/**
 * Tries to take `lockFile` (in a directory that exists) for `purpose`, said to whoever is refused.
 * Throws when the file cannot be opened or locked for another reason than a holder.
 */
export function tryProcessLock(lockFile: string, purpose: string): LockAttempt {
  const holderFile = `${lockFile}.holder`;
  let db: Database.Database | undefined;
  for (let attempt = 1; !db; attempt++) {
    let opened: Database.Database | undefined;
    try {
      opened = new Database(lockFile, { timeout: 0 });
      opened.pragma('locking_mode = EXCLUSIVE');
      // The first write takes the EXCLUSIVE lock; in this locking mode it is kept until close.
      opened.exec('CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY); BEGIN EXCLUSIVE; COMMIT;');
      db = opened;
    } catch (e) {
      opened?.close();
      const code = (e as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') return { heldBy: describeHolder(holderFile) };
      // Not a database (a torn first write, something else's file): no process can hold a lock
      // through it, and left there it would refuse every start. Set aside (kept for a look), once.
      if ((code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') && attempt === 1) {
        try {
          fs.renameSync(lockFile, `${lockFile}.not-a-lock-${Date.now()}`);
        } catch (r) {
          if ((r as { code?: string }).code !== 'ENOENT') throw r; // another taker set it aside first
        }
        continue;
      }
      throw new Error(`${lockFile}: cannot take the lock: ${(e as Error).message}`);
    }
  }
  const holder = { pid: process.pid, host: hostname(), purpose, since: new Date().toISOString() };
  fs.writeFileSync(holderFile, `${JSON.stringify(holder)}\n`);
  let held = true;
  return {
    lock: {
      release() {
        if (!held) return;
        held = false;
        fs.rmSync(holderFile, { force: true });
        db.close();
      },
    },
  };
}

function describeHolder(holderFile: string): string {
  try {
    return holderText(JSON.parse(fs.readFileSync(holderFile, 'utf8')) as Record<string, unknown>);
  } catch {
    return 'holder not recorded';
  }
}

/** A holder record ({ purpose, pid, host, since }) as a refusal names it. */
export function holderText(h: Record<string, unknown>): string {
  return `${String(h.purpose)}, pid ${String(h.pid)} on ${String(h.host)} since ${String(h.since)}`;
}
