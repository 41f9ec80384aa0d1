import { afterAll, describe, expect, it } from 'vitest';
import { rebuildAtSeq, replayVersion, verifyLog, type EventLog } from '../../../libs/eventlog/index.ts';
import { checkpointAtOrBefore, writeCheckpoint } from '../../../libs/eventlog/checkpoints.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { exportRows, importRows, EMPTY_POSITION } from '../../../libs/eventlog/log-rows.ts';
import { byCodeUnit, keyOf, sha256Hex, type ReadingRevision } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { driveDataAxis, randomHistory } from './support/random-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Writes a checkpoint of the state at `seq` (as the planner would), in pieces of `pieceChars`. */
function checkpointAt(log: EventLog, seq: number, pieceChars?: number, readingRevision?: ReadingRevision) {
  const r = rebuildAtSeq(log, seq, readingRevision ? { readingRevision } : {});
  return writeCheckpoint(databaseOf(log), {
    state: r.state,
    rejections: r.rejections.values(),
    seq,
    version: log.latestVersion()?.version ?? 0,
    createdAt: '2025-01-01T00:00:00.000Z',
    ...(pieceChars ? { pieceChars } : {}),
  });
}

function row(log: EventLog, seq: number) {
  return databaseOf(log).prepare('SELECT * FROM checkpoints WHERE seq = ?').get(seq) as {
    objects: string;
    objects_hash: string;
    pieces: number;
  };
}

function pieceCount(log: EventLog, seq: number): number {
  return (
    databaseOf(log).prepare('SELECT count(*) AS n FROM checkpoint_pieces WHERE seq = ?').get(seq) as { n: number }
  ).n;
}

describe('event-log checkpoints stored in pieces', () => {
  it('a checkpoint past one piece is stored in bounded pieces with the one-text hash, and replays every version exactly', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      const recorded = driveDataAxis(log, randomHistory({ seed: 5, steps: 250 }));
      const last = log.lastSeq();
      const seqs = [Math.floor(last / 4), Math.floor(last / 2), Math.floor((3 * last) / 4)];
      for (const seq of seqs) {
        checkpointAt(log, seq); // one text: the form every row had before pieces
        const one = row(log, seq);
        expect(one.pieces).toBe(0);
        const before = checkpointAtOrBefore(databaseOf(log), seq)!;
        checkpointAt(log, seq, 600);
        const pieced = row(log, seq);
        expect(pieced.objects).toBe('');
        expect(pieced.pieces).toBeGreaterThan(3);
        expect(pieceCount(log, seq)).toBe(pieced.pieces);
        const texts = databaseOf(log)
          .prepare('SELECT objects FROM checkpoint_pieces WHERE seq = ? ORDER BY piece')
          .pluck()
          .all(seq) as string[];
        // bounded: only a piece of one object larger than the bound is longer
        for (const t of texts) if (t.length > 600) expect((JSON.parse(t) as unknown[]).length).toBe(1);
        expect(texts.filter((t) => t.length <= 600).length).toBeGreaterThan(1);
        expect(pieced.objects_hash).toBe(one.objects_hash);
        expect(checkpointAtOrBefore(databaseOf(log), seq)).toEqual(before);
        expect(rebuildAtSeq(log, seq + 1).checkpointSeq).toBe(seq);
      }
      for (const { version, hash } of recorded) expect(replayVersion(log, version).hash, `v${version}`).toBe(hash);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true, rowsChecked: { checkpoints: 3 } });

      // a replica takes the pieced checkpoints as pieces (log-rows.ts), and reads the same objects
      const replica = await openLog(tmp.file(), steppingClock());
      try {
        importRows(databaseOf(replica), exportRows(databaseOf(log), EMPTY_POSITION, { whole: true }));
        for (const seq of seqs) {
          expect(row(replica, seq)).toMatchObject({
            pieces: row(log, seq).pieces,
            objects_hash: row(log, seq).objects_hash,
          });
          expect(checkpointAtOrBefore(databaseOf(replica), seq)).toEqual(checkpointAtOrBefore(databaseOf(log), seq));
        }
        expect(verifyLog(replica, { deep: true }).ok).toBe(true);
      } finally {
        replica.close();
      }

      // damage is named: an edited piece, a missing piece; deleting the checkpoint takes its pieces
      const db = databaseOf(log);
      const [a, b] = seqs;
      db.prepare(
        `UPDATE checkpoint_pieces SET objects = replace(objects, '"name":"', '"name":"x') WHERE seq = ? AND piece = 1`,
      ).run(a);
      expect(verifyLog(log).problems).toEqual([
        { table: 'checkpoints', row: a, problem: 'objects do not match their hash (edited)' },
      ]);
      expect(() => rebuildAtSeq(log, a!)).toThrow(`checkpoint at seq ${a} is damaged (objects hash mismatch)`);
      db.prepare('DELETE FROM checkpoint_pieces WHERE seq = ? AND piece = 2').run(b);
      expect(() => rebuildAtSeq(log, b!)).toThrow(
        `checkpoint at seq ${b} is damaged (piece 2 of ${row(log, b!).pieces} is missing)`,
      );
      db.prepare('DELETE FROM checkpoints WHERE seq = ?').run(b);
      expect(pieceCount(log, b!)).toBe(0);
    } finally {
      log.close();
    }
  });

  it('a row written before pieces (one text, no pieces column) still reads and verifies', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      // the previous release read with reading revision 1 (libs/model/reading-revision.ts)
      const recorded = driveDataAxis(log, randomHistory({ seed: 6, steps: 120 }), {
        axis: DataAxis.restore(log, { readingRevision: 1 }),
      });
      const seq = Math.floor(log.lastSeq() / 2);
      const r = rebuildAtSeq(log, seq, { readingRevision: 1 });
      checkpointAt(log, seq, 500, 1);
      const expected = checkpointAtOrBefore(databaseOf(log), seq, 1);
      // the previous release's writeCheckpoint, verbatim (migration 0004 gives such rows pieces = 0)
      const db = databaseOf(log);
      db.prepare('DELETE FROM checkpoints').run();
      const objects = JSON.stringify([...r.state.objects()].sort((x, y) => byCodeUnit(keyOf(x), keyOf(y))));
      const rejections = JSON.stringify([...r.rejections.values()].sort((x, y) => x.seq - y.seq));
      db.prepare(`INSERT OR REPLACE INTO checkpoints (seq, version, data_hash, object_count, objects, objects_hash, rejections, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
        seq,
        log.latestVersion()!.version,
        r.state.hash(),
        [...r.state.objects()].length,
        objects,
        sha256Hex(rejections === '[]' ? objects : `${objects}\n${rejections}`),
        rejections,
        '2025-01-01T00:00:00.000Z',
      );
      expect(row(log, seq).pieces).toBe(0);
      expect(checkpointAtOrBefore(db, seq, 1)).toEqual(expected);
      for (const { version, hash } of recorded) expect(replayVersion(log, version).hash).toBe(hash);
      expect(verifyLog(log, { deep: true }).ok).toBe(true);
    } finally {
      log.close();
    }
  });

  it('pieces held as UTF-8 until stored are stored as TEXT, the same characters (non-ASCII too) as one text holds', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      const axis = DataAxis.restore(log);
      const names = ['café', 'naïve-😀', 'plain', 'zürich-日本'];
      axis.ingest(
        names.map((name, i) => ({
          kind: 'Service' as const,
          type: 'ADDED' as const,
          origin: 'watch' as const,
          namespace: 'default',
          name: `s${i}`,
          uid: `u${i}`,
          resourceVersion: String(i + 1),
          object: {
            apiVersion: 'v1',
            kind: 'Service',
            metadata: {
              name: `s${i}`,
              namespace: 'default',
              annotations: { 'service.kubernetes.io/topology-mode': name },
            },
            spec: { clusterIP: `10.96.0.${i + 1}`, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
          },
        })),
      );
      axis.sync();
      const seq = log.lastSeq();
      checkpointAt(log, seq); // one text
      const one = row(log, seq);
      expect(one.objects).toContain('😀');
      checkpointAt(log, seq, 300); // a piece an object
      const db = databaseOf(log);
      const pieces = db
        .prepare('SELECT typeof(objects) AS type, objects FROM checkpoint_pieces WHERE seq = ? ORDER BY piece')
        .all(seq) as { type: string; objects: string }[];
      expect(pieces.length).toBeGreaterThan(2);
      expect(pieces.map((p) => p.type)).toEqual(pieces.map(() => 'text'));
      expect(`[${pieces.map((p) => p.objects.slice(1, -1)).join(',')}]`).toBe(one.objects);
      expect(row(log, seq).objects_hash).toBe(one.objects_hash);
      expect(verifyLog(log, { deep: true }).ok).toBe(true);
    } finally {
      log.close();
    }
  });
});
