import { totalmem } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyLog } from '../../../libs/eventlog/index.ts';
import { checkpointAtOrBefore, writeCheckpoint } from '../../../libs/eventlog/checkpoints.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { EMPTY_POSITION, exportRows, importRows } from '../../../libs/eventlog/log-rows.ts';
import { LogStreamReader, encodeBatch } from '../../../libs/eventlog/replication-codec.ts';
import type { KubeObject } from '../../../libs/model/index.ts';
import { ClusterState } from '../../../libs/planner/index.ts';
import { MAX_STRING, nodesPastStringLimit } from './support/over-string-limit.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('replicating an event-log checkpoint longer than V8 can hold in one string', () => {
  // As checkpoint-over-string-limit.test.ts: 13,500 Nodes with a 40 KB annotation, ~545 M
  // characters of JSON. Before pieces travelled as pieces, exportRows threw 'too large to ship as
  // one row' (and the reader parsed a batch as one string). Holds ~3 GB at its peak.
  // Skipped where the machine has under 8 GiB: ~3.4 GB at its peak (leader batch, joined parts,
  // replica copy) next to the rest of the parallel suite would get processes OOM-killed there.
  it.skipIf(totalmem() < 8 * 2 ** 30)(
    'goes through the wire form (1 MiB parts) as pieces and is stored, verified and read back on the replica',
    {
      timeout: 600_000,
    },
    async () => {
      const leader = await openLog(tmp.file(), steppingClock());
      const replica = await openLog(tmp.file(), steppingClock());
      try {
        const { objects, pad } = nodesPastStringLimit();
        const state = ClusterState.fromObjects(objects);
        const cp = writeCheckpoint(databaseOf(leader), {
          state,
          rejections: [],
          seq: 1,
          version: 1,
          createdAt: '2025-01-01T00:00:00Z',
        });
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
        leader.close();
        replica.close();
      }
    },
  );
});
