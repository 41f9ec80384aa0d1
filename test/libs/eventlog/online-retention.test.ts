import { afterAll, describe, expect, it } from 'vitest';
import { DataAxis } from '../../../libs/versioning/index.ts';
import {
  OnlineRetention,
  logGrowth,
  nodesBehind,
  policyKeepsFrom,
  replayableFrom,
  replayVersion,
  retentionTarget,
  verifyLog,
  type EventLog,
} from '../../../libs/eventlog/index.ts';
import type { DrivenVersion } from './support/random-history.ts';
import { retentionHistory } from './support/retention-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** Every version from `from` on rebuilds to the hash recorded when it was made; the one before does not. */
function expectRetained(log: EventLog, recorded: readonly DrivenVersion[], from: number): void {
  for (const v of recorded.filter((x) => x.version >= from)) expect(replayVersion(log, v.version).hash).toBe(v.hash);
  if (from > 1) expect(() => replayVersion(log, from - 1)).toThrow(/compacted/);
}

describe('online retention (review4 G8)', () => {
  it('compacts a real log in slices, never past a floor, and keeps every retained version bit for bit', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      const recorded = retentionHistory(log, { seed: 11, steps: 300, checkpointEvery: 40 });
      const latest = log.latestVersion()!.version;
      expect(latest).toBeGreaterThan(60);
      const acksBefore = nodesBehind(log, { all: true });
      // a node that still runs an old version holds retention there
      const nodeFloor = Math.floor(latest / 3);
      let floors = [{ version: nodeFloor, why: `node node-9 (it runs version ${nodeFloor})` }];
      const r = new OnlineRetention({
        log,
        policy: { versions: 10 },
        bounds: () => ({ floors }),
        sliceRows: 7,
      });
      await r.runOnce();
      const held = r.status();
      expect(held.heldBy).toBe(`node node-9 (it runs version ${nodeFloor})`);
      expect(held.error).toBeUndefined();
      expect(held.oldestVersion).toBeGreaterThan(1);
      expect(held.oldestVersion).toBeLessThanOrEqual(nodeFloor);
      expect(held.lastCompaction).toMatchObject({ by: 'planner', beforeVersion: nodeFloor });
      expect(held.lastCompaction!.finishedAt).toBeDefined();
      expect(held.lastCompaction!.steps).toBeGreaterThan(3); // sliced, not one transaction
      expect(held.lastCompaction!.eventsRemoved).toBe(held.oldestSeq - 1);
      expect(held.lastCompaction!.acksRemoved).toBeGreaterThan(0);
      expectRetained(log, recorded, held.oldestVersion!);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });

      // the floor gone, the policy alone: the newest 10 versions (and a few more, back to a checkpoint) stay
      floors = [];
      await r.runOnce();
      const s = r.status();
      expect(s.heldBy).toBeUndefined();
      expect(s.oldestVersion).toBeGreaterThan(held.oldestVersion!);
      expect(s.oldestVersion).toBeLessThanOrEqual(latest - 9);
      expectRetained(log, recorded, s.oldestVersion!);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });
      // each node keeps its last report (audit behind, a restarted planner's seed)
      expect(nodesBehind(log, { all: true })).toEqual(acksBefore);
      // a planner restarts on it
      expect(DataAxis.restore(log).latest()?.version).toBe(latest);
      expect(r.lastRun()).toMatchObject({ eventsRemoved: expect.any(Number), steps: expect.any(Number) });
      expect(r.lastRun()!.longestStepMs).toBeGreaterThan(0);
    } finally {
      log.close();
    }
  });

  it('target: the policy lowered to the pin, the nodes and what the group acknowledged; age keeps the version current at its start', async () => {
    const clock = steppingClock();
    const log = await openLog(tmp.file(), clock);
    try {
      retentionHistory(log, { seed: 5, steps: 120, checkpointEvery: 30 });
      const latest = log.latestVersion()!;
      const now = new Date(Date.parse(latest.createdAt) + 1000);
      expect(policyKeepsFrom(log, {}, now)).toBeUndefined(); // no policy: everything stays
      expect(policyKeepsFrom(log, { versions: latest.version + 5 }, now)).toBeUndefined();
      expect(policyKeepsFrom(log, { versions: 5 }, now)).toBe(latest.version - 4);
      // --retain-age: the version current 20 s before now is the newest made at or before then
      const start = Date.parse(latest.createdAt) + 1000 - 20_000;
      const current = log
        .versions({ from: 1 })
        .filter((v) => Date.parse(v.createdAt) <= start)
        .at(-1)!.version;
      expect(policyKeepsFrom(log, { ageMs: 20_000 }, now)).toBe(current);
      // both: the one that keeps more
      expect(policyKeepsFrom(log, { ageMs: 20_000, versions: 2 }, now)).toBe(Math.min(current, latest.version - 1));

      const floors = [
        { version: latest.version - 8, why: 'the data pin (pin to version N)' },
        { version: latest.version - 6, why: 'node node-1 runs version M' },
      ];
      expect(retentionTarget(log, { versions: 3 }, { floors }, now)).toEqual({
        before: latest.version - 8,
        heldBy: 'the data pin (pin to version N)',
      });
      // the group acknowledged less than the latest version's events: the newest version ending there
      const v = log.version(latest.version - 20)!;
      const acknowledged = {
        ...log.position(),
        chains: { ...log.position().chains, events: { id: v.seqTo, hash: '' } },
      };
      const t = retentionTarget(log, { versions: 3 }, { floors, acknowledged }, now)!;
      expect(t.before).toBeLessThanOrEqual(v.version + 0);
      expect(log.version(t.before)!.seqTo).toBeLessThanOrEqual(v.seqTo);
      expect(log.version(t.before + 1)!.seqTo).toBeGreaterThan(v.seqTo);
      expect(t.heldBy).toBe(`the group's log (it acknowledged events up to seq ${v.seqTo})`);
      expect(retentionTarget(log, { versions: 3 }, { floors, acknowledged: null }, now)).toEqual({
        before: 0,
        heldBy: "the group's log (it acknowledged nothing yet)",
      });
      // nothing acknowledged: nothing removed
      const r = new OnlineRetention({
        log,
        policy: { versions: 3 },
        bounds: () => ({ floors: [], acknowledged: null }),
      });
      await r.runOnce();
      expect(r.status()).toMatchObject({ oldestVersion: 1, oldestSeq: 1, lastCompaction: null });
    } finally {
      log.close();
    }
  });

  it('a forward wall-clock step does not make the promised window look old: ages follow the monotonic clock (probe8 C1)', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      retentionHistory(log, { seed: 5, steps: 80, checkpointEvery: 10 });
      const latest = log.latestVersion()!;
      let wallMs = Date.parse(latest.createdAt) + 1000;
      let monoMs = 0;
      const said: string[] = [];
      const r = new OnlineRetention({
        log,
        policy: { ageMs: 3_600_000 }, // the whole history is minutes old
        bounds: () => ({ floors: [] }),
        now: () => new Date(wallMs),
        monoNow: () => monoMs,
        say: (l) => said.push(l),
      });
      await r.runOnce();
      expect(r.status()).toMatchObject({ oldestVersion: 1, lastCompaction: null });
      wallMs += 2 * 86_400_000; // the clock steps 2 days ahead; 30 s pass
      monoMs += 30_000;
      await r.runOnce();
      expect(r.status()).toMatchObject({ oldestVersion: 1, lastCompaction: null }); // nothing removed
      expect(said).toEqual([
        expect.stringMatching(/^retention: the wall clock is 172770 s ahead of the time measured since/),
      ]);
      // time really passing still ages rows: 2 hours on the monotonic clock
      monoMs += 2 * 3_600_000;
      await r.runOnce();
      expect(r.status().oldestVersion).toBeGreaterThan(1);
      expect(said.filter((l) => l.includes('wall clock is'))).toHaveLength(1); // said once
    } finally {
      log.close();
    }
  });

  it('growth: rows and bytes added over the window, per hour and per version', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      retentionHistory(log, { seed: 3, steps: 60, checkpointEvery: 0, nodes: 2 });
      const latest = log.latestVersion()!;
      const now = new Date(Date.parse(latest.createdAt) + 1);
      const all = logGrowth(log, { windowMs: 10 * 3_600_000, now });
      expect(all.versions).toBe(latest.version);
      expect(all.events).toBe(log.lastSeq());
      expect(all.acks).toBe(2 * latest.version);
      expect(all.bytes).toBeGreaterThan(0);
      expect(all.bytesPerHour).toBe(Math.round(all.bytes / 10));
      expect(all.bytesPerVersion).toBe(Math.round(all.bytes / latest.version));
      // a window holding the last 10 versions' creation times
      const w = logGrowth(log, {
        windowMs: Date.parse(latest.createdAt) + 1 - Date.parse(log.version(latest.version - 10)!.createdAt),
        now,
      });
      expect(w.versions).toBe(10);
      expect(w.events).toBe(log.lastSeq() - log.version(latest.version - 10)!.seqTo);
      expect(w.acks).toBe(2 * 10);
      expect(w.bytes).toBeLessThan(all.bytes);
    } finally {
      log.close();
    }
  });
  it('a pin made between two steps of a run stops the run: the pinned version still rebuilds (CI: planner-retention-oldest)', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      // seed 3: the oldest rebuildable version moves up in stages during the run (1, 40, 51, …, 84)
      const recorded = retentionHistory(log, { seed: 3, steps: 300, checkpointEvery: 40 });
      const said: string[] = [];
      let pinned: number | undefined;
      const r = new OnlineRetention({
        log,
        policy: { versions: 10 },
        bounds: () => ({ floors: pinned ? [{ version: pinned, why: `the data pin to version ${pinned}` }] : [] }),
        sliceRows: 7,
        say: (l) => said.push(l),
      });
      let done = false;
      const run = r.runOnce().then(() => {
        done = true;
      });
      // between two steps, once the run has moved the oldest rebuildable version up from 1 (and
      // before it is done), an operator pins that version: what `ctl versions` lists first then
      while (!done && (replayableFrom(log) ?? 1) === 1) await new Promise((resolve) => setImmediate(resolve));
      expect(done).toBe(false);
      pinned = replayableFrom(log)!;
      await run;
      const hash = recorded.find((v) => v.version === pinned)!.hash;
      expect(replayVersion(log, pinned).hash).toBe(hash);
      expect(replayableFrom(log)).toBeLessThanOrEqual(pinned);
      expect(said.join('\n')).toMatch(`came during it`);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });
      // the next run plans with the pin and keeps it
      await r.runOnce();
      expect(replayVersion(log, pinned).hash).toBe(hash);
      expect(r.status().heldBy).toBe(`the data pin to version ${pinned}`);
      expect(verifyLog(log, { deep: true })).toMatchObject({ ok: true });
    } finally {
      log.close();
    }
  });
});
