// `db backup` writes a temporary file, fsyncs it and links it into place (probe8 B1): a full disk
// (or a crash) leaves no 0-byte or partial backup at the target, and an existing target stays.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog, EventLogError, backupLog } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { openLog, tempDir, tinyTmpfs } from './support/temp-log.ts';

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
  object: { apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}` }, pad: 'y'.repeat(4000) },
});

async function logOf(name: string, events: number): Promise<EventLog> {
  const log = await openLog(tmp.file(name));
  for (let i = 0; i < events; i += 100) log.appendEvents(Array.from({ length: 100 }, (_, k) => service(i + k + 1)));
  return log;
}

const leftovers = (dir: string) => fs.readdirSync(dir).filter((f) => f.includes('.partial-'));

describe('db backup (backupLog)', () => {
  it('writes a whole copy under the target name and leaves no temporary file', async () => {
    const log = await logOf('source.db', 200);
    const out = tmp.file('copy.db');
    try {
      const r = backupLog(log, out);
      expect(r.bytes).toBe(fs.statSync(out).size);
      const copy = await EventLog.open({ file: out, readOnly: true });
      expect(copy.lastSeq()).toBe(200);
      copy.close();
      expect(leftovers(tmp.dir)).toEqual([]);
    } finally {
      log.close();
    }
  });

  it('an existing target is refused and left as it was', async () => {
    const log = await logOf('source2.db', 100);
    const out = tmp.file('taken.db');
    fs.writeFileSync(out, 'keep me');
    try {
      expect(() => backupLog(log, out)).toThrow(/already exists; not overwriting/);
      expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
      expect(leftovers(tmp.dir)).toEqual([]);
    } finally {
      log.close();
    }
  });

  // A real ENOSPC needs a tiny filesystem: mounting tmpfs needs root (CAP_SYS_ADMIN). Elsewhere
  // this case is skipped, with the reason printed.
  const { dir: mountDir, reason: mountReason, unmount } = tinyTmpfs(tmp.dir, '256k', 'the full-disk backup case');
  afterAll(unmount);
  it.skipIf(mountReason !== '')(
    'a full disk: one-line DISK_FULL, no file at the target, nothing left behind',
    async () => {
      const log = await logOf('big.db', 300); // ~1.5 MB: does not fit in 256 KiB
      const out = path.join(mountDir, 'backup.db');
      try {
        let err: unknown;
        try {
          backupLog(log, out);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(EventLogError);
        expect((err as EventLogError).code).toBe('DISK_FULL');
        expect((err as Error).message.split('\n')).toHaveLength(1);
        expect(fs.existsSync(out)).toBe(false); // before: a partial file a restore would take for the log
        expect(fs.readdirSync(mountDir)).toEqual([]);
      } finally {
        log.close();
      }
    },
  );
});
