import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  compactLog,
  compactionRecords,
  replayableFrom,
  replayVersion,
  verifyLog,
  type EventLog,
} from '../../../libs/eventlog/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import type { DrivenVersion } from './support/random-history.ts';
import { retentionHistory } from './support/retention-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

// probe9 V1: retention now removes versions rows too, in its last phase, a slice a transaction;
// a SIGKILL between two of those steps must leave a log as consistent as one inside the others
// (retention-crash.test.ts kills the other phases).

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const KEEP = 5;
const SLICE = 16;

/**
 * Runs support/retention-crash-child.ts on `file`; with `killAfter`, SIGKILLs it once it said it
 * removed version rows that many times (it stalls after each such step, so the kill lands before
 * the next). Returns the lines it printed.
 */
async function runChild(file: string, killAfter?: number): Promise<string[]> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'support/retention-crash-child.ts'),
      file,
      String(KEEP),
      String(SLICE),
      ...(killAfter === undefined ? [] : ['1500']),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: string[] = [];
  let buf = '';
  try {
    await new Promise<void>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (code, sig) =>
        sig === 'SIGKILL' || code === 0 ? resolve() : reject(new Error(`child exited ${code} ${sig}`)),
      );
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          lines.push(line);
          if (
            line.startsWith('removed versions') &&
            lines.filter((l) => l.startsWith('removed versions')).length === killAfter
          )
            child.kill('SIGKILL');
        }
      });
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); // a failed assertion: never leave it running
  }
  return lines;
}

/** What must hold after a crash: the log verifies, every version it rebuilds rebuilds exactly, a planner restores. */
function expectConsistent(log: EventLog, recorded: readonly DrivenVersion[]): number {
  expect(verifyLog(log)).toMatchObject({ ok: true });
  const from = replayableFrom(log)!;
  for (const v of recorded.filter((x) => x.version >= from)) expect(replayVersion(log, v.version).hash).toBe(v.hash);
  expect(() => replayVersion(log, 1)).toThrow(/version 1 was compacted from the log/);
  expect(DataAxis.restore(log).latest()?.hash).toBe(recorded.at(-1)!.hash);
  return from;
}

describe('a crash while retention removes versions rows (probe9 V1)', () => {
  it('SIGKILL between two versions steps leaves a log that verifies and replays; the next run removes the rest', {
    timeout: 60_000,
  }, async () => {
    const file = tmp.file('retention-versions-crash.db');
    const log = await openLog(file, steppingClock());
    const recorded = retentionHistory(log, { seed: 1, steps: 300, checkpointEvery: 400 });
    const latest = log.latestVersion()!.version;
    // the events and ACK rows removed as before this change (no version row: maxVersionsId 0), as
    // an upgraded log holds them; the child's run then has only version rows to remove
    compactLog(log, latest - KEEP + 1, { atCheckpoint: true, maxVersionsId: 0 });
    expect(log.countVersions()).toBe(latest);
    log.close();
    expect(latest).toBeGreaterThan(4 * SLICE);

    const lines = await runChild(file, 2);
    expect(lines).not.toContain('done');
    let l = await openLog(file);
    try {
      // two versions steps committed, the third never started
      expect(lines.filter((x) => x.startsWith('removed versions'))).toEqual([
        `removed versions ${SLICE}`,
        `removed versions ${SLICE}`,
      ]);
      expect(l.countVersions()).toBe(latest - 2 * SLICE);
      expect(l.version(2 * SLICE)).toBeUndefined();
      expect(l.version(2 * SLICE + 1)).toBeDefined();
      expect(compactionRecords(l)[0]!.finishedAt).toBeUndefined();
      expectConsistent(l, recorded);
    } finally {
      l.close();
    }

    expect(await runChild(file)).toContain('done');
    l = await openLog(file);
    try {
      const from = expectConsistent(l, recorded);
      expect(from).toBeLessThanOrEqual(latest - KEEP + 1);
      // what is left: the versions from the one before the oldest it rebuilds (its parent) on
      expect(l.countVersions()).toBe(latest - from + 2);
      expect(compactionRecords(l)[0]!.finishedAt).toBeDefined();
    } finally {
      l.close();
    }
  });
});
