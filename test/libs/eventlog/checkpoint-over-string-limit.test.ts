import { totalmem } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { type EventLog, verifyLog } from '../../../libs/eventlog/index.ts';
import {
  CHECKPOINT_PIECE_CHARS,
  type Checkpoint,
  checkpointAtOrBefore,
  writeCheckpoint,
} from '../../../libs/eventlog/checkpoints.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { EMPTY_POSITION, exportRows, importRows } from '../../../libs/eventlog/log-rows.ts';
import { LogStreamReader, encodeBatch } from '../../../libs/eventlog/replication-codec.ts';
import type { KubeObject } from '../../../libs/model/index.ts';
import { ClusterState } from '../../../libs/planner/index.ts';
import { MAX_STRING, nodesPastStringLimit } from './support/over-string-limit.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();

// 13,500 Nodes, each with a 40 KB annotation (objects keep annotations): ~545 M characters of
// JSON, past 2^29 - 24, where the one-text writer threw 'Invalid string length'. Written once, by
// whichever test runs first (~a third of each test's time when each wrote its own), and only read
// by both, so neither depends on the other or on their order; a failed write fails both tests.
// The state shares one annotation string and is dropped once written: what stays between the
// tests is the log file and the checkpoint's figures.
let written: Promise<{ leader: EventLog; cp: Checkpoint; pad: string }> | undefined;
function leaderWithCheckpoint(): Promise<{ leader: EventLog; cp: Checkpoint; pad: string }> {
  written ??= (async () => {
    const leader = await openLog(tmp.file(), steppingClock());
    try {
      const { objects, pad } = nodesPastStringLimit();
      const cp = writeCheckpoint(databaseOf(leader), {
        state: ClusterState.fromObjects(objects),
        rejections: [],
        seq: 1,
        version: 1,
        createdAt: '2025-01-01T00:00:00Z',
      });
      return { leader, cp, pad };
    } catch (e) {
      leader.close();
      throw e;
    }
  })();
  return written;
}
afterAll(async () => {
  (await written?.catch(() => undefined))?.leader.close();
  tmp.cleanup();
});

describe('an event-log checkpoint longer than V8 can hold in one string', () => {
  // Holds ~0.6 GB (the read-back copy), not more.
  it('is stored in pieces and read back whole, hash verified', { timeout: 600_000 }, async () => {
    const { leader, cp, pad } = await leaderWithCheckpoint();
    const db = databaseOf(leader);
    const stored = db
      .prepare(
        'SELECT count(*) AS pieces, sum(length(objects)) AS chars, max(length(objects)) AS largest FROM checkpoint_pieces WHERE seq = 1',
      )
      .get() as { pieces: number; chars: number; largest: number };
    expect(stored.chars).toBeGreaterThan(MAX_STRING);
    expect(stored.largest).toBeLessThanOrEqual(CHECKPOINT_PIECE_CHARS);
    expect(stored.pieces).toBeGreaterThan(MAX_STRING / CHECKPOINT_PIECE_CHARS);
    expect(verifyLog(leader)).toMatchObject({ ok: true, rowsChecked: { checkpoints: 1 } });

    const back = checkpointAtOrBefore(db, 1)!;
    expect(back.objects).toHaveLength(13_500);
    expect((back.objects[13_499] as KubeObject).meta.annotations.pad).toBe(pad);
    expect(ClusterState.fromObjects(back.objects).hash()).toBe(cp.dataHash);
  });
});

describe('replicating an event-log checkpoint longer than V8 can hold in one string', () => {
  // Before pieces travelled as pieces, exportRows threw 'too large to ship as one row' (and the
  // reader parsed a batch as one string). Skipped where the machine has under 8 GiB: ~3.4 GB at
  // its peak (leader batch, joined parts, replica copy) next to the rest of the parallel suite
  // would get processes OOM-killed there.
  it.skipIf(totalmem() < 8 * 2 ** 30)(
    'goes through the wire form (1 MiB parts) as pieces and is stored, verified and read back on the replica',
    { timeout: 600_000 },
    async () => {
      const { leader, cp, pad } = await leaderWithCheckpoint();
      const replica = await openLog(tmp.file(), steppingClock());
      try {
        const batch = exportRows(databaseOf(leader), EMPTY_POSITION, { whole: true });
        const chars = batch.checkpointPieces!.reduce((n, p) => n + (p[2] as string).length, 0);
        expect(chars).toBeGreaterThan(MAX_STRING);
        const parts = encodeBatch(batch, 1, 1024 * 1024);
        const reader = new LogStreamReader();
        const items = parts.flatMap((m, i) => reader.read(i + 1, (k) => m.headers[k], m.payload));
        expect(items.map((i) => i.kind)).toEqual(['batch']);
        const got = items[0]!.kind === 'batch' ? items[0].batch : batch;
        importRows(databaseOf(replica), got);
        expect(verifyLog(replica)).toMatchObject({ ok: true, rowsChecked: { checkpoints: 1 } });
        const back = checkpointAtOrBefore(databaseOf(replica), 1)!;
        expect(back.objects).toHaveLength(13_500);
        expect((back.objects[13_499] as KubeObject).meta.annotations.pad).toBe(pad);
        expect(ClusterState.fromObjects(back.objects).hash()).toBe(cp.dataHash);
      } finally {
        replica.close();
      }
    },
  );
});
