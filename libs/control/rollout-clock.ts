import type { Rollout } from './rollout.ts';
import { DEFAULT_WAVE_POLICY } from './wave-policy.ts';

/**
 * One reading of the planner's two clocks, taken together at the edge: `wallMs` (Date.now(): what
 * is recorded, shown and audited) and `monoMs` (performance.now(): what durations are measured
 * on). A wall clock steps (NTP, an RTC wrong until NTP syncs: review4 G6, probe4 K4); a monotonic
 * one does not, but it means nothing outside this process.
 */
export interface ClockReading {
  readonly wallMs: number;
  readonly monoMs: number;
}

/**
 * The monotonic time of a wall-clock stamp made by another process (or before a restart), taken
 * once: the time since it as the wall clock says, never less than 0 (a clock behind the stamp's
 * would put it in the future) and at most `maxMs`. From then on it is measured monotonically.
 */
export function monoOfWall(stampMs: number, now: ClockReading, maxMs = Number.POSITIVE_INFINITY): number {
  const since = Number.isFinite(stampMs) ? Math.min(Math.max(0, now.wallMs - stampMs), maxMs) : 0;
  return now.monoMs - since;
}

/** How long the running wave and its bake have lasted, measured monotonically (see rolloutElapsed). */
export interface RolloutElapsed {
  readonly waveMs: number;
  /** Undefined: the wave is not baking. */
  readonly bakeMs?: number;
}

/** Where the current wave and bake started on this process's monotonic clock, keyed by their recorded stamps. */
export interface RolloutAnchors {
  readonly wave?: { readonly key: string; readonly monoMs: number };
  readonly bake?: { readonly key: string; readonly monoMs: number };
}

/**
 * The wave and bake durations of a running rollout at `now`, and the anchors to keep for the next
 * call. Pure. The rollout persists wall stamps only (waveStartedAt, bakeStartedAt: they are shown
 * and audited, and they must survive a planner restart and a failover to another host, which a
 * monotonic clock does not). So each process anchors a wave or bake the first time it sees its
 * stamp: its elapsed time is taken from the wall clock once (monoOfWall: at least 0, at most the
 * wave timeout or the bake), then measured on the monotonic clock. A wave started in this process
 * is seen at the reading that stamped it (elapsed 0), so a wall-clock step afterwards neither fails
 * it early nor ends its bake early; a restart or failover in the middle of a step counts the step
 * once, bounded by the timeout (a wave restored past its timeout times out, as it would have).
 */
export function rolloutElapsed(
  r: Rollout | undefined,
  anchors: RolloutAnchors,
  now: ClockReading,
): { readonly elapsed: RolloutElapsed | undefined; readonly anchors: RolloutAnchors } {
  if (!r || r.status !== 'running') return { elapsed: undefined, anchors: {} };
  const policy = r.policy ?? DEFAULT_WAVE_POLICY;
  const waveStamp = r.waveStartedAt ?? r.startedAt;
  const waveKey = `${r.configRevision}/${r.wave}/${waveStamp}`;
  const wave =
    anchors.wave?.key === waveKey
      ? anchors.wave
      : { key: waveKey, monoMs: monoOfWall(Date.parse(waveStamp), now, policy.waveTimeoutMs) };
  if (r.bakeStartedAt === undefined) return { elapsed: { waveMs: now.monoMs - wave.monoMs }, anchors: { wave } };
  const bakeKey = `${waveKey}/${r.bakeStartedAt}`;
  const bake =
    anchors.bake?.key === bakeKey
      ? anchors.bake
      : { key: bakeKey, monoMs: monoOfWall(Date.parse(r.bakeStartedAt), now, policy.bakeMs) };
  return { elapsed: { waveMs: now.monoMs - wave.monoMs, bakeMs: now.monoMs - bake.monoMs }, anchors: { wave, bake } };
}
