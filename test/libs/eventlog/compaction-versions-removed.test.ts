import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { compactionRecords, describeCompaction, OnlineRetention } from '../../../libs/eventlog/index.ts';
import { retentionHistory } from './support/retention-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

// The compactions table had no count of the version rows a run removes (its fourth phase, probe9
// V1): db status and /status said the events and ACK/NACK rows removed, never the version rows.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('a compaction record counts the version rows it removed (migration 0010)', () => {
  it('online retention records its versions removed, step by step, and db status says them', async () => {
    const file = tmp.file();
    const log = await openLog(file, steppingClock());
    try {
      retentionHistory(log, { seed: 8, steps: 150, checkpointEvery: 30, nodes: 2 });
      const r = new OnlineRetention({
        log,
        policy: { versions: 10 },
        bounds: () => ({ floors: [] }),
        sliceRows: 5, // the versions phase takes several steps: the count is each step's sum
      });
      await r.runOnce();
      const run = r.lastRun()!;
      expect(run.versionsRemoved).toBeGreaterThan(5);
      const rec = compactionRecords(log)[0]!;
      expect(rec).toMatchObject({ finishedAt: expect.any(String), versionsRemoved: run.versionsRemoved });
      expect(describeCompaction(rec)).toContain(
        `, ${rec.acksRemoved} ACK/NACK rows and ${run.versionsRemoved} version rows removed, keeping versions from`,
      );
    } finally {
      log.close();
    }
    // a record written before the column (NULL there) reads without a count, rather than claiming 0
    const db = new Database(file);
    db.prepare('UPDATE compactions SET versions_removed = NULL').run();
    db.close();
    const again = await openLog(file);
    try {
      const rec = compactionRecords(again)[0]!;
      expect(rec.versionsRemoved).toBeUndefined();
      expect(describeCompaction(rec)).toMatch(/ and \d+ ACK\/NACK rows removed, keeping versions from/);
    } finally {
      again.close();
    }
  });
});
