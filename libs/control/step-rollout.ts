import type { ConfigTargetState, NodeReport, Rollout } from './rollout.ts';
import { isActive } from './rollout.ts';

export interface StartRolloutInput {
  readonly configRevision: number;
  readonly waves: readonly (readonly string[])[];
  readonly pauseOnError: boolean;
  readonly at: string;
}

/** Starts a rollout; refuses while another one is active (one rollout at a time keeps waves legible). */
export function startRollout(state: ConfigTargetState, input: StartRolloutInput): ConfigTargetState {
  if (isActive(state.rollout)) {
    throw new Error(`rollout of config revision ${state.rollout!.configRevision} is still ${state.rollout!.status}; roll back or wait for it`);
  }
  if (input.configRevision === state.defaultRevision) throw new Error(`config revision ${input.configRevision} is already the cluster default`);
  if (input.waves.length === 0) {
    // No nodes known: nothing to canary, the revision becomes the default at once.
    return { defaultRevision: input.configRevision, previousDefault: state.defaultRevision, rollout: undefined };
  }
  const rollout: Rollout = {
    configRevision: input.configRevision, fromRevision: state.defaultRevision, waves: input.waves, wave: 0,
    status: 'running', pauseOnError: input.pauseOnError, startedAt: input.at, updatedAt: input.at,
  };
  return { ...state, rollout };
}

/**
 * Moves a running rollout on from what nodes reported: a NACK of the new revision from any node
 * already in the rollout stops it (halted, or paused with --pause-on-error); when every node of the
 * current wave ACKed the new revision the next wave starts; after the last wave the revision
 * becomes the cluster default. Advances at most one wave per call: the next wave's nodes must be
 * given their targets and answer before it counts.
 */
export function stepRollout(state: ConfigTargetState, reports: ReadonlyMap<string, NodeReport>, at: string): ConfigTargetState {
  const r = state.rollout;
  if (!r || r.status !== 'running') return state;
  const current = r.waves[r.wave]!;
  for (const node of current) {
    const rep = reports.get(node);
    if (rep?.type === 'NACK' && rep.configRevision === r.configRevision) {
      const haltedBy = { node, error: rep.error ?? 'NACK' };
      return { ...state, rollout: { ...r, status: r.pauseOnError ? 'paused' : 'halted', haltedBy, updatedAt: at } };
    }
  }
  const allAcked = current.every((n) => {
    const rep = reports.get(n);
    return rep?.type === 'ACK' && rep.configRevision === r.configRevision;
  });
  if (!allAcked) return state;
  if (r.wave + 1 < r.waves.length) return { ...state, rollout: { ...r, wave: r.wave + 1, updatedAt: at } };
  return {
    defaultRevision: r.configRevision,
    previousDefault: state.defaultRevision,
    rollout: { ...r, status: 'completed', updatedAt: at },
  };
}

/** Pauses a running rollout by hand: the waves reached keep the new revision, no further wave starts. */
export function pauseRollout(state: ConfigTargetState, at: string): ConfigTargetState {
  const r = state.rollout;
  if (!r || r.status !== 'running') throw new Error('no running rollout to pause');
  return { ...state, rollout: { ...r, status: 'paused', updatedAt: at } };
}

/** Resumes a paused rollout (after the operator fixed the node); the NACK must be answered anew. */
export function resumeRollout(state: ConfigTargetState, at: string): ConfigTargetState {
  const r = state.rollout;
  if (!r || r.status !== 'paused') throw new Error('no paused rollout to resume');
  return { ...state, rollout: { ...r, status: 'running', haltedBy: undefined, updatedAt: at } };
}

/**
 * Instant config rollback: the default goes to `to` (or, without it, to the revision before the
 * current default; during a rollout, to where the rollout started) and every override goes away.
 */
export function rollbackConfig(state: ConfigTargetState, to: number | undefined, at: string): ConfigTargetState {
  const r = state.rollout;
  const unfinished = !!r && (isActive(r) || r.status === 'halted');
  const target = to ?? (unfinished ? r!.fromRevision : state.previousDefault);
  if (target === undefined) throw new Error('no previous config revision to roll back to');
  const rollout = r && r.status !== 'completed' && r.status !== 'rolled-back' ? { ...r, status: 'rolled-back' as const, updatedAt: at } : r;
  return { defaultRevision: target, previousDefault: state.defaultRevision, rollout };
}

/**
 * Per-node config revision overrides implied by the state: nodes of the waves reached so far run
 * the new revision while a rollout is running or paused; a halted, completed or rolled-back
 * rollout leaves no override (everyone follows the default).
 */
export function configOverrides(state: ConfigTargetState): Map<string, number> {
  const out = new Map<string, number>();
  const r = state.rollout;
  if (!r || !isActive(r)) return out;
  for (const n of r.waves[r.wave]!) out.set(n, r.configRevision);
  return out;
}
