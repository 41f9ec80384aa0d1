import { afterAll, describe, expect, it } from 'vitest';
import {
  Compaction,
  compactLog,
  compactionRecords,
  describeCompaction,
  OnlineRetention,
  replayableFrom,
  type RetentionFloor,
} from '../../../libs/eventlog/index.ts';
import { retentionHistory } from './support/retention-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

// What an operator read of a retention run that ended part way (`ctl status`, /status, `db status`
// describe the newest compaction record): "UNFINISHED (stopped part way; the next run goes on)",
// for as long as nothing made a newer record. A planner that stopped (shut down, stepped down) or a
// pin that came during the run (the run stops: online-retention.ts) left that line while the pin
// held, days maybe, and no run went on with it; and a run in progress read the same, "stopped part
// way", on /status between its steps. Now the record says which: UNDER WAY, or STOPPED part way
// at T (why), and an unmarked one left by a process that died is marked by the next run.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('a retention run that ends part way', () => {
  it('stopped by the planner: its record says STOPPED and why, also after a later run held by a floor', async () => {
    const file = tmp.file();
    const log = await openLog(file, steppingClock());
    try {
      retentionHistory(log, { seed: 5, steps: 120, checkpointEvery: 40 });
      const policy = { versions: 10 };
      const seen: string[] = [];
      let r!: OnlineRetention;
      r = new OnlineRetention({
        log,
        policy,
        bounds: () => ({ floors: [] }),
        sliceRows: 10,
        // after each step that removed rows, what /status says of the record now
        onRemoved: () => void seen.push(describeCompaction(r.status().lastCompaction!)),
      });
      const run = r.runOnce();
      await r.stop(); // between two steps: the run ends there
      await run;
      expect(seen.length).toBeGreaterThan(0);
      for (const line of seen) expect(line).toMatch(/^\S+ by planner, UNDER WAY: \d+ events/);
      const rec = compactionRecords(log)[0]!;
      expect(rec.finishedAt).toBeUndefined();
      expect(rec.stopped).toEqual({
        at: expect.any(String),
        why: 'the planner stopped (shut down, or stepped down as leader)',
      });
      expect(log.oldestSeq()).toBeLessThan(rec.cutSeq); // it did stop part way
      const said = describeCompaction(rec);
      expect(said).toMatch(
        /^\S+ by planner, STOPPED part way at \S+ \(the planner stopped \(shut down, or stepped down as leader\)\): \d+ events .* so far .*; later runs remove the rest, each with its own record$/,
      );

      // the next planner is held by a pin below everything: it removes nothing and makes no record;
      // the stopped one still says it stopped, never "UNFINISHED … the next run goes on"
      const pin: RetentionFloor = { version: 1, why: 'the data pin to version 1' };
      const next = new OnlineRetention({ log, policy, bounds: () => ({ floors: [pin] }) });
      await next.runOnce();
      expect(next.status().error).toBeUndefined();
      expect(compactionRecords(log, 5)).toEqual([rec]);
      expect(describeCompaction(next.status().lastCompaction!)).toBe(said);
    } finally {
      log.close();
    }
  });

  it('stopped by a pin that came during it: its record names the pin', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      retentionHistory(log, { seed: 6, steps: 120, checkpointEvery: 40 });
      const floors: RetentionFloor[] = [];
      const r = new OnlineRetention({
        log,
        policy: { versions: 10 },
        bounds: () => ({ floors }),
        sliceRows: 10,
        // a pin of the oldest version the log rebuilds, accepted between two steps
        onRemoved: () => {
          if (floors.length === 0) floors.push({ version: replayableFrom(log)!, why: 'the data pin to version P' });
        },
      });
      await r.runOnce();
      const rec = compactionRecords(log)[0]!;
      expect(rec.finishedAt).toBeUndefined();
      expect(rec.stopped).toEqual({ at: expect.any(String), why: 'the data pin to version P came during it' });
      expect(describeCompaction(rec)).toMatch(/STOPPED part way at \S+ \(the data pin to version P came during it\)/);
    } finally {
      log.close();
    }
  });

  it('killed part way (a db compact interrupted): the next db compact marks its record stopped, then makes its own', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      retentionHistory(log, { seed: 8, steps: 120, checkpointEvery: 40 });
      const target = log.latestVersion()!.version - 10;
      const killed = Compaction.plan(log, target, { by: 'db compact' });
      killed.step(); // the checkpoints and the record
      killed.step(20); // 20 events: the process is killed here
      const left = compactionRecords(log)[0]!;
      expect(left.finishedAt).toBeUndefined();
      expect(describeCompaction(left)).toMatch(/UNFINISHED \(under way, or its process ended during it/);
      compactLog(log, target, { by: 'db compact' });
      const [now, before] = compactionRecords(log, 2);
      expect(now).toMatchObject({ by: 'db compact', finishedAt: expect.any(String) });
      expect(before).toEqual({
        ...left,
        stopped: {
          at: expect.any(String),
          why: 'its process ended during the run (killed, crashed, or stopped by an older release)',
        },
      });
    } finally {
      log.close();
    }
  });
});
