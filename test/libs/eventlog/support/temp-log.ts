import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog } from '../../../../libs/eventlog/index.ts';

/** A temp directory per test file, removed afterwards; logs are real SQLite files inside it. */
export function tempDir(): { dir: string; file: (name?: string) => string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swb-eventlog-'));
  let n = 0;
  return {
    dir,
    file: (name) => path.join(dir, name ?? `log-${++n}.db`),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** A clock that advances one second per call, so created-at times are distinct and predictable. */
export function steppingClock(start = Date.parse('2025-01-01T00:00:00Z')): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

/** Opens a log without per-commit fsync: these tests check content, not power-cut durability. */
export async function openLog(file: string, now?: () => Date): Promise<EventLog> {
  return EventLog.open({ file, now, sync: 'normal' });
}

/**
 * A tiny tmpfs under `parent` for a real ENOSPC: mounting needs root (CAP_SYS_ADMIN). `reason` is
 * '' when mounted, else why not (the caller skips its case with it, printed); `unmount` is safe either way.
 */
export function tinyTmpfs(
  parent: string,
  size: string,
  what: string,
): { dir: string; reason: string; unmount: () => void } {
  const dir = path.join(parent, 'tiny');
  fs.mkdirSync(dir);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  const reason =
    mounted.status === 0 ? '' : `cannot mount a tmpfs here (${(mounted.stderr || String(mounted.error)).trim()})`;
  if (reason) console.warn(`skipping ${what}: ${reason}`);
  return { dir, reason, unmount: () => void (reason || spawnSync('umount', [dir])) };
}
