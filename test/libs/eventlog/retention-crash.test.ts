import { spawn } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
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

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const KEEP = 5;
const SLICE = 16;

/**
 * Runs the child's retention on `file` and SIGKILLs it once it said it removed rows `after` times
 * (it steps on back to back meanwhile, so the kill lands inside a later step's transaction or
 * between two); `after` undefined: lets it finish. Returns whether it was killed before 'done'.
 */
async function runChild(file: string, after?: number): Promise<boolean> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'support/retention-crash-child.ts'),
      file,
      String(KEEP),
      String(SLICE),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let buf = '';
  let steps = 0;
  let done = false;
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
        if (line === 'done') done = true;
        else if (line.startsWith('error')) reject(new Error(`child: ${line}`));
        else if (line.startsWith('removed') && ++steps === after) child.kill('SIGKILL');
      }
    });
  });
  return !done;
}

/** What must hold after any crash: the log verifies, every version it still rebuilds rebuilds exactly, a planner restores. */
function expectConsistent(log: EventLog, recorded: readonly DrivenVersion[]): number {
  expect(verifyLog(log)).toMatchObject({ ok: true });
  const from = replayableFrom(log)!;
  for (const v of recorded.filter((x) => x.version >= from)) expect(replayVersion(log, v.version).hash).toBe(v.hash);
  // one before it says it was compacted, never gives another hash
  if (from > 1) expect(() => replayVersion(log, from - 1)).toThrow(/compacted/);
  const axis = DataAxis.restore(log);
  expect(axis.latest()?.hash).toBe(recorded.at(-1)!.hash);
  return from;
}

describe('a crash in the middle of online retention', () => {
  it('SIGKILL part way leaves a log that verifies and replays every retained version bit for bit; the next run finishes', {
    timeout: 120_000,
  }, async () => {
    const file = tmp.file('retention-crash.db');
    const log = await openLog(file, steppingClock());
    const recorded = retentionHistory(log, { seed: 23, steps: 200, checkpointEvery: 400 });
    const latest = log.latestVersion()!.version;
    const events = log.lastSeq();
    log.close();
    expect(events).toBeGreaterThan(40 * SLICE);

    // where an uninterrupted run ends, on a copy of the same file: the crashed runs must end there too
    const control = tmp.file('retention-control.db');
    copyFileSync(file, control);
    if (existsSync(`${file}-wal`)) copyFileSync(`${file}-wal`, `${control}-wal`);
    expect(await runChild(control)).toBe(false);
    const c = await openLog(control);
    const uninterruptedFrom = expectConsistent(c, recorded);
    c.close();
    expect(uninterruptedFrom).toBeGreaterThan(1);

    let killedMidRun = 0;
    let oldest = 1;
    let removed = 0;
    for (const after of [2, 9]) {
      const killed = await runChild(file, after);
      const l = await openLog(file);
      try {
        const from = expectConsistent(l, recorded);
        const rec = compactionRecords(l)[0]!;
        if (killed) {
          // cut short: recorded as unfinished, with what it removed by its last commit
          killedMidRun++;
          expect(rec.finishedAt).toBeUndefined();
        }
        // each run goes on from where the one before stopped
        expect(l.oldestSeq()).toBeGreaterThan(removed);
        expect(from).toBeGreaterThanOrEqual(oldest);
        removed = l.oldestSeq() - 1;
        oldest = from;
      } finally {
        l.close();
      }
    }
    expect(killedMidRun).toBeGreaterThan(0);
    // run to the end: the newest KEEP versions (back to the checkpoint before them) stay
    expect(await runChild(file)).toBe(false);
    const l = await openLog(file);
    try {
      const from = expectConsistent(l, recorded);
      expect(from).toBeLessThanOrEqual(latest - KEEP + 1);
      // not `> oldest`: the last killed run may have finished its removals before the kill landed
      expect(from).toBeGreaterThanOrEqual(oldest);
      expect(from).toBe(uninterruptedFrom);
      // a run that removed rows finishes its record; one with nothing left finishes the one a killed
      // run left after its last removal (retention-left-record.test.ts builds that state)
      expect(compactionRecords(l)[0]!.finishedAt).toBeDefined();
    } finally {
      l.close();
    }
  });
});
