import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Compaction,
  compactionRecords,
  describeCompaction,
  OnlineRetention,
  policyKeepsFrom,
  replayableFrom,
} from '../../../libs/eventlog/index.ts';
import { retentionHistory } from './support/retention-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

// A SIGKILL after a compaction's last removal step, before its record was marked finished, left the
// `compactions` row unfinished for good: the next run had nothing to remove and made no record
// (retention-crash.test.ts hit it in CI). The state such a kill leaves is written here directly (the
// run's removals committed, its record's finished_at NULL), so the case is deterministic.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Clears the newest record's finished_at, in the file itself (the log closed): what the kill leaves. */
function leaveUnfinished(file: string): void {
  const db = new Database(file);
  try {
    db.prepare('UPDATE compactions SET finished_at = NULL WHERE id = (SELECT max(id) FROM compactions)').run();
  } finally {
    db.close();
  }
}

describe('a compaction record left unfinished after its last removal (retention-crash gap)', () => {
  it('the next run, with nothing to remove, marks it finished and names itself; the record says so', async () => {
    const file = tmp.file();
    let log = await openLog(file, steppingClock());
    retentionHistory(log, { seed: 5, steps: 120, checkpointEvery: 40 });
    const retention = (l: typeof log) =>
      new OnlineRetention({ log: l, policy: { versions: 10 }, bounds: () => ({ floors: [] }), sliceRows: 50 });
    // until a run finds nothing more (a second one may cut at the checkpoint the first wrote)
    for (let id = 0; compactionRecords(log)[0]?.id !== id; ) {
      id = compactionRecords(log)[0]?.id ?? 0;
      await retention(log).runOnce();
    }
    const done = compactionRecords(log)[0]!;
    expect(done.finishedAt).toBeDefined();
    expect(done.finishedBy).toBeUndefined();
    expect(done.eventsRemoved).toBeGreaterThan(0);
    log.close();

    leaveUnfinished(file);
    log = await openLog(file, steppingClock(Date.parse('2026-01-01T00:00:00Z')));
    try {
      expect(compactionRecords(log)[0]!.finishedAt).toBeUndefined();
      expect(describeCompaction(compactionRecords(log)[0]!)).toMatch(/UNFINISHED/);
      const oldest = log.oldestSeq();
      const lines: string[] = [];
      const r = new OnlineRetention({
        log,
        policy: { versions: 10 },
        bounds: () => ({ floors: [] }),
        say: (l) => lines.push(l),
      });
      await r.runOnce();
      expect(r.status().error).toBeUndefined();
      // nothing was removed and no new record was made: the left one is finished
      expect(log.oldestSeq()).toBe(oldest);
      expect(r.lastRun()).toBeUndefined();
      const recs = compactionRecords(log);
      expect(recs[0]).toMatchObject({
        id: done.id,
        finishedBy: 'planner',
        eventsRemoved: done.eventsRemoved,
        steps: done.steps,
      });
      expect(recs[0]!.finishedAt! >= '2026-01-01').toBe(true);
      expect(describeCompaction(recs[0]!)).toMatch(/marked finished by a later planner run/);
      expect(lines).toEqual([
        `retention: compaction record ${done.id} was left unfinished after its last removal; marked finished`,
      ]);
      // said once: the next idle run finds nothing left
      await r.runOnce();
      expect(lines).toHaveLength(1);
    } finally {
      log.close();
    }
  });

  it('a run killed part way at the target the log already rebuilds from is gone on with by the next run', async () => {
    // What retention-crash.test.ts met now and then: the killed run wrote its checkpoints first, so
    // replayableFrom already reached its target while events up to its cut remained; the next run
    // at the same target planned only version rows, so they (and its unfinished record) stayed.
    const log = await openLog(tmp.file(), steppingClock());
    try {
      // no periodic checkpoint: the one the run writes at its cut is the first past the anchor
      retentionHistory(log, { seed: 7, steps: 120, checkpointEvery: 100_000 });
      const policy = { versions: 10 };
      const target = policyKeepsFrom(log, policy, new Date())!;
      const c = Compaction.plan(log, target, { by: 'planner' });
      c.step(); // the checkpoints (one at the cut) and the record
      c.step(20); // 20 events, past the checkpoints it wrote for pins of old content: killed here
      const left = compactionRecords(log)[0]!;
      expect(left.finishedAt).toBeUndefined();
      expect(log.oldestSeq()).toBeLessThan(left.cutSeq);
      expect(replayableFrom(log)).toBe(target); // the state: nothing below the target looks left to do
      const r = new OnlineRetention({ log, policy, bounds: () => ({ floors: [] }) });
      await r.runOnce();
      expect(r.status().error).toBeUndefined();
      expect(log.oldestSeq()).toBe(left.cutSeq + 1);
      expect(replayableFrom(log)).toBe(target);
      const [now, before] = compactionRecords(log, 2);
      expect(now).toMatchObject({ beforeVersion: target, finishedAt: expect.any(String) });
      expect(now!.eventsRemoved).toBe(left.cutSeq - 20);
      // the killed run's record says what it did, and that it stopped part way (the next run marks it)
      expect(before).toEqual({
        ...left,
        stopped: { at: expect.any(String), why: expect.stringMatching(/^its process ended during the run/) },
      });
    } finally {
      log.close();
    }
  });

  it('a record whose run stopped part way (its cut not reached) stays unfinished while a floor holds the rest, marked stopped by the next run', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      retentionHistory(log, { seed: 6, steps: 120, checkpointEvery: 40 });
      const latest = log.latestVersion()!.version;
      const c = Compaction.plan(log, latest - 10, { by: 'planner' });
      c.step(); // the checkpoints and the record
      c.step(20); // 20 events: the run is cut there
      expect(c.finished).toBe(false);
      const left = compactionRecords(log)[0]!;
      expect(left.finishedAt).toBeUndefined();
      expect(log.oldestSeq()).toBeLessThan(left.cutSeq);
      // a node still runs version 2: nothing more may go, and the stopped run is not finished either
      const from = replayableFrom(log)!;
      const r = new OnlineRetention({
        log,
        policy: { versions: 10 },
        bounds: () => ({ floors: [{ version: Math.min(2, from), why: 'node node-9' }] }),
      });
      await r.runOnce();
      expect(r.status().error).toBeUndefined();
      // it stays unfinished (nothing finished it), marked stopped: not "the next run goes on"
      const why = 'its process ended during the run (killed, crashed, or stopped by an older release)';
      expect(compactionRecords(log, 5)).toEqual([{ ...left, stopped: { at: expect.any(String), why } }]);
      expect(describeCompaction(compactionRecords(log)[0]!)).toMatch(
        new RegExp(`^${left.startedAt} by planner, STOPPED part way at \\S+ \\(its process ended during the run`),
      );
      expect(describeCompaction(compactionRecords(log)[0]!)).not.toMatch(/goes on|UNFINISHED/);
    } finally {
      log.close();
    }
  });
});
