import { Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  createLogReplicator,
  rebuildAtSeq,
  samePosition,
  verifyLog,
  type EventLog,
} from '../../../libs/eventlog/index.ts';
import { checkpointAtOrBefore, writeCheckpoint } from '../../../libs/eventlog/checkpoints.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { EMPTY_POSITION, exportRows, importRows, type RowBatch } from '../../../libs/eventlog/log-rows.ts';
import { H, LogStreamReader, batchJson, encodeBatch, parseBatch } from '../../../libs/eventlog/replication-codec.ts';
import { snapshotBucket } from '../../../libs/eventlog/replication-snapshots.ts';
import { startNatsServer } from '../../support/nats-server.ts';
import { driveDataAxis, randomHistory } from './support/random-history.ts';
import { caughtUpWith, logReplica, replicaDigest, writeHistory } from './support/replicated-history.ts';
import { nodeEvent } from './support/node-event.ts';
import { piecedCheckpointAt } from './support/pieced-checkpoint.ts';
import { CHAIN_NAMES } from '../../../libs/eventlog/row-chain.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

function stored(log: EventLog, seq: number) {
  const db = databaseOf(log);
  return {
    row: db.prepare('SELECT objects, objects_hash, pieces FROM checkpoints WHERE seq = ?').get(seq) as {
      objects: string;
      objects_hash: string;
      pieces: number;
    },
    pieces: db.prepare('SELECT objects FROM checkpoint_pieces WHERE seq = ? ORDER BY piece').pluck().all(seq),
  };
}

describe('a checkpoint stored in pieces, shipped to a replica (rows and wire form)', () => {
  it('travels as its piece rows, never as one text; the replica stores the same pieces and refuses missing or edited ones', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    const replica = await openLog(tmp.file(), steppingClock());
    try {
      driveDataAxis(log, randomHistory({ seed: 11, steps: 150 }));
      const seq = Math.floor(log.lastSeq() / 2);
      piecedCheckpointAt(log, seq, 500);
      const leader = stored(log, seq);
      expect(leader.row.pieces).toBeGreaterThan(3);

      const b = exportRows(databaseOf(log), EMPTY_POSITION, { whole: true });
      const [cp] = b.checkpoints;
      expect(b.checkpoints).toHaveLength(1);
      // the stored row, objects '' and its piece count, then its reading revision (3, the latest: not the
      // default, so shipped); its pieces alongside, as stored
      expect(cp).toHaveLength(10);
      expect(cp![9]).toBe(4);
      expect(cp!.slice(0, 5)).toEqual([seq, expect.any(Number), expect.any(String), expect.any(Number), '']);
      expect(cp![8]).toBe(leader.row.pieces);
      expect(b.checkpointPieces?.map((p) => p[2])).toEqual(leader.pieces);
      expect(b.checkpointPieces?.map((p) => [p[0], p[1]])).toEqual(leader.pieces.map((_, i) => [seq, i]));

      // wire: no string longer than the largest piece row is parsed, and the batch comes back equal
      const { bytes, layout } = batchJson(b);
      expect(layout).toMatch(/^\d+:\d+(,\d+)+$/);
      const longestPiece = Math.max(...b.checkpointPieces!.map((p) => JSON.stringify(p).length));
      const parts = encodeBatch(b, 2, 4096);
      expect(parts.length).toBeGreaterThan(1);
      expect(parts.at(-1)!.headers[H.layout]).toBe(layout);
      expect(parts.slice(0, -1).every((m) => m.headers[H.layout] === undefined)).toBe(true);
      const spy = vi.spyOn(JSON, 'parse');
      let items;
      try {
        const reader = new LogStreamReader();
        items = parts.flatMap((m, i) => reader.read(i + 1, (k) => m.headers[k], m.payload));
        const pieceParses = spy.mock.calls.map((c) => (c[0] as string).length);
        expect(pieceParses.length).toBe(1 + b.checkpointPieces!.length);
        // the head (every chain's rows) is parsed alone, each piece row alone
        expect(Math.max(...pieceParses.slice(1))).toBe(longestPiece);
        expect(Math.max(...pieceParses)).toBeLessThan(bytes.length - longestPiece);
      } finally {
        spy.mockRestore();
      }
      expect(items).toEqual([{ kind: 'batch', seq: parts.length, term: 2, batch: b }]);
      // a layout that does not fit the bytes is named, not guessed at
      expect(() => parseBatch(bytes, 'batch x', '5:1,2')).toThrow(
        `batch x: its layout header "5:1,2" does not fit its ${bytes.length} bytes`,
      );

      // refused whole when a piece is missing or edited (one transaction: nothing written)
      const missing: RowBatch = { ...b, checkpointPieces: b.checkpointPieces!.filter((p) => p[1] !== 2) };
      expect(() => replica.importRows(missing)).toThrow(`import: checkpoint at seq ${seq}: piece 2 of`);
      const edited: RowBatch = {
        ...b,
        checkpointPieces: b.checkpointPieces!.map((p) =>
          p[1] === 1 ? [p[0], p[1], (p[2] as string).replace('"name":"', '"name":"x')] : p,
        ),
      };
      expect(() => replica.importRows(edited)).toThrow(
        `import: checkpoint at seq ${seq} in ${leader.row.pieces} pieces: objects hash mismatch`,
      );
      const stray: RowBatch = { ...b, checkpointPieces: [...b.checkpointPieces!, [seq + 1, 0, '[]']] };
      expect(() => replica.importRows(stray)).toThrow('import: 1 checkpoint pieces in the batch belong to no');
      expect(replica.position()).toEqual(EMPTY_POSITION);

      importRows(databaseOf(replica), items[0]!.kind === 'batch' ? items[0].batch : b);
      expect(stored(replica, seq)).toEqual(leader);
      expect(checkpointAtOrBefore(databaseOf(replica), seq)).toEqual(checkpointAtOrBefore(databaseOf(log), seq));
      expect(verifyLog(replica, { deep: true })).toMatchObject({ ok: true, rowsChecked: { checkpoints: 1 } });

      // a checkpoint that fits one piece keeps the wire form of the previous release: no pieces, no
      // layout; 8 cells, and 2 more (pieces 0, reading revision 4) since it is of the latest reading revision
      // (a revision-1 one ships the 8: reading-revision.test.ts)
      const one = await openLog(tmp.file(), steppingClock());
      try {
        driveDataAxis(one, randomHistory({ seed: 11, steps: 150 }));
        piecedCheckpointAt(one, seq, 1 << 30);
        const ob = exportRows(databaseOf(one), EMPTY_POSITION, { whole: true });
        expect(ob.checkpoints[0]).toHaveLength(10);
        expect(ob.checkpoints[0]!.slice(8)).toEqual([0, 4]);
        expect(ob.checkpoints[0]![5]).toBe(leader.row.objects_hash);
        expect('checkpointPieces' in ob).toBe(false);
        expect(batchJson(ob).layout).toBeUndefined();
        // and over it a pieced one at the same seq (a replica's checkpoint rewritten): no pieces left behind
        const none = Object.fromEntries(CHAIN_NAMES.map((c) => [c, []])) as unknown as RowBatch['rows'];
        importRows(databaseOf(replica), { ...ob, rows: none, from: replica.position(), to: replica.position() });
        expect(stored(replica, seq)).toEqual({
          row: { ...leader.row, objects: ob.checkpoints[0]![4], pieces: 0 },
          pieces: [],
        });
      } finally {
        one.close();
      }
    } finally {
      log.close();
      replica.close();
    }
  });
});

describe('a pieced checkpoint replicated over nats-server', () => {
  it('reaches a follower, and a replica bootstrapping from a snapshot, as the same pieces: verify passes, same hash', async () => {
    // max_payload 16 KiB: batches go as several parts, the pieces across them
    const nats = await startNatsServer({ jetstream: true, config: 'max_payload: 16384\n' });
    let nc: NatsConnection | undefined;
    const open: { log: EventLog; close(): Promise<void> }[] = [];
    try {
      nc = await connect({ servers: nats.url });
      const g = `cpp${process.pid}`;
      const lines: string[] = [];
      const replica = async (snapshotEveryRows = 0) => {
        const log = await openLog(tmp.file());
        const r = await createLogReplicator({
          log,
          nc: nc!,
          group: g,
          replicas: 1,
          logger: (l) => lines.push(l),
          id: `r${open.length}`,
          snapshotEveryRows,
          lagRefreshMs: 100,
        });
        open.push({ log, close: () => r.close().then(() => log.close()) });
        return { log, r };
      };
      const a = await replica(1);
      const b = await replica();
      await a.r.claim(1);
      const fb = b.r.follow();
      await fb.caughtUp;
      await writeHistory(a.log, { seed: 21, steps: 4, after: () => a.r.flush() });
      // past every checkpoint flushed, so the next flush ships it (a history step may end on a checkpoint)
      for (let i = 0; a.log.checkpoints().at(-1)!.seq >= a.log.lastSeq() && i < 10; i++)
        await writeHistory(a.log, { seed: 30 + i, steps: 1, after: async () => {} });
      const seq = a.log.lastSeq();
      piecedCheckpointAt(a.log, seq, 700);
      // enough after it that the leader snapshots (and trims the stream) with the pieces in
      await writeHistory(a.log, { seed: 22, steps: 20, after: () => a.r.flush() });
      const want = stored(a.log, seq);
      expect(want.row.pieces).toBeGreaterThan(3);
      const until = async (cond: () => boolean, what: string) => {
        const end = Date.now() + 20_000;
        // polling the follower's file: no event to await
        while (!cond()) {
          if (Date.now() > end) throw new Error(`timed out waiting for ${what}; log: ${lines.join(' | ')}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await until(() => samePosition(a.log.position(), b.log.position()), 'the follower to reach the leader');
      expect(lines.filter((l) => l.includes('skipped') || l.includes('failed'))).toEqual([]);
      expect(stored(b.log, seq)).toEqual(want);
      expect(verifyLog(b.log, { deep: true }).ok).toBe(true);
      expect(replicaDigest(b.log)).toEqual(replicaDigest(a.log));
      expect(checkpointAtOrBefore(databaseOf(b.log), seq)).toEqual(checkpointAtOrBefore(databaseOf(a.log), seq));

      // the leader snapshotted after flushes (snapshotEveryRows 1): a new replica starting from the
      // newest snapshot gets the pieces from it
      await a.r.close(); // waits for snapshots under way
      expect(lines.filter((l) => l.includes('trimmed below')).length).toBeGreaterThan(0);
      // the newest snapshot holds the pieces in its text form: one row a line, each piece read alone
      const snaps = await new Objm(nc).open(snapshotBucket(g));
      const newest = (await snaps.list())
        .map((i) => i.name)
        .sort((x, y) => Number(y.slice(4)) - Number(x.slice(4)))[0]!;
      expect((await snaps.info(newest))?.metadata?.format).toBe('lines');
      const c = await replica();
      await c.r.follow().caughtUp;
      expect(lines.some((l) => l.includes('caught up from snapshot'))).toBe(true);
      expect(stored(c.log, seq)).toEqual(want);
      expect(replicaDigest(c.log)).toEqual(replicaDigest(a.log));
      await fb.stop();
    } finally {
      for (const x of open) await x.close().catch(() => {});
      await nc?.close();
      await nats.stop();
    }
  }, 90_000);
});

/**
 * A leader (term 1) and a follower caught up with it, replicas of group `g` on a fresh
 * nats-server, for `body`; everything stopped after it, even when it fails.
 */
async function leaderAndFollower(
  g: string,
  body: (x: {
    a: Awaited<ReturnType<typeof logReplica>>;
    b: Awaited<ReturnType<typeof logReplica>>;
    lines: string[];
  }) => Promise<void>,
): Promise<void> {
  const nats = await startNatsServer({ jetstream: true });
  let nc: NatsConnection | undefined;
  const open: { close(): Promise<void> }[] = [];
  try {
    nc = await connect({ servers: nats.url });
    const lines: string[] = [];
    const replica = async () => {
      const x = await logReplica(nc!, g, { file: tmp.file(), lines });
      open.push({ close: () => x.r.close().then(() => x.log.close()) });
      return x;
    };
    const a = await replica();
    const b = await replica();
    await a.r.claim(1);
    const fb = b.r.follow();
    await fb.caughtUp;
    await body({ a, b, lines });
    await fb.stop();
  } finally {
    for (const x of open) await x.close().catch(() => {});
    await nc?.close();
    await nats.stop();
  }
}

describe('a follower applying a large pieced checkpoint', () => {
  it(
    'applies it in slices: its event loop turns while the pieces are checked and stored (one call held it 11–13 s at 10,000 services)',
    () =>
      leaderAndFollower(`cpq${process.pid}`, async ({ a, b, lines }) => {
        // ~24 MB of Nodes (a 40 KB annotation each) checkpointed in 1 MiB pieces
        const pad = 'p'.repeat(40_000);
        a.log.appendEvents(
          Array.from({ length: 600 }, (_, i) => {
            const e = nodeEvent(`n${i}`, i + 1);
            return {
              ...e,
              object: { ...(e.object as { metadata: object }), metadata: { name: `n${i}`, annotations: { pad } } },
            };
          }),
        );
        const seq = a.log.lastSeq();
        piecedCheckpointAt(a.log, seq, 1 << 20);
        expect(stored(a.log, seq).row.pieces).toBeGreaterThan(15);
        // the event-loop turns taken while the follower's import runs (0 if it ran in one call)
        let turns = 0;
        let ticking = true;
        const tick = () => {
          turns++;
          if (ticking) setImmediate(tick);
        };
        setImmediate(tick);
        const during: number[] = [];
        const importSteps = b.log.importRowsSteps.bind(b.log);
        b.log.importRowsSteps = function* (batch, opts) {
          const from = turns;
          yield* importSteps(batch, opts);
          if (batch.checkpointPieces) during.push(turns - from);
        };
        await a.r.flush();
        await caughtUpWith(b, a, 'the follower to store the pieced checkpoint');
        ticking = false;
        expect(lines.filter((l) => l.includes('skipped') || l.includes('failed') || l.includes('afresh'))).toEqual([]);
        expect(during).toHaveLength(1);
        expect(during[0]).toBeGreaterThanOrEqual(3);
        expect(stored(b.log, seq)).toEqual(stored(a.log, seq));
        expect(verifyLog(b.log, { deep: true }).ok).toBe(true);
      }),
    90_000,
  );

  it(
    "counts an apply in progress as progress: its stream watchdog (5 s without a message while behind) leaves a longer apply's consumer open",
    () =>
      leaderAndFollower(`cpw${process.pid}`, async ({ a, b, lines }) => {
        // the follower's next import takes 6 s in slices (a first checkpoint's batch at the envelope
        // takes seconds), while a second batch waits in the stream behind it
        const importSteps = b.log.importRowsSteps.bind(b.log);
        let slow = 1;
        let slowDone = false;
        b.log.importRowsSteps = function* (batch, opts) {
          if (slow-- > 0) {
            const end = performance.now() + 6000;
            while (performance.now() < end) yield;
            slowDone = true;
          }
          yield* importSteps(batch, opts);
        };
        a.log.appendEvents([nodeEvent('n1', 1)]);
        await a.r.flush();
        a.log.appendEvents([nodeEvent('n2', 2)]);
        await a.r.flush();
        await caughtUpWith(b, a, 'the follower to apply both batches');
        expect(slowDone).toBe(true);
        expect(lines.filter((l) => l.includes('afresh') || l.includes('failed'))).toEqual([]);
      }),
    60_000,
  );
});
