import { expect, it } from 'vitest';
import {
  DEFAULT_WAVE_POLICY,
  monoOfWall,
  rolloutElapsed,
  rolloutWaitMs,
  startRollout,
  type ConfigTargetState,
} from '../../../libs/control/index.ts';

// Review4 G6: durations on the monotonic clock, a wall stamp taken into it once (pure: clocks are data).

const T0 = Date.parse('2026-12-02T10:00:00Z');

it('monoOfWall: the wall-clock age of a stamp, at least 0 and at most the bound, taken off the monotonic now', () => {
  const now = { wallMs: T0, monoMs: 5_000 };
  expect(monoOfWall(T0 - 2_000, now)).toBe(3_000);
  expect(monoOfWall(T0 + 60_000, now)).toBe(5_000); // a stamp in the future (this clock behind): now
  expect(monoOfWall(T0 - 3_600_000, now, 10_000)).toBe(-5_000); // bounded
  expect(monoOfWall(Number.NaN, now)).toBe(5_000); // no stamp: now
});

it('rolloutElapsed anchors a wave once and keeps measuring monotonically; the bake gets its own anchor', () => {
  const base: ConfigTargetState = { defaultRevision: 1, previousDefault: undefined, rollout: undefined };
  const policy = { ...DEFAULT_WAVE_POLICY, waveTimeoutMs: 600_000, bakeMs: 300_000 };
  const st = startRollout(base, {
    configRevision: 2,
    waves: [['a']],
    pauseOnError: false,
    policy,
    at: new Date(T0).toISOString(),
  });
  const first = rolloutElapsed(st.rollout, {}, { wallMs: T0 + 1_000, monoMs: 100 });
  expect(first.elapsed).toEqual({ waveMs: 1_000 });
  // an hour's wall-clock step between two readings moves nothing
  const later = rolloutElapsed(st.rollout, first.anchors, { wallMs: T0 + 3_600_000, monoMs: 2_100 });
  expect(later.elapsed).toEqual({ waveMs: 3_000 });
  expect(rolloutWaitMs(st, later.elapsed)).toBe(597_000);
  const baking: ConfigTargetState = {
    ...st,
    rollout: { ...st.rollout!, bakeStartedAt: new Date(T0 + 3_600_000).toISOString() },
  };
  const b = rolloutElapsed(baking.rollout, later.anchors, { wallMs: T0 + 3_600_000, monoMs: 2_100 });
  expect(b.elapsed).toEqual({ waveMs: 3_000, bakeMs: 0 });
  expect(rolloutWaitMs(baking, b.elapsed)).toBe(300_000);
  // no running rollout: nothing to measure, no anchors kept
  expect(rolloutElapsed({ ...st.rollout!, status: 'paused' }, b.anchors, { wallMs: T0, monoMs: 0 })).toEqual({
    elapsed: undefined,
    anchors: {},
  });
});
