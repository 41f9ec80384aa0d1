import { afterAll, describe, expect, it } from 'vitest';
import { OnlineRetention } from '../../../libs/eventlog/index.ts';
import { retentionHistory } from './support/retention-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

// A claim that seeds a group (no batch in the stream, no mark) needs where a whole export of the
// file starts; it exported the whole file for that (seconds on the planner's thread at the envelope).

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('EventLog.anchorPosition', () => {
  it("is where a whole export starts, on a new file and once retention has moved the chains' anchors", async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      expect(log.anchorPosition()).toEqual(log.exportRows(log.position(), { whole: true }).from);
      retentionHistory(log, { seed: 9, steps: 120, checkpointEvery: 40 });
      const before = log.anchorPosition();
      expect(before).toEqual(log.exportRows(log.position(), { whole: true }).from);
      await new OnlineRetention({
        log,
        policy: { versions: 10 },
        bounds: () => ({ floors: [] }),
        sliceRows: 50,
      }).runOnce();
      const after = log.anchorPosition();
      expect(after.chains.events.id).toBeGreaterThan(before.chains.events.id);
      expect(after).toEqual(log.exportRows(log.position(), { whole: true }).from);
    } finally {
      log.close();
    }
  });
});
