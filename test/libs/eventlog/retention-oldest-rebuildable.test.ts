import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  OnlineRetention,
  replayableFrom,
  replayVersion,
  verifyLog,
  type EventLog,
} from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { main } from '../../../services/cli/main.ts';
import { driveDataAxis, randomHistory } from './support/random-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

// probe11 K3: after online retention the oldest version row kept (the parent of the first
// rebuildable one) was listed and called "the oldest kept", yet pin/rollback/diff/replay of it
// failed with "events up to seq N were compacted and no checkpoint covers seq M", and /status
// named another version; the `held back by` reason was the last run's, not today's.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** The CLI's main() in this process: its exit code and stderr. */
async function sb(...args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s);
    return true;
  });
  try {
    return { code: await main(args), err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('the oldest rebuildable version after online retention (probe11 K3)', () => {
  it('a row kept below it answers the same COMPACTED sentence as a removed one, naming /status oldestVersion', async () => {
    const file = tmp.file();
    const log: EventLog = await openLog(file, steppingClock());
    try {
      log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' });
      const axis = DataAxis.restore(log);
      driveDataAxis(log, randomHistory({ seed: 11, steps: 160, pinRate: 0 }), { checkpointEvery: 10, axis });
      const r = new OnlineRetention({ log, policy: { versions: 2 }, bounds: () => ({ floors: [] }), sliceRows: 50 });
      await r.runOnce();
      expect(r.status().error).toBeUndefined();
      const latest = log.latestVersion()!.version;
      const from = replayableFrom(log)!;
      expect(from).toBeGreaterThan(2);
      expect(r.status().oldestVersion).toBe(from);
      // rows kept below it: at least the parent of the first rebuildable one (the stream's check)
      const keptBelow = log.versions({ to: from - 1 }).map((v) => v.version);
      expect(keptBelow).toContain(from - 1);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });

      const sentence = (n: number) => `version ${n} was compacted from the log (it rebuilds versions from ${from} on)`;
      for (const n of [1, ...keptBelow]) {
        expect(() => replayVersion(log, n)).toThrow(sentence(n));
        // what pin, rollback --to-version and diff rebuild through
        expect(() => axis.contentOf(n)).toThrow(sentence(n));
        expect(() => axis.holdAt(n, 'pin', { actor: 'test', reason: 'pin the oldest listed' })).toThrow(sentence(n));
      }
      expect(axis.pin).toBeUndefined();
      for (const args of [
        ['replay', '--db', file, '--to-version', String(from - 1)],
        ['audit', 'diff', String(from - 1), String(latest), '--db', file],
      ]) {
        const out = await sb(...args);
        expect(out.code).toBe(1);
        expect(out.err).toBe(`switchboard: ${sentence(from - 1)}\n`);
      }
      // the oldest rebuildable one itself rebuilds, and can be pinned
      expect(replayVersion(log, from).hash).toBe(log.version(from)!.hash);
      expect(axis.contentOf(from).hash()).toBe(log.version(from)!.hash);
    } finally {
      log.close();
    }
  });

  it('status names what holds retention back now, not what held the last run', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' });
      driveDataAxis(log, randomHistory({ seed: 12, steps: 120, pinRate: 0 }), { checkpointEvery: 10 });
      const latest = log.latestVersion()!.version;
      let pin = latest - 6;
      const r = new OnlineRetention({
        log,
        policy: { versions: 2 },
        bounds: () => ({ floors: [{ version: pin, why: `the data pin to version ${pin}` }] }),
      });
      await r.runOnce();
      expect(r.status().heldBy).toBe(`the data pin to version ${pin}`);
      // the pin moves on, no run since: the old pin no longer holds anything
      pin = latest - 3;
      expect(r.status().heldBy).toBe(`the data pin to version ${latest - 3}`);
      pin = latest;
      expect(r.status().heldBy).toBeUndefined();
    } finally {
      log.close();
    }
  });
});
