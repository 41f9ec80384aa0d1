import {
  MAX_EARLIER_DEFAULTS,
  type ConfigTargetState,
  type NodeFailure,
  type NodeReport,
  type Rollout,
} from './rollout.ts';
import { advanceDefault, earlierDefaults, isActive } from './rollout.ts';
import { DEFAULT_WAVE_POLICY, allowedFailures, formatMs, type WavePolicy } from './wave-policy.ts';
import type { RolloutElapsed } from './rollout-clock.ts';

export interface StartRolloutInput {
  readonly configRevision: number;
  readonly waves: readonly (readonly string[])[];
  readonly pauseOnError: boolean;
  readonly at: string;
  /** Defaults to DEFAULT_WAVE_POLICY. */
  readonly policy?: WavePolicy;
}

/** Starts a rollout; refuses while another one is active (one rollout at a time keeps waves legible). */
export function startRollout(state: ConfigTargetState, input: StartRolloutInput): ConfigTargetState {
  if (state.rollout && isActive(state.rollout)) throw new Error(busyLine(state.rollout, input.configRevision));
  if (input.configRevision === state.defaultRevision)
    throw new Error(`config revision ${input.configRevision} is already the cluster default`);
  if (input.waves.length === 0) {
    // No nodes known: nothing to canary, the revision becomes the default at once.
    return { ...advanceDefault(state, input.configRevision), rollout: undefined };
  }
  const policy = input.policy ?? DEFAULT_WAVE_POLICY;
  const beyond = policy.pauseBefore.find((w) => w > input.waves.length);
  if (beyond !== undefined)
    throw new Error(`pause-before: wave ${beyond} does not exist, this rollout has ${input.waves.length} wave(s)`);
  const rollout: Rollout = {
    configRevision: input.configRevision,
    fromRevision: state.defaultRevision,
    waves: input.waves,
    wave: 0,
    status: 'running',
    pauseOnError: input.pauseOnError,
    policy,
    waveStartedAt: input.at,
    failed: [],
    startedAt: input.at,
    updatedAt: input.at,
  };
  return { ...state, rollout };
}

/**
 * Why another rollout cannot start while `r` runs, and what moves `r` on (probe11 K9: "still
 * paused; roll back or wait for it" at a gate, where waiting does nothing: it takes a promote).
 */
function busyLine(r: Rollout, asked: number): string {
  const which = `the rollout of config revision ${r.configRevision}`;
  const same = asked === r.configRevision ? ' (a repeat of the request that started it?)' : '';
  const at = `wave ${r.wave + 1}/${r.waves.length}`;
  if (r.status === 'paused' && r.gate !== undefined)
    return `${which} waits at the gate before wave ${r.gate}${same}: promote it (ctl rollout --promote) or roll it back (ctl rollback) first`;
  if (r.status === 'paused')
    return `${which} is paused at ${at}${same}: resume it (ctl rollout --resume) or roll it back (ctl rollback) first`;
  return `${which} is running at ${at}${same}: wait for it (ctl rollout status), pause it or roll it back first`;
}

/** A gate decision of a rollout step, recorded as an operation with its reason. */
export type GateKind = 'advance' | 'bake' | 'gate' | 'halt' | 'timeout' | 'tolerate' | 'complete';

export interface RolloutStep {
  readonly state: ConfigTargetState;
  /** Absent when nothing changed (`state` is then the very input object). */
  readonly decision?: { readonly kind: GateKind; readonly reason: string };
}

const ms = (iso: string) => Date.parse(iso);

/** The wave's and bake's durations as the recorded wall stamps say (no monotonic measure given). */
function wallElapsed(r: Rollout, at: string): RolloutElapsed {
  const now = ms(at);
  return {
    waveMs: now - ms(r.waveStartedAt ?? r.startedAt),
    bakeMs: r.bakeStartedAt === undefined ? undefined : now - ms(r.bakeStartedAt),
  };
}

/**
 * Moves a running rollout on from what nodes reported and what time it is (passed in: no clock
 * here): `at`, the wall time the state records (display, audit), and `elapsed`, how long the wave
 * and its bake have lasted, measured on a monotonic clock by the caller (rolloutElapsed), so a
 * wall-clock step neither times a wave out nor ends a bake early (review4 G6); without it, the
 * durations are taken from the recorded wall stamps. A node of the waves reached fails when it NACKs the new revision, ACKed it with
 * hashes other than the planner expects (NodeReport.mismatch: it runs something else), ACKed it
 * with an unhealthy verdict (at the ACK or later, during the bake: the verdict is data in
 * `reports`), or has not ACKed it `waveTimeoutMs` after its wave started; failures beyond the
 * policy's budget stop the rollout (halted, or paused with --pause-on-error). Once every node of
 * the wave ACKed or failed, the bake clock starts; after `bakeMs` the next wave starts, or waits
 * for promote at a `pauseBefore` gate; after the last wave the revision becomes the cluster
 * default. At most one decision per call: the next wave's nodes must be given their targets and
 * answer before it counts. Given `fleet` (the nodes the cluster now holds), a wave's node outside it
 * is passed over while it is gone (a deleted Node never ACKs), named in the decision's reason, as
 * long as a node of the wave still in the fleet ACKed R: a wave all of whose nodes left before one
 * ACKed (a one-node canary scaled down) waits, and at the wave timeout its departed nodes fail
 * (probe20 P20-1: it had passed, and the next wave took an untested revision). A node that ACKed R
 * and then fell silent (`NodeReport.silent`) fails: its ACK says nothing of now (P20-2: a dead
 * canary passed its bake).
 */
export function decideRollout(
  state: ConfigTargetState,
  reports: ReadonlyMap<string, NodeReport>,
  at: string,
  elapsed?: RolloutElapsed,
  fleet?: ReadonlySet<string>,
): RolloutStep {
  const r = state.rollout;
  if (!r || r.status !== 'running') return { state };
  const policy = r.policy ?? DEFAULT_WAVE_POLICY;
  const took = elapsed ?? wallElapsed(r, at);
  // A node of the wave the fleet no longer holds (its Node deleted: a scale-down, a replacement)
  // can never ACK: waited for, it timed the wave out and failed the rollout. It is passed over
  // while it is gone, and waited for again if it comes back before its wave is done.
  const departed = (n: string) => fleet !== undefined && !fleet.has(n);
  const ackedRevision = (n: string) => {
    const rep = reports.get(n);
    return rep?.type === 'ACK' && rep.configRevision === r.configRevision;
  };
  const mismatched = (n: string) => ackedRevision(n) && !!reports.get(n)!.mismatch;
  const acked = (n: string) => ackedRevision(n) && !mismatched(n);
  const failed = new Map((r.failed ?? []).map((f) => [f.node, f]));
  const wave = r.waves[r.wave]!;
  // What the gate can still prove (probe20 P20-1): a node of the wave, in the fleet, that ACKed R.
  // A wave whose nodes all left before one ACKed (a one-node canary scaled down) proves nothing:
  // it is not passed over but waited for, and its departed nodes fail at the wave timeout.
  const proven = wave.some((n) => !departed(n) && !failed.has(n) && acked(n) && !reports.get(n)!.silent);
  const fresh: NodeFailure[] = [];
  let timedOut = false;
  for (const node of wave) {
    if (failed.has(node)) continue;
    if (departed(node)) {
      if (!proven && took.waveMs >= policy.waveTimeoutMs) {
        fresh.push({
          node,
          error: `left the fleet before wave ${r.wave + 1} passed, and no node of the wave still in it ACKed revision ${r.configRevision}`,
        });
        timedOut = true;
      }
      continue;
    }
    const rep = reports.get(node);
    if (rep?.type === 'NACK' && rep.configRevision === r.configRevision)
      fresh.push({ node, error: rep.error ?? 'NACK' });
    else if (mismatched(node)) fresh.push({ node, error: rep!.mismatch! });
    else if (acked(node) && rep!.health?.verdict === 'unhealthy')
      fresh.push({ node, error: `unhealthy: ${rep!.health.reason}` });
    // ACKed, then not heard from (probe20 P20-2): a bake over a dead node proved nothing.
    else if (acked(node) && rep!.silent)
      fresh.push({
        node,
        error: `${rep!.silent} after it ACKed revision ${r.configRevision}: what it runs now is not known`,
      });
    else if (!acked(node) && took.waveMs >= policy.waveTimeoutMs) {
      fresh.push({
        node,
        error: `no ACK of revision ${r.configRevision} within the wave timeout of ${formatMs(policy.waveTimeoutMs)}`,
      });
      timedOut = true;
    }
  }
  const allowed = allowedFailures(policy, r.waves[r.waves.length - 1]!.length);
  if (fresh.length > 0) {
    const all = [...failed.values(), ...fresh];
    const first = fresh[0]!;
    const names = fresh.map((f) => `${f.node} (${f.error})`).join(', ');
    if (all.length > allowed) {
      const stop = r.pauseOnError ? 'paused' : 'halted';
      const rollout: Rollout = { ...r, status: stop, haltedBy: first, failed: all, updatedAt: at };
      return {
        state: { ...state, rollout },
        decision: {
          kind:
            timedOut && !fresh.some((f) => reports.get(f.node)?.type === 'NACK' || mismatched(f.node))
              ? 'timeout'
              : 'halt',
          reason: `rollout ${stop}: ${all.length} failed node(s), ${allowed} tolerated by --max-failures ${policy.maxFailures}: ${names}`,
        },
      };
    }
    return {
      state: { ...state, rollout: { ...r, failed: all, updatedAt: at } },
      decision: {
        kind: 'tolerate',
        reason: `failure tolerated (${all.length} of ${allowed} allowed by --max-failures ${policy.maxFailures}): ${names}`,
      },
    };
  }
  const gone = wave.filter((n) => departed(n) && !failed.has(n) && !acked(n));
  const ready = wave.every((n) => failed.has(n) || departed(n) || acked(n)) && (proven || gone.length === 0);
  if (!ready) return { state };
  const waveNo = r.wave + 1;
  const passedOver = gone.length ? ` (not waited for, no longer in the fleet: ${gone.join(', ')})` : '';
  if (policy.bakeMs > 0) {
    if (r.bakeStartedAt === undefined) {
      return {
        state: { ...state, rollout: { ...r, bakeStartedAt: at, updatedAt: at } },
        decision: {
          kind: 'bake',
          reason: `wave ${waveNo} of ${r.waves.length} ACKed revision ${r.configRevision}${passedOver}: baking for ${formatMs(policy.bakeMs)}`,
        },
      };
    }
    if ((took.bakeMs ?? 0) < policy.bakeMs) return { state };
  }
  const baked = policy.bakeMs > 0 ? ` and baked ${formatMs(policy.bakeMs)}` : '';
  if (r.wave + 1 >= r.waves.length) {
    return {
      state: {
        ...advanceDefault(state, r.configRevision),
        rollout: { ...r, status: 'completed', updatedAt: at },
      },
      decision: {
        kind: 'complete',
        reason: `revision ${r.configRevision} is the cluster default: every wave ACKed${passedOver}${baked}`,
      },
    };
  }
  const next = waveNo + 1;
  if (policy.pauseBefore.includes(next)) {
    return {
      state: { ...state, rollout: { ...r, status: 'paused', gate: next, updatedAt: at } },
      decision: {
        kind: 'gate',
        reason: `wave ${waveNo} ACKed${passedOver}${baked}; wave ${next} waits for promote (--pause-before ${next})`,
      },
    };
  }
  return {
    state: { ...state, rollout: startWave(r, at) },
    decision: {
      kind: 'advance',
      reason: `wave ${next} of ${r.waves.length} starts: wave ${waveNo} ACKed revision ${r.configRevision}${passedOver}${baked}`,
    },
  };
}

function startWave(r: Rollout, at: string): Rollout {
  return {
    ...r,
    wave: r.wave + 1,
    status: 'running',
    gate: undefined,
    waveStartedAt: at,
    bakeStartedAt: undefined,
    updatedAt: at,
  };
}

/** decideRollout without the decision, for callers that only need the state. */
export function stepRollout(
  state: ConfigTargetState,
  reports: ReadonlyMap<string, NodeReport>,
  at: string,
  elapsed?: RolloutElapsed,
  fleet?: ReadonlySet<string>,
): ConfigTargetState {
  return decideRollout(state, reports, at, elapsed, fleet).state;
}

/** Opens a `--pause-before` gate: the waiting wave starts now, its timeout clock with it. */
export function promoteRollout(state: ConfigTargetState, at: string): ConfigTargetState {
  const r = state.rollout;
  if (!r || r.status !== 'paused' || r.gate === undefined) throw new Error('no rollout waits at a --pause-before gate');
  return { ...state, rollout: startWave(r, at) };
}

/**
 * When a running rollout next needs a look without any report (a timeout or the bake ends), in
 * wall time as its recorded stamps say; the planner waits on rolloutWaitMs (monotonic) instead.
 */
export function nextRolloutDeadline(state: ConfigTargetState): number | undefined {
  const r = state.rollout;
  if (!r || r.status !== 'running') return undefined;
  const policy = r.policy ?? DEFAULT_WAVE_POLICY;
  const timeout = ms(r.waveStartedAt ?? r.startedAt) + policy.waveTimeoutMs;
  return r.bakeStartedAt !== undefined ? Math.min(timeout, ms(r.bakeStartedAt) + policy.bakeMs) : timeout;
}

/**
 * How long (ms, at least 0) until a running rollout next needs a look without any report, from
 * the wave's and bake's monotonic durations (rolloutElapsed); undefined: no deadline.
 */
export function rolloutWaitMs(state: ConfigTargetState, elapsed: RolloutElapsed | undefined): number | undefined {
  const r = state.rollout;
  if (!r || r.status !== 'running' || !elapsed) return undefined;
  const policy = r.policy ?? DEFAULT_WAVE_POLICY;
  const timeout = policy.waveTimeoutMs - elapsed.waveMs;
  const wait = elapsed.bakeMs !== undefined ? Math.min(timeout, policy.bakeMs - elapsed.bakeMs) : timeout;
  return Math.max(0, wait);
}

/** Pauses a running rollout by hand: the waves reached keep the new revision, no further wave starts. */
export function pauseRollout(state: ConfigTargetState, at: string): ConfigTargetState {
  const r = state.rollout;
  if (!r || r.status !== 'running') throw new Error('no running rollout to pause');
  return { ...state, rollout: { ...r, status: 'paused', updatedAt: at } };
}

/**
 * Resumes a paused rollout (after the operator fixed the node): the NACK must be answered anew,
 * so the failures counted so far are forgiven and the wave's timeout and bake clocks restart.
 * A rollout waiting at a --pause-before gate is promoted instead (promoteRollout).
 */
export function resumeRollout(state: ConfigTargetState, at: string): ConfigTargetState {
  const r = state.rollout;
  if (!r || r.status !== 'paused') throw new Error('no paused rollout to resume');
  if (r.gate !== undefined)
    throw new Error(`the rollout waits at the gate before wave ${r.gate}: promote it (ctl rollout --promote)`);
  return {
    ...state,
    rollout: {
      ...r,
      status: 'running',
      haltedBy: undefined,
      failed: [],
      waveStartedAt: at,
      bakeStartedAt: undefined,
      updatedAt: at,
    },
  };
}

/**
 * What a rollback's sender saw (probe11 K2): `fromRevision`, the cluster default; `rollout`, the
 * revision of the unfinished rollout it means to stop. Absent fields are not checked, so a request
 * without an expectation keeps its old meaning.
 */
export interface RollbackExpectation {
  readonly fromRevision?: number;
  readonly rollout?: number;
}

/**
 * Why `state` is no longer what the rollback's sender saw, in one line; undefined: it still is.
 * A double submit, a retry after an unconfirmed answer or a second operator would otherwise walk
 * back one revision more than meant, and a rollback meant to stop a canary already stopped would
 * move the stable default fleet-wide.
 */
export function rollbackExpectationMiss(state: ConfigTargetState, e: RollbackExpectation): string | undefined {
  const r = state.rollout;
  const unfinished = r && (isActive(r) || r.status === 'halted') ? r : undefined;
  const def = state.defaultRevision;
  if (e.rollout !== undefined) {
    if (unfinished?.configRevision === e.rollout) return undefined;
    const now = unfinished
      ? `the rollout in flight is of revision ${unfinished.configRevision}`
      : r?.configRevision === e.rollout
        ? `it is ${r.status}`
        : 'no rollout of it is in flight';
    return `the rollout of config revision ${e.rollout} is no longer in flight (${now}); the cluster default stays revision ${def}: nothing rolled back`;
  }
  if (e.fromRevision !== undefined && def !== e.fromRevision)
    return `the cluster default is config revision ${def}, not ${e.fromRevision} as this rollback expected (it moved meanwhile): nothing rolled back; see ctl status`;
  if (e.fromRevision !== undefined && unfinished)
    return `a rollout of config revision ${unfinished.configRevision} is ${unfinished.status} since this rollback read the state: nothing rolled back; run ctl rollback again to stop it`;
  return undefined;
}

/**
 * Instant config rollback: the default goes to `to`, or without it, during a rollout to where the
 * rollout started, and otherwise to the default the current one replaced (popped from
 * `earlierDefaults`, so rollbacks walk back through history and never return to a revision just
 * rolled back from: that takes a rollout, with its waves, or an explicit `to`). Every override goes
 * away; a completed rollout whose revision is left is marked rolled-back.
 */
export function rollbackConfig(state: ConfigTargetState, to: number | undefined, at: string): ConfigTargetState {
  const r = state.rollout;
  const unfinished = !!r && (isActive(r) || r.status === 'halted');
  let earlier = [...earlierDefaults(state)];
  let target: number | undefined;
  if (to !== undefined) {
    target = to;
    const back = earlier.lastIndexOf(to);
    // Back to a default in the history: forget what came after it; elsewhere: a jump forward.
    if (back >= 0) earlier = earlier.slice(0, back);
    else if (to !== state.defaultRevision) earlier = [...earlier, state.defaultRevision].slice(-MAX_EARLIER_DEFAULTS);
  } else if (unfinished) {
    target = r!.fromRevision; // the default did not move while the rollout ran
  } else {
    target = earlier.pop();
    if (target === undefined)
      throw new Error(
        state.previousDefault === undefined
          ? 'no previous config revision to roll back to'
          : `no earlier config revision to roll back to (revision ${state.defaultRevision} is the oldest default on record; name one with --config-revision)`,
      );
  }
  const leaving = target !== state.defaultRevision;
  const rollout =
    r &&
    (isActive(r) ||
      r.status === 'halted' ||
      (r.status === 'completed' && leaving && r.configRevision === state.defaultRevision))
      ? { ...r, status: 'rolled-back' as const, gate: undefined, updatedAt: at }
      : r;
  return { defaultRevision: target, previousDefault: earlier.at(-1), earlierDefaults: earlier, rollout };
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
