import { afterAll, describe, expect, it, vi } from 'vitest';
import { ClusterDataIndex } from '../../../libs/planner/index.ts';
import { rebuildAtSeq, rebuildAtSeqSteps, replayVersion } from '../../../libs/eventlog/index.ts';
import { driveDataAxis, randomHistory } from './support/random-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('replay over long random histories', () => {
  for (const seed of [1, 2]) {
    for (const checkpointEvery of [0, 50]) {
      it(`seed ${seed}, ${checkpointEvery ? `checkpoint every ${checkpointEvery} events` : 'no checkpoints'}: every version's hash is reproduced`, async () => {
        const log = await openLog(tmp.file(), steppingClock());
        try {
          const recorded = driveDataAxis(log, randomHistory({ seed, steps: 250 }), { checkpointEvery });
          expect(recorded.length).toBeGreaterThan(50);
          expect(log.versions().some((v) => v.contentOf !== undefined)).toBe(true);
          if (checkpointEvery) expect(log.checkpoints().length).toBeGreaterThan(3);
          for (const { version, hash } of recorded) {
            const r = replayVersion(log, version);
            expect(r.hash, `version ${version}`).toBe(hash);
            expect(log.version(version)!.hash).toBe(hash);
          }
        } finally {
          log.close();
        }
      });
    }
  }

  it('folding (last event per object) equals applying every event in order, at every seq', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      driveDataAxis(log, randomHistory({ seed: 9, steps: 200 }), { checkpointEvery: 40 });
      const last = log.lastSeq();
      for (let seq = 0; seq <= last; seq += 11) {
        expect(rebuildAtSeq(log, seq).hash, `seq ${seq}`).toBe(rebuildAtSeq(log, seq, { sequential: true }).hash);
      }
    } finally {
      log.close();
    }
  });

  it('starts from the nearest checkpoint, not from the first event', async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      driveDataAxis(log, randomHistory({ seed: 4, steps: 300 }), { checkpointEvery: 30 });
      const cps = log.checkpoints();
      const cp = cps[cps.length - 2]!;
      const r = rebuildAtSeq(log, cp.seq + 3);
      expect(r.checkpointSeq).toBe(cp.seq);
      expect(r.eventsApplied).toBeLessThanOrEqual(3);
      expect(rebuildAtSeq(log, cp.seq).hash).toBe(cp.dataHash);
    } finally {
      log.close();
    }
  });
});

describe('a rebuild in steps (a planner restores its view in slices)', () => {
  it("reads each object's latest event and commits each touched item a step at a time, to the same state", async () => {
    const log = await openLog(tmp.file(), steppingClock());
    try {
      // no checkpoint: the fold reads every object, and the commit hashes every service and node
      driveDataAxis(log, randomHistory({ seed: 12, steps: 200 }));
      const seq = log.lastSeq();
      const whole = rebuildAtSeq(log, seq, { sequential: true });
      const objects = whole.state.objects().length;
      expect(objects).toBeGreaterThan(10);
      // service entries built (and hashed) per step: one at most (the commit built them all in one)
      let built = 0;
      const real = ClusterDataIndex.prototype.setService;
      const setService = vi.spyOn(ClusterDataIndex.prototype, 'setService').mockImplementation(function (
        this: ClusterDataIndex,
        ...args
      ) {
        built++;
        return real.apply(this, args);
      });
      const steps = rebuildAtSeqSteps(log, seq);
      let n = 0;
      let most = 0;
      let r = steps.next();
      try {
        for (; !r.done; r = steps.next(), built = 0) {
          n++;
          most = Math.max(most, built);
        }
        most = Math.max(most, built);
      } finally {
        setService.mockRestore();
      }
      expect(most).toBe(1);
      // a step per touched service or node in the commit (the fold's steps are of 256 rows)
      expect(n).toBeGreaterThanOrEqual(objects / 2);
      expect(r.value.hash).toBe(whole.hash);
      expect(r.value.state.objects()).toEqual(whole.state.objects());
    } finally {
      log.close();
    }
  });
});
