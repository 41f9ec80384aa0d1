import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  compactLog,
  OnlineRetention,
  replayableFrom,
  replayAt,
  replayVersion,
  verifyLog,
  type EventLog,
} from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { main } from '../../../services/cli/main.ts';
import { driveDataAxis, randomHistory, type DrivenVersion, type HistoryStep } from './support/random-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

// probe9 V1: retention removed events, checkpoints and ACK rows but never a `versions` row (a
// delta each, ~8 KB in a real cluster), so a log under --retain-versions kept growing.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const NODES = ['node-0', 'node-1'];

function ackAll(log: EventLog, from: number, rev: number): void {
  const latest = log.latestVersion()?.version ?? 0;
  for (let v = from; v <= latest; v++)
    for (const node of NODES)
      log.recordAck({
        type: 'ACK',
        node,
        version: v,
        configRevision: rev,
        dataHash: log.version(v)!.hash,
        nodeStateHash: 'n'.repeat(64),
        mode: 'ipvs',
        kernelWrites: 1,
        timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
        at: new Date(Date.parse('2025-01-01T00:00:00Z') + v * 1000).toISOString(),
      });
}

/** The next `n` steps of a history, without pins of versions the log no longer rebuilds (refused: COMPACTED). */
function* take(log: EventLog, steps: Iterator<HistoryStep>, n: number): Generator<HistoryStep> {
  for (let i = 0; i < n; i++) {
    const s = steps.next();
    if (s.done) return;
    if ('pin' in s.value && s.value.pin < (replayableFrom(log) ?? 1)) continue;
    yield s.value;
  }
}

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

describe('retention removes version rows (probe9 V1)', () => {
  it('under --retain-versions the versions rows stay bounded while versions keep coming; the kept ones replay bit for bit, a removed one says it was compacted', {
    timeout: 60_000,
  }, async () => {
    const KEEP = 8;
    const file = tmp.file();
    const log = await openLog(file, steppingClock());
    try {
      const rev = log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' }).revision;
      const axis = DataAxis.restore(log);
      const history = randomHistory({ seed: 41, steps: 1_000_000, pinRate: 0.03 })[Symbol.iterator]();
      const r = new OnlineRetention({
        log,
        policy: { versions: KEEP },
        // as the planner: the data pin holds it
        bounds: () => ({ floors: axis.pin ? [{ version: axis.pin.version, why: 'the data pin' }] : [] }),
        sliceRows: 40,
      });
      const recorded: DrivenVersion[] = [];
      const rows: number[] = [];
      for (let round = 0; round < 12; round++) {
        const acked = (log.latestVersion()?.version ?? 0) + 1;
        recorded.push(...driveDataAxis(log, take(log, history, 60), { checkpointEvery: 30, axis }));
        ackAll(log, acked, rev);
        await r.runOnce();
        expect(r.status().error).toBeUndefined();
        rows.push(log.countVersions());
      }
      const made = log.latestVersion()!.version;
      // steady state: the rows the window needs (KEEP, back to the checkpoint before them, the
      // parent of the oldest, a kept pin's source), not one per version ever made (old code: all)
      expect(made).toBeGreaterThan(20 * 3 * KEEP);
      for (const n of rows) expect(n).toBeLessThanOrEqual(3 * KEEP);
      expect(r.lastRun()!.versionsRemoved).toBeGreaterThan(0);

      // what stays: the chains verify, every version the log rebuilds rebuilds to its recorded hash
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });
      const from = replayableFrom(log)!;
      expect(from).toBeGreaterThan(made - 3 * KEEP);
      for (const v of recorded.filter((x) => x.version >= from))
        expect(replayVersion(log, v.version).hash).toBe(v.hash);
      expect(DataAxis.restore(log).latest()?.hash).toBe(recorded.at(-1)!.hash);

      // a removed version: one line saying so, from the library and from replay/audit
      const oldestRow = log.versions({ newest: log.countVersions() })[0]!.version;
      expect(oldestRow).toBeGreaterThan(1);
      expect(() => replayVersion(log, 1)).toThrow(
        `version 1 was compacted from the log (it rebuilds versions from ${from} on)`,
      );
      expect(() => replayAt(log, '2025-01-01T00:00:05Z')).toThrow(/was compacted from the log/);
      for (const args of [
        ['replay', '--db', file, '--to-version', '1'],
        ['audit', 'diff', '1', String(made), '--db', file],
      ]) {
        const out = await sb(...args);
        expect(out.code).toBe(1);
        expect(out.err).toMatch(
          /^switchboard: .*version 1 was compacted from the log \(it rebuilds versions from \d+ on\)\n$/,
        );
      }
    } finally {
      log.close();
    }
  });

  it("db compact removes the rows before the kept versions, but keeps a kept rollback's source, a kept ACK's version and what the group has not acknowledged", async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      const rev = log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' }).revision;
      const axis = DataAxis.restore(log);
      const recorded = driveDataAxis(log, randomHistory({ seed: 9, steps: 120, pinRate: 0 }), {
        checkpointEvery: 20,
        axis,
      });
      const who = { actor: 'test', reason: 'roll back' };
      const source = 12;
      const back = axis.holdAt(source, 'rollback', who).version!.record;
      recorded.push({ version: back.version, hash: back.hash });
      axis.release(who);
      recorded.push(...driveDataAxis(log, randomHistory({ seed: 10, steps: 40, pinRate: 0 }), { axis }));
      const latest = log.latestVersion()!.version;
      // node-7, of the cluster, last ACKed version 20; its row (and so that version's) stays
      log.recordAck({
        type: 'ACK',
        node: 'node-7',
        version: 20,
        configRevision: rev,
        dataHash: log.version(20)!.hash,
        nodeStateHash: 'n'.repeat(64),
        mode: 'ipvs',
        kernelWrites: 1,
        timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
        at: '2025-01-01T01:00:00.000Z',
      });
      const before = back.version - 2;
      expect(before).toBeGreaterThan(30);
      const clusterHas = (n: string) => n === 'node-7';
      // the group acknowledged the versions chain up to 9 only: no row past it goes
      const held = compactLog(log, before, { clusterHas, maxVersionsId: 9 });
      expect(held.versionsCutId).toBe(9);
      expect(log.version(9)).toBeUndefined();
      expect(log.version(10)).toBeDefined();
      // then: the rollback kept needs its source's row (replay follows content_of to it)
      const r = compactLog(log, before, { clusterHas });
      expect(r.versionsCutId).toBe(source - 1);
      expect(log.version(source)).toBeDefined();
      expect(replayVersion(log, back.version).hash).toBe(back.hash);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });
      for (const v of recorded.filter((x) => x.version >= before))
        expect(replayVersion(log, v.version).hash).toBe(v.hash);

      // the rollback out of the window, node-7's ACK still held: its version's row stays
      const c = compactLog(log, latest - 2, { clusterHas });
      expect(c.versionsCutId).toBe(19);
      expect(log.version(20)).toBeDefined();
      // node-7 gone from the cluster: its row and the versions before the kept ones go
      const d = compactLog(log, latest - 2, { clusterHas: () => false });
      expect(d.versionsCutId).toBeGreaterThan(20);
      expect(d.versionsCutId).toBeLessThan(latest - 2);
      expect(log.countVersions()).toBe(latest - d.versionsCutId);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });
      for (const v of recorded.filter((x) => x.version >= latest - 2))
        expect(replayVersion(log, v.version).hash).toBe(v.hash);
      // the parent of the oldest version the log rebuilds stays (a stream ending there is still checked)
      expect(log.version(replayableFrom(log)! - 1)).toBeDefined();
    } finally {
      log.close();
    }
  });
});
