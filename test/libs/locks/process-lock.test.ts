// The process lock (libs/locks/process-lock.ts) in one process: SQLite refuses a second connection
// the lock its first holds, as it refuses another process's (writer-lock.test.ts and
// test/services/applier/node-lock.test.ts take it from other processes, kill -9 included).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tryProcessLock, type LockAttempt } from '../../../libs/locks/index.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sb-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const taken = (a: LockAttempt) => {
  if (!('lock' in a)) throw new Error(`not taken: held by ${a.heldBy}`);
  return a.lock;
};

describe('tryProcessLock', () => {
  it('refuses a second taker naming the first, until the first releases it', () => {
    const file = path.join(dir, 'a.lock');
    const first = taken(tryProcessLock(file, 'the first'));
    const second = tryProcessLock(file, 'the second');
    expect(second).toEqual({
      heldBy: expect.stringMatching(
        new RegExp(`^the first, pid ${process.pid} on ${hostname()} since \\d{4}-\\d\\d-\\d\\dT`),
      ),
    });
    first.release();
    expect(existsSync(`${file}.holder`)).toBe(false);
    const third = taken(tryProcessLock(file, 'the third'));
    expect(JSON.parse(readFileSync(`${file}.holder`, 'utf8'))).toMatchObject({
      purpose: 'the third',
      pid: process.pid,
    });
    third.release();
  });

  it('a file that is not a database (a torn write, a stranger) is set aside, not a lock that refuses every start', () => {
    const file = path.join(dir, 'b.lock');
    const garbage = 'not a sqlite file '.repeat(40);
    writeFileSync(file, garbage);
    const lock = taken(tryProcessLock(file, 'after the garbage'));
    const aside = readdirSync(dir).filter((f) => f.startsWith('b.lock.not-a-lock-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(path.join(dir, String(aside[0])), 'utf8')).toBe(garbage);
    expect(tryProcessLock(file, 'a second')).toMatchObject({ heldBy: expect.stringMatching(/^after the garbage, /) });
    lock.release();
  });

  it('a directory that is not there is an error naming the file', () => {
    const file = path.join(dir, 'missing', 'c.lock');
    expect(() => tryProcessLock(file, 'x')).toThrow(
      new RegExp(`^${file.replaceAll('.', '\\.')}: cannot take the lock: `),
    );
  });
});
