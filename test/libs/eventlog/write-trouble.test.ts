// A full disk and a process out of file descriptors (probe8 R3/F1): said once with the cause and
// once when writes work again, nothing appended before lost; the planner's fd warning at 95 % of
// RLIMIT_NOFILE. Slow commits counted (probe8 S1).

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog, EventLogError, fdUsage, fdWarning, verifyLog } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { tempDir } from './support/temp-log.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts'; // reaching inside on purpose

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const service = (i: number): WatchEvent => ({
  kind: 'Service',
  type: 'ADDED',
  origin: 'watch',
  namespace: 'default',
  name: `s${i}`,
  uid: `u${i}`,
  resourceVersion: String(i),
  object: { apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}` }, pad: 'y'.repeat(3000) },
});

describe('write trouble', () => {
  it('a full disk (max_page_count) is said once with its cause, and once when writes work again; nothing is lost', async () => {
    const said: string[] = [];
    const log = await EventLog.open({ file: tmp.file('full.db'), sync: 'normal', say: (l) => said.push(l) });
    try {
      log.appendEvents([service(1)]);
      const db = databaseOf(log);
      db.pragma(`max_page_count = ${(db.pragma('page_count', { simple: true }) as number) + 20}`);
      let seq = 1;
      let failures = 0;
      for (let b = 0; b < 40; b++) {
        try {
          seq = log.appendEvents(Array.from({ length: 5 }, (_, i) => service(seq + i + 1))).pop()!;
        } catch (e) {
          expect((e as EventLogError).code).toBe('DISK_FULL');
          failures++;
        }
      }
      expect(failures).toBeGreaterThan(1); // retried several times ...
      expect(said).toHaveLength(1); // ... said once
      expect(said[0]).toMatch(/^event log .*full\.db: writes fail: disk full \(.*disk full.*\); retried/);
      expect(log.lastSeq()).toBe(seq);
      db.pragma('max_page_count = 1073741823'); // space is back
      const after = log.appendEvents([service(seq + 1)]);
      expect(after).toEqual([seq + 1]);
      expect(said).toHaveLength(2);
      expect(said[1]).toMatch(/^event log .*: writes work again \(they failed: disk full\)$/);
      log.appendEvents([service(seq + 2)]);
      expect(said).toHaveLength(2);
      expect(log.events().length).toBe(seq + 2);
      expect(verifyLog(log).ok).toBe(true);
    } finally {
      log.close();
    }
  });

  it('slow commits are counted with the slowest and the last one (slowWriteMs 0: every commit)', async () => {
    const log = await EventLog.open({ file: tmp.file('slow.db'), sync: 'normal', slowWriteMs: 0 });
    try {
      expect(log.slowWrites()).toEqual({ count: 0, maxMs: 0, lastAt: null });
      log.appendEvents([service(1)]);
      log.appendEvents([service(2)]);
      const s = log.slowWrites();
      expect(s.count).toBe(2);
      expect(s.maxMs).toBeGreaterThanOrEqual(0);
      expect(s.lastAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    } finally {
      log.close();
    }
  });

  it('file descriptors: counted from /proc under a real limit, a warning at 95 % of it', () => {
    expect(fdWarning({ open: 94, limit: 100 })).toBeUndefined();
    expect(fdWarning({ open: 95, limit: 100 })).toMatch(/^95 of 100 file descriptors open \(RLIMIT_NOFILE\).*EMFILE/);
    const here = fdUsage();
    expect(here?.open).toBeGreaterThan(2);
    // A child under `ulimit -n 64` that holds 61 open files (it imports file-health.ts alone: the
    // loader opens files concurrently, and the whole library's import met EMFILE under this limit): /proc says so, and the warning is due.
    const script = `import { openSync } from 'node:fs';
import { fdUsage, fdWarning } from ${JSON.stringify(path.resolve('libs/eventlog/file-health.ts'))};
const before = fdUsage();
try { for (;;) { openSync('/dev/null', 'r'); if (fdUsage().open >= 61) break; } } catch (e) { console.log('EMFILE ' + e.code); }
console.log(JSON.stringify({ before, after: fdUsage(), warning: fdWarning(fdUsage()) ?? null }));`;
    const r = spawnSync(
      'bash',
      ['-c', `ulimit -n 64 && exec "${process.execPath}" --import tsx --input-type=module -e "$0"`, script],
      {
        encoding: 'utf8',
        timeout: 15_000,
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      before: { open: number; limit: number };
      after: { open: number; limit: number };
      warning: string | null;
    };
    expect(out.before.limit).toBe(64);
    expect(out.before.open).toBeLessThan(61);
    expect(out.after.open).toBeGreaterThanOrEqual(61);
    expect(out.warning).toMatch(/of 64 file descriptors open/);
  });
});
