/**
 * A config-revision rollout as a plain value. The planner persists it (as operations in the event
 * log) and moves it with the pure functions in step-rollout.ts; nothing here does I/O.
 */
import type { WavePolicy } from './wave-policy.ts';

export type RolloutStatus = 'running' | 'paused' | 'halted' | 'completed' | 'rolled-back';

export interface Rollout {
  readonly configRevision: number;
  /** The cluster default revision when the rollout started: where a halt sends nodes back. */
  readonly fromRevision: number;
  /** Cumulative node sets (see planWaves); the last one is the whole fleet at start. */
  readonly waves: readonly (readonly string[])[];
  /** Index of the wave in progress. */
  readonly wave: number;
  readonly status: RolloutStatus;
  /** Pause (keep the wave's overrides for inspection) instead of halting (send them back). */
  readonly pauseOnError: boolean;
  readonly haltedBy?: { readonly node: string; readonly error: string };
  /** Absent in rollouts recorded before wave policies existed: DEFAULT_WAVE_POLICY. */
  readonly policy?: WavePolicy;
  /** When the current wave started (the wave timeout counts from here); absent: startedAt. */
  readonly waveStartedAt?: string;
  /** When every node of the current wave had ACKed (the bake clock); absent: not yet. */
  readonly bakeStartedAt?: string;
  /** Nodes counted against the failure budget (NACK or wave timeout), over the whole rollout. */
  readonly failed?: readonly NodeFailure[];
  /** While paused at a `--pause-before` gate: the 1-based wave that starts on promote. */
  readonly gate?: number;
  readonly startedAt: string;
  readonly updatedAt: string;
}

export interface NodeFailure {
  readonly node: string;
  readonly error: string;
}

/** Where the config axis stands: the cluster default revision plus at most one rollout. */
export interface ConfigTargetState {
  readonly defaultRevision: number;
  /** Where `ctl rollback` without a revision returns: the last of `earlierDefaults`. */
  readonly previousDefault: number | undefined;
  /**
   * The defaults this one replaced, oldest first (at most MAX_EARLIER_DEFAULTS). A rollback
   * without a revision pops the last one, so a second rollback goes further back instead of
   * returning, fleet-wide and without waves, to the revision just rolled back from. Absent in
   * states recorded before it existed: `[previousDefault]`.
   */
  readonly earlierDefaults?: readonly number[];
  readonly rollout: Rollout | undefined;
}

export const MAX_EARLIER_DEFAULTS = 32;

/** The defaults `state`'s default replaced, oldest first. */
export function earlierDefaults(state: ConfigTargetState): readonly number[] {
  return state.earlierDefaults ?? (state.previousDefault === undefined ? [] : [state.previousDefault]);
}

/** The state's default moved forward to `revision` (a completed rollout, a rollout without nodes). */
export function advanceDefault(
  state: ConfigTargetState,
  revision: number,
): Pick<ConfigTargetState, 'defaultRevision' | 'previousDefault' | 'earlierDefaults'> {
  const earlier = [...earlierDefaults(state), state.defaultRevision].slice(-MAX_EARLIER_DEFAULTS);
  return { defaultRevision: revision, previousDefault: state.defaultRevision, earlierDefaults: earlier };
}

/**
 * A node's health verdict as rollouts read it (the wire form is libs/model HealthVerdict):
 * `unhealthy` fails the wave; `unprobed` (no probe possible) passes on the ACK alone and is never
 * shown as healthy.
 */
export interface NodeHealth {
  readonly verdict: 'healthy' | 'unhealthy' | 'unprobed';
  readonly reason: string;
}

/** The latest ACK/NACK of one node, as far as config rollouts care. */
export interface NodeReport {
  readonly type: 'ACK' | 'NACK';
  readonly configRevision: number;
  readonly error?: string;
  /**
   * An ACK whose hashes differ from what the planner expects (ackMismatch): the node runs
   * something else than the planner made for it, so the ACK does not count and fails the node.
   */
  readonly mismatch?: string;
  /** The node's newest verdict on `configRevision` (from the ACK or a later heartbeat); absent: none sent. */
  readonly health?: NodeHealth;
  /**
   * Why what the node runs now is not known although it answered: it has not been heard from (no
   * report, no heartbeat) for the silence threshold, e.g. `silent for 31 s` (probe20 P20-2). Its
   * ACK then proves nothing about now, so it does not pass a wave or a bake; absent: heard.
   */
  readonly silent?: string;
}

export function isActive(r: Rollout | undefined): boolean {
  return !!r && (r.status === 'running' || r.status === 'paused');
}
