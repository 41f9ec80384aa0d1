// probe11 K6: another process reading the live log with its own SQLite (an operator's `sqlite3`
// shell, a DB browser) must leave the running log's -wal and -shm alone. The EventLog's periodic
// file check used to open and close the file, which dropped this process's POSIX locks (SQLite's
// SHARED lock among them): the reader's close then found itself the last user, checkpointed and
// deleted the WAL, and the log latched unusable.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
let open: EventLog[] = [];
afterEach(() => {
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
  object: { apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}` }, spec: { ports: [{ port: 80 }] } },
});

/**
 * The `sqlite3` shell reading the file (a read-write connection in another process: one query,
 * then close, the operator's case). A better-sqlite3 connection in a child did not show the bug:
 * the shell's build checkpoints and removes the WAL when it finds itself the last connection.
 */
function readFromAnotherProcess(file: string): number {
  return Number(execFileSync('sqlite3', [file, 'SELECT count(*) FROM events'], { encoding: 'utf8' }).trim());
}

describe('another process reading the live log', () => {
  it('leaves its -wal and -shm, after the file checks ran: the log stays usable and keeps its rows', async () => {
    const file = tmp.file('live.db');
    const log = await EventLog.open({ file, sync: 'normal', say: () => undefined });
    open.push(log);
    log.appendEvents(Array.from({ length: 20 }, (_, i) => service(i + 1)));
    // the planner's file check (every 2 s in a planner), before and after the other reader
    expect(log.fileProblem()).toBeUndefined();
    expect(log.fileProblem()).toBeUndefined();
    expect(fs.existsSync(`${file}-wal`)).toBe(true);

    expect(readFromAnotherProcess(file)).toBe(20);

    expect(fs.existsSync(`${file}-wal`)).toBe(true);
    expect(fs.existsSync(`${file}-shm`)).toBe(true);
    expect(log.fileProblem()).toBeUndefined();
    log.appendEvents([service(21)]);
    expect(readFromAnotherProcess(file)).toBe(21);
    expect(log.fileProblem()).toBeUndefined();
  });
});
