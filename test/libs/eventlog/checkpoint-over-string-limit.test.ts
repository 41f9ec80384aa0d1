import { afterAll, describe, expect, it } from 'vitest';
import { verifyLog } from '../../../libs/eventlog/index.ts';
import { checkpointAtOrBefore, writeCheckpoint } from '../../../libs/eventlog/checkpoints.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import type { KubeObject } from '../../../libs/model/index.ts';
import { ClusterState } from '../../../libs/planner/index.ts';
import { MAX_STRING, nodesPastStringLimit } from './support/over-string-limit.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('an event-log checkpoint longer than V8 can hold in one string', () => {
  // 13,500 Nodes, each with a 40 KB annotation (objects keep annotations): ~545 M characters of
  // JSON, past 2^29 - 24, where the one-text writer threw 'Invalid string length'. The state
  // shares one annotation string, so the test holds ~0.6 GB (the read-back copy), not more.
  it('is stored in pieces and read back whole, hash verified', { timeout: 600_000 }, async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      const { objects, pad } = nodesPastStringLimit();
      const state = ClusterState.fromObjects(objects);
      const db = databaseOf(log);
      const cp = writeCheckpoint(db, { state, rejections: [], seq: 1, version: 1, createdAt: '2025-01-01T00:00:00Z' });
      const stored = db
        .prepare(
          'SELECT count(*) AS pieces, sum(length(objects)) AS chars, max(length(objects)) AS largest FROM checkpoint_pieces WHERE seq = 1',
        )
        .get() as { pieces: number; chars: number; largest: number };
      expect(stored.chars).toBeGreaterThan(MAX_STRING);
      expect(stored.largest).toBeLessThanOrEqual(32 * 1024 * 1024);
      expect(stored.pieces).toBeGreaterThan(16);
      expect(verifyLog(log)).toMatchObject({ ok: true, rowsChecked: { checkpoints: 1 } });

      const back = checkpointAtOrBefore(db, 1)!;
      expect(back.objects).toHaveLength(13_500);
      expect((back.objects[13_499] as KubeObject).meta.annotations.pad).toBe(pad);
      expect(ClusterState.fromObjects(back.objects).hash()).toBe(cp.dataHash);
    } finally {
      log.close();
    }
  });
});
