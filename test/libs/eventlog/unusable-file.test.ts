// A log file made unusable under a running EventLog (probe8 D1/D2): damaged pages, a truncation,
// a deleted -wal. The log latches unusable on the first sign (fileProblem names it), refuses every
// write after it (UNUSABLE), and a deleted WAL's committed rows are first rescued into the file.

import fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { EventLog, EventLogError } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { main } from '../../../services/cli/main.ts';
import { tempDir } from './support/temp-log.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts'; // reaching inside on purpose

const tmp = tempDir();
afterAll(() => tmp.cleanup());
let open: EventLog[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const l of open) l.close();
  open = [];
});

const service = (i: number): WatchEvent => ({
  kind: 'Service',
  type: 'ADDED',
  origin: 'watch',
  namespace: 'default',
  name: `s${i}`,
  uid: `u${i}`,
  resourceVersion: String(i),
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `s${i}` },
    spec: { ports: [{ port: 80 }] },
    pad: 'y'.repeat(2000),
  },
});

async function logWith(file: string, n: number): Promise<EventLog> {
  const log = await EventLog.open({ file, sync: 'normal', say: () => undefined });
  open.push(log);
  for (let i = 0; i < n; i += 50) log.appendEvents(Array.from({ length: 50 }, (_, k) => service(i + k + 1)));
  return log;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof EventLogError ? e.code : `not an EventLogError: ${String(e)}`;
  }
  return undefined;
}

describe('a log file made unusable under a running EventLog', () => {
  it('damaged pages: the first read that meets them latches the log; writes are refused (UNUSABLE)', async () => {
    const file = tmp.file('damaged.db');
    const log = await logWith(file, 300);
    databaseOf(log).pragma('wal_checkpoint(TRUNCATE)'); // the rows now live in the file alone
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(size - 2 * 4096, 0xab), 0, size - 2 * 4096, 2 * 4096); // all but pages 1-2
    fs.closeSync(fd);
    // SQLite's page cache hides the damage until a page is read from disk again: emptied here, as
    // memory pressure or another writer would.
    databaseOf(log).pragma('shrink_memory');
    let err: unknown;
    try {
      log.events();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EventLogError);
    expect((err as Error).message).toContain(file);
    expect(log.fileProblem()).toMatch(/is unusable: damaged \(.*SQLITE_(CORRUPT|NOTADB)/);
    expect(log.fileProblem()!.split('\n')).toHaveLength(1);
    expect(codeOf(() => log.appendEvents([service(1000)]))).toBe('UNUSABLE');
    expect(codeOf(() => log.recordOperation({ kind: 'pin', actor: 'a', reason: 'r', params: {} }))).toBe('UNUSABLE');
  });

  it('a truncated file: the header check names it; writes are refused; a restart exits 1 with one line', async () => {
    const file = tmp.file('truncated.db');
    const log = await logWith(file, 300);
    databaseOf(log).pragma('wal_checkpoint(TRUNCATE)');
    expect(log.fileProblem()).toBeUndefined(); // seen whole at its size
    const size = fs.statSync(file).size;
    fs.truncateSync(file, Math.floor(size / 3));
    expect(log.fileProblem()).toMatch(new RegExp(`^${file} is unusable: truncated to ${Math.floor(size / 3)} bytes`));
    expect(codeOf(() => log.appendEvents([service(1000)]))).toBe('UNUSABLE');
    log.close();
    open = [];
    let stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      stderr += String(s);
      return true;
    });
    const dir = tmp.file('manifests');
    fs.mkdirSync(dir);
    // The log is opened before NATS is reached: the port need not answer.
    const code = await main([
      'planner',
      '--manifests',
      dir,
      '--nats',
      'nats://127.0.0.1:1',
      '--db',
      file,
      '--http',
      '127.0.0.1:0',
    ]);
    vi.restoreAllMocks();
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`^switchboard: ${file}: not a usable (event log: truncated|SQLite file)`));
  });

  it('a -wal and -shm deleted while open: a rescue checkpoint keeps every committed row in the file; then unusable', async () => {
    const file = tmp.file('wal-gone.db');
    const log = await logWith(file, 100); // under 1 000 WAL pages: no automatic checkpoint yet
    expect(log.fileProblem()).toBeUndefined(); // its -wal and -shm seen
    expect(fs.statSync(`${file}-wal`).size).toBeGreaterThan(0);
    fs.rmSync(`${file}-wal`);
    fs.rmSync(`${file}-shm`);
    expect(log.fileProblem()).toMatch(
      new RegExp(`^${file} is unusable: ${file}-wal was deleted while open; a rescue checkpoint copied what it held`),
    );
    expect(codeOf(() => log.appendEvents([service(1000)]))).toBe('UNUSABLE');
    // What a crash now leaves: the file alone. It holds every committed row.
    const copy = tmp.file('wal-gone-copy.db');
    fs.copyFileSync(file, copy);
    const again = await EventLog.open({ file: copy, readOnly: true });
    open.push(again);
    expect(again.lastSeq()).toBe(100);
  });
});
