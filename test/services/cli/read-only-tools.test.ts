// review5 F4: replay, audit and db status|verify|backup only read the log. Before, every open set
// the WAL pragma, so the first audit of a backup (VACUUM INTO writes a rollback-journal file)
// rewrote its header and left -wal/-shm files, and a log the reader may read but not write could
// not be read at all.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import type { HistoryStep } from '../../libs/eventlog/support/random-history.ts';
import { driveDataAxis } from '../../libs/eventlog/support/random-history.ts';
import { openLog, steppingClock, tempDir } from '../../libs/eventlog/support/temp-log.ts';
import { sbIn } from './cli-support.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

it('the read-only commands leave a backup byte for byte as it was, and read a file they may not write', async () => {
  const file = tmp.file();
  const log = await openLog(file, steppingClock());
  const steps = fs
    .readFileSync(path.join(import.meta.dirname, '../../fixtures/eventlog/history-v2.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as HistoryStep);
  const recorded = driveDataAxis(log, steps);
  log.close();
  const backup = path.join(path.dirname(file), `backup-${path.basename(file)}`);
  expect((await sbIn(['db', 'backup', '--db', file, backup])).code).toBe(0);
  const before = sha(backup);
  const last = recorded.at(-1)!;
  const reads = [
    ['audit', '--db', backup, 'ops'],
    ['db', 'status', '--db', backup],
    ['db', 'verify', '--db', backup],
  ];
  for (const args of reads) {
    const r = await sbIn(args);
    expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
  }
  const replay = await sbIn(['replay', '--db', backup, '--json']);
  expect(JSON.parse(replay.stdout)).toMatchObject({ version: last.version, hash: last.hash, match: true });
  expect(sha(backup)).toBe(before);
  expect(fs.existsSync(`${backup}-wal`) || fs.existsSync(`${backup}-shm`)).toBe(false);

  // A reader without write access (another uid; root ignores file modes, so the test drops to one).
  if (process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0) {
    fs.chmodSync(path.dirname(backup), 0o755);
    fs.chmodSync(backup, 0o644);
    const r = spawnSync(
      'setpriv',
      ['--reuid=10001', '--regid=10001', '--clear-groups', 'bin/switchboard', 'audit', '--db', backup, 'ops'],
      { encoding: 'utf8', env: { ...process.env, HOME: path.dirname(backup) } },
    );
    expect({ code: r.status, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(sha(backup)).toBe(before);
    // The log itself is in WAL mode: a copy of its file alone (closed, so whole) has no -shm, which
    // SQLite must make to read it, and this user cannot here. Said as that, not as SQLite's
    // "attempt to write a readonly database".
    const walLog = path.join(path.dirname(backup), `wal-${path.basename(file)}`);
    fs.copyFileSync(file, walLog);
    fs.chmodSync(walLog, 0o644);
    expect(fs.readFileSync(walLog).subarray(18, 20)).toEqual(Buffer.from([2, 2])); // WAL mode
    const wal = spawnSync(
      'setpriv',
      ['--reuid=10001', '--regid=10001', '--clear-groups', 'bin/switchboard', 'audit', '--db', walLog, 'ops'],
      { encoding: 'utf8', env: { ...process.env, HOME: path.dirname(backup) } },
    );
    expect({ code: wal.status, stderr: wal.stderr }).toEqual({
      code: 1,
      stderr: `switchboard: ${walLog}: a WAL-mode event log is read with its -shm file beside it, which SQLite must create here and cannot (the directory is read-only or another user's; SQLITE_READONLY_DIRECTORY): read a copy in a directory you may write, or one \`switchboard db backup\` made\n`,
    });
  }
});
