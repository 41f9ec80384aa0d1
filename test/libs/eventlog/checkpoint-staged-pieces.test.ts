import { afterAll, describe, expect, it } from 'vitest';
import { EventLog, rebuildAtSeq, verifyLog } from '../../../libs/eventlog/index.ts';
import { writeCheckpoint } from '../../../libs/eventlog/checkpoints.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { EMPTY_POSITION, exportRows, type RawRow, type RowBatch } from '../../../libs/eventlog/log-rows.ts';
import { LogStreamReader, encodeBatch } from '../../../libs/eventlog/replication-codec.ts';
import { runSteps } from '../../../libs/model/index.ts';
import { nodeEvent } from './support/node-event.ts';
import { piecedCheckpointAt } from './support/pieced-checkpoint.ts';
import { driveDataAxis, randomHistory } from './support/random-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const PIECE_CHARS = 600;

/** A log with a history and a checkpoint at its last seq in pieces of PIECE_CHARS, stored in one call. */
async function leaderLog(file = tmp.file()): Promise<{ log: EventLog; seq: number }> {
  const log = await openLog(file, steppingClock());
  driveDataAxis(log, randomHistory({ seed: 5, steps: 120 }));
  const seq = log.lastSeq();
  piecedCheckpointAt(log, seq, PIECE_CHARS);
  return { log, seq };
}

const pieceRows = (log: EventLog) =>
  databaseOf(log)
    .prepare('SELECT seq, piece, objects FROM checkpoint_pieces ORDER BY seq, piece')
    .raw(true)
    .all() as RawRow[];
const unowned = (log: EventLog) =>
  databaseOf(log)
    .prepare('SELECT count(*) FROM checkpoint_pieces WHERE seq NOT IN (SELECT seq FROM checkpoints)')
    .pluck()
    .get() as number;

/** Runs a generator until `until()` holds between two steps; returns how many steps it took. */
function stepUntil(steps: Generator<void, unknown, void>, until: () => boolean): number {
  for (let n = 1; ; n++) {
    if (steps.next().done) throw new Error('the steps ended first');
    if (until()) return n;
  }
}

describe('a checkpoint stored a piece a transaction, ahead of its row (the leader)', () => {
  it('is read by nobody until its row is written; then it is the checkpoint a one-transaction store makes', async () => {
    const { log, seq: first } = await leaderLog();
    const oneCall = await openLog(tmp.file(), steppingClock());
    try {
      driveDataAxis(log, randomHistory({ seed: 6, steps: 30 }));
      const seq = log.lastSeq();
      const state = rebuildAtSeq(log, seq).state;
      const before = exportRows(databaseOf(log), EMPTY_POSITION, { whole: true });
      const steps = log.checkpointSteps(state, { pieceChars: PIECE_CHARS });
      // half its pieces written (each its own commit), the row not yet
      const staged = () => pieceRows(log).filter((p) => p[0] === seq).length;
      stepUntil(steps, () => staged() >= 3);
      expect(unowned(log)).toBeGreaterThanOrEqual(3);
      expect(log.checkpoints().map((c) => c.seq)).toEqual([first]);
      expect(exportRows(databaseOf(log), EMPTY_POSITION, { whole: true })).toEqual(before);
      const slices: unknown[] = [];
      for await (const s of log.wholeSlices(log.position())) slices.push(s);
      expect(JSON.stringify(slices)).not.toContain(`[${seq},0,`);
      expect(rebuildAtSeq(log, seq).checkpointSeq).toBe(first);
      expect(verifyLog(log)).toMatchObject({ ok: true });

      let n = 0;
      for (let r = steps.next(); !r.done; r = steps.next()) n++;
      expect(n).toBeGreaterThan(0);
      expect(unowned(log)).toBe(0);
      // the same row and pieces as the one-transaction store of the same state
      writeCheckpoint(databaseOf(oneCall), {
        state,
        rejections: [],
        seq,
        version: log.latestVersion()?.version ?? 0,
        createdAt: log.checkpoints().at(-1)!.createdAt,
        pieceChars: PIECE_CHARS,
      });
      const rowOf = (l: EventLog) => databaseOf(l).prepare('SELECT * FROM checkpoints WHERE seq = ?').get(seq);
      expect(rowOf(log)).toEqual(rowOf(oneCall));
      expect(pieceRows(log).filter((p) => p[0] === seq)).toEqual(pieceRows(oneCall));
      expect(rebuildAtSeq(log, seq).checkpointSeq).toBe(seq);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });
    } finally {
      log.close();
      oneCall.close();
    }
  });

  it('a crash between its pieces leaves pieces no row owns, read by nobody; the next writer to open the file removes them', async () => {
    const file = tmp.file();
    const { log } = await leaderLog(file);
    driveDataAxis(log, randomHistory({ seed: 7, steps: 30 }));
    const seq = log.lastSeq();
    stepUntil(log.checkpointSteps(rebuildAtSeq(log, seq).state, { pieceChars: PIECE_CHARS }), () => unowned(log) >= 2);
    log.close(); // the process dies here: the generator is never finished nor returned
    const reader = await EventLog.open({ file, readOnly: true });
    try {
      expect(unowned(reader)).toBeGreaterThanOrEqual(2);
      expect(verifyLog(reader, { deep: true })).toMatchObject({ ok: true });
      expect(rebuildAtSeq(reader, seq).hash).toBe(rebuildAtSeq(reader, seq, { ignoreCheckpoints: true }).hash);
    } finally {
      reader.close();
    }
    const plain = await openLog(file); // not the writer: another process may be storing them now
    try {
      expect(unowned(plain)).toBeGreaterThanOrEqual(2);
    } finally {
      plain.close();
    }
    const writer = await EventLog.open({ file, writer: 'a test planner' });
    try {
      expect(unowned(writer)).toBe(0);
      writer.checkpoint(rebuildAtSeq(writer, seq).state); // and the checkpoint is stored on restart
      expect(writer.checkpoints().at(-1)!.seq).toBe(seq);
      expect(verifyLog(writer, { deep: true })).toMatchObject({ ok: true });
    } finally {
      writer.close();
    }
  });
});

describe("a batch's checkpoint pieces exported a piece a step (the leader's flush)", () => {
  it('gives what the one-call export gives, reading each piece in its own step; a piece removed meanwhile fails it', async () => {
    const { log, seq } = await leaderLog();
    try {
      const whole = exportRows(databaseOf(log), EMPTY_POSITION, { whole: true });
      const since = { ...EMPTY_POSITION, chains: whole.from.chains };
      const once = log.exportRows(since);
      expect(once.checkpointPieces?.length).toBeGreaterThan(3);
      const steps = log.exportRowsSteps(since);
      let n = 0;
      let r = steps.next();
      // rows appended between the steps are not the batch's: it ends where the first step read the log
      log.appendEvents([nodeEvent('late-node', 10_000)]);
      for (; !r.done; r = steps.next()) n++;
      expect(n).toBe(once.checkpointPieces!.length);
      expect(r.value).toEqual(once);

      const removed = log.exportRowsSteps(since);
      removed.next();
      removed.next();
      databaseOf(log).prepare('DELETE FROM checkpoints WHERE seq = ?').run(seq); // (retention; its pieces follow)
      expect(() => runSteps(removed)).toThrow(`export: checkpoint at seq ${seq}: piece 1 was removed while read`);
    } finally {
      log.close();
    }
  });
});

describe('a batch with checkpoint pieces imported in steps (the follower)', () => {
  it('stages each piece in its own step, then stores exactly what importRows stores', async () => {
    const { log, seq } = await leaderLog();
    const stepped = await openLog(tmp.file(), steppingClock());
    const oneCall = await openLog(tmp.file(), steppingClock());
    try {
      const b = exportRows(databaseOf(log), EMPTY_POSITION, { whole: true });
      const pieces = b.checkpointPieces!.length;
      expect(pieces).toBeGreaterThan(3);
      const steps = stepped.importRowsSteps(b);
      let n = 0;
      while (!steps.next().done) {
        n++;
        // while staged, the pieces are no checkpoint's: the log reads as before the import
        expect(stepped.checkpoints()).toEqual([]);
      }
      // the hash checked a piece a step, then each piece stored a step
      expect(n).toBeGreaterThanOrEqual(2 * pieces);
      oneCall.importRows(b);
      expect(pieceRows(stepped)).toEqual(pieceRows(oneCall));
      expect(pieceRows(stepped).filter((p) => p[0] === seq)).toEqual(pieceRows(log));
      expect(stepped.position()).toEqual(log.position());
      expect(verifyLog(stepped, { deep: true })).toMatchObject({ ok: true, rowsChecked: { checkpoints: 1 } });
    } finally {
      log.close();
      stepped.close();
      oneCall.close();
    }
  });

  it('refused (a piece edited, missing, or the rows not continuing) or given up: nothing stays, the same words as in one call', async () => {
    const { log, seq } = await leaderLog();
    const replica = await openLog(tmp.file(), steppingClock());
    try {
      const b = exportRows(databaseOf(log), EMPTY_POSITION, { whole: true });
      const n = b.checkpointPieces!.length;
      const edited: RowBatch = {
        ...b,
        checkpointPieces: b.checkpointPieces!.map((p) =>
          p[1] === 1 ? [p[0], p[1], (p[2] as string).replace('"name":"', '"name":"x')] : p,
        ),
      };
      const missing: RowBatch = { ...b, checkpointPieces: b.checkpointPieces!.filter((p) => p[1] !== 2) };
      // staged, then refused by the rows: the chains do not start where this file stands
      const elsewhere: RowBatch = {
        ...b,
        from: { ...b.from, chains: { ...b.from.chains, events: { id: 1, hash: 'f'.repeat(64) } } },
      };
      for (const [bad, words] of [
        [edited, `import: checkpoint at seq ${seq} in ${n} pieces: objects hash mismatch`],
        [missing, `import: checkpoint at seq ${seq}: piece 2 of`],
        [elsewhere, 'import: events stands at 0, the batch starts after 1'],
      ] as const) {
        expect(() => replica.importRows(bad)).toThrow(words);
        expect(() => runSteps(replica.importRowsSteps(bad))).toThrow(words);
        expect(pieceRows(replica)).toEqual([]);
        expect(replica.position()).toEqual(EMPTY_POSITION);
      }
      // given up between its steps (a follower stopped mid-apply: runInSlices returns the generator)
      const steps = replica.importRowsSteps(b);
      stepUntil(steps, () => pieceRows(replica).length >= 2);
      steps.return();
      expect(pieceRows(replica)).toEqual([]);
      expect(replica.position()).toEqual(EMPTY_POSITION);
      runSteps(replica.importRowsSteps(b));
      expect(replica.position()).toEqual(log.position());
    } finally {
      log.close();
      replica.close();
    }
  });

  it('read from the wire a piece a step: the same batch as read() gives, its digest taken as the parts came', async () => {
    const { log } = await leaderLog();
    try {
      const b = exportRows(databaseOf(log), EMPTY_POSITION, { whole: true });
      const parts = encodeBatch(b, 3, 700);
      expect(parts.length).toBeGreaterThan(3);
      const checked: unknown[] = [];
      const reader = new LogStreamReader((m) => {
        checked.push(m);
        return undefined;
      });
      let yields = 0;
      let items: unknown[] = [];
      for (const [i, m] of parts.entries()) {
        const steps = reader.readSteps(i + 1, (k) => m.headers[k], m.payload);
        for (let r = steps.next(); ; r = steps.next()) {
          if (r.done) {
            items = r.value;
            break;
          }
          yields++;
        }
      }
      expect(yields).toBeGreaterThanOrEqual(b.checkpointPieces!.length);
      expect(items).toEqual([{ kind: 'batch', seq: parts.length, term: 3, batch: b }]);
      // the check is given the digest of the parts joined, never the joined payload
      const whole = Buffer.concat(parts.map((m) => m.payload));
      const { createHash } = await import('node:crypto');
      expect(checked).toEqual([
        {
          kind: 'rows',
          term: 3,
          rows: parts[0]!.headers['Sb-Log-Rows'],
          payloadDigest: createHash('sha256').update(whole).digest('hex'),
          seq: 1,
        },
      ]);
    } finally {
      log.close();
    }
  });
});
