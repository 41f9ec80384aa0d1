import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog, rebuildAtSeq, verifyLog } from '../../../libs/eventlog/index.ts';
import { databaseOf } from '../../../libs/eventlog/database-handle.ts';
import { tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const NODES = 2_500; // ~100 M characters of checkpoint: 3–4 pieces of 32 Mi characters (the default)

/**
 * Runs the child until it has written `before` checkpoints, then SIGKILLs it: halfway through the
 * next one (half the previous write's duration after it said it started) when `midWrite`, else at
 * once. Returns the seq it was writing (midWrite) or last wrote.
 */
async function runChildAndKill(file: string, before: number, midWrite: boolean): Promise<number> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(import.meta.dirname, 'support/checkpoint-crash-child.ts'), file, String(NODES)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let buf = '';
  let written = 0;
  let lastMs = 0;
  let seq = 0;
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, sig) => (sig === 'SIGKILL' ? resolve() : reject(new Error(`child exited ${code} ${sig}`))));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [word, seqText, msText] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (seq) continue; // the kill is on its way
        if (word === 'written' && ++written >= before && !midWrite) {
          seq = Number(seqText);
          child.kill('SIGKILL');
        } else if (word === 'written') lastMs = Number(msText);
        else if (word === 'writing' && written >= before && midWrite) {
          seq = Number(seqText);
          setTimeout(() => child.kill('SIGKILL'), Math.max(1, lastMs / 2));
        }
      }
    });
  });
  return seq;
}

describe('a crash in the middle of a checkpoint stored in pieces', () => {
  it('SIGKILL mid-write leaves no row, and no stray piece once a writer opens the file; earlier checkpoints stay whole; the log goes on', {
    timeout: 300_000,
  }, async () => {
    const file = tmp.file('checkpoint-crash.db');
    let killedMidWrite = 0;
    const strays: number[] = [];
    // A kill can land after the commit when the machine stalls the parent: then the row must be
    // whole, and the next round tries again on the same log (as a restarted planner would).
    for (let round = 0; round < 3 && killedMidWrite === 0; round++) {
      const seq = await runChildAndKill(file, 2, true);
      const stray = (log: EventLog) =>
        databaseOf(log)
          .prepare('SELECT count(*) FROM checkpoint_pieces WHERE seq NOT IN (SELECT seq FROM checkpoints)')
          .pluck()
          .get() as number;
      // pieces are stored a transaction each ahead of their row: a kill between them leaves some no
      // row owns (no reader sees them); the next writer to open the file removes them
      const reader = await EventLog.open({ file, readOnly: true });
      try {
        const row = databaseOf(reader).prepare('SELECT pieces FROM checkpoints WHERE seq = ?').get(seq) as
          | { pieces: number }
          | undefined;
        if (!row) killedMidWrite++;
        else expect(row.pieces).toBeGreaterThan(1); // committed before the kill: whole (verified below)
        expect(verifyLog(reader)).toMatchObject({ ok: true }); // strays or not
        strays.push(stray(reader));
      } finally {
        reader.close();
      }
      const log = await EventLog.open({ file, writer: 'the crash test' });
      try {
        const db = databaseOf(log);
        expect(stray(log)).toBe(0);
        const cps = log.checkpoints();
        expect(cps.length).toBeGreaterThanOrEqual(2);
        const pieced = db.prepare('SELECT max(pieces) AS p FROM checkpoints').get() as { p: number };
        expect(pieced.p).toBeGreaterThan(1);
        expect(verifyLog(log)).toMatchObject({ ok: true });
        // the newest surviving checkpoint gives the state the events give
        const last = log.lastSeq();
        const fromCheckpoint = rebuildAtSeq(log, last);
        expect(fromCheckpoint.checkpointSeq).toBe(cps[cps.length - 1]!.seq);
        expect(fromCheckpoint.hash).toBe(rebuildAtSeq(log, last, { ignoreCheckpoints: true }).hash);
      } finally {
        log.close();
      }
    }
    expect(killedMidWrite).toBe(1);
    console.log(`pieces no row owns after each kill: ${strays.join(', ')}`);

    // restarted on the same log, the writer rebuilds its state and checkpoints again
    const resumedAt = await runChildAndKill(file, 1, false);
    const log = await EventLog.open({ file, writer: 'the crash test' });
    try {
      expect(log.checkpoints().at(-1)!.seq).toBe(resumedAt);
      expect(verifyLog(log)).toMatchObject({ ok: true });
      expect(rebuildAtSeq(log, resumedAt).hash).toBe(rebuildAtSeq(log, resumedAt, { ignoreCheckpoints: true }).hash);
    } finally {
      log.close();
    }
  });
});
