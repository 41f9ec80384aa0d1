import type { EventLog } from '../eventlog/index.ts';
import {
  configOverrides,
  decideRollout,
  pauseRollout,
  planWaves,
  promoteRollout,
  resumeRollout,
  rollbackConfig,
  rolloutElapsed,
  rolloutWaitMs,
  startRollout,
  type ClockReading,
  type ConfigTargetState,
  type NodeReport,
  type RolloutAnchors,
  type RolloutElapsed,
  type WavePolicy,
  type WaveSpec,
} from '../control/index.ts';
import {
  contentHash,
  readProxyConfig,
  type ConfigRevision,
  type OperationKind,
  type ProxyConfig,
} from '../model/index.ts';

/** A rollout as an operator asks for it: waves over the given fleet. */
export interface RolloutRequest {
  readonly waves: readonly WaveSpec[];
  readonly nodes: readonly string[];
  /**
   * Fleet nodes that may not be the canary, with why (notCanaryNodes over the nodes' status): the
   * first wave is taken among the others, or the rollout is refused (planWaves, W1).
   */
  readonly notCanary: ReadonlyMap<string, string>;
  readonly pauseOnError: boolean;
  /** Bake, wave timeout, failure budget and gates; DEFAULT_WAVE_POLICY when absent. */
  readonly policy?: WavePolicy;
}

export interface Actor {
  readonly actor: string;
  readonly reason: string;
}

/**
 * The config axis: proxy-config revisions, the cluster default, and the rollout in progress. Its
 * state is a plain value moved by libs/control's pure functions; every move is recorded as an
 * operation whose params carry the resulting state, so a restarted planner resumes it exactly.
 * The wave timeout and bake are measured on the monotonic clock from anchors kept here, in memory
 * (rolloutElapsed: a restored wave or bake takes its elapsed time from the wall clock once).
 */
export class ConfigAxis {
  private anchors: RolloutAnchors = {};

  private constructor(
    private readonly log: EventLog,
    private targetState: ConfigTargetState,
    private readonly now: () => Date,
    private readonly mono: () => number,
    /** Read-only, before the log holds any revision: what defaultConfig() shows meanwhile. */
    private readonly noRevisionYet?: ProxyConfig,
  ) {
    this.elapsed(); // a restored wave or bake is anchored now, once
  }

  /**
   * Restores from the log (the last operation that carries a config state); on a fresh log the
   * given config becomes revision 1 and the default, both written in one transaction. `readOnly`
   * (a follower, which writes nothing): a log without a config state yet (a fresh file before the
   * replicated log's catch-up) is read as "the latest revision it holds, or none" and nothing is
   * recorded: rows a follower wrote into its empty file made the group's snapshot refuse it as
   * another history, so a fresh replica never joined a trimmed stream (review2 R5).
   */
  static restore(
    log: EventLog,
    initial: ProxyConfig,
    now: () => Date = () => new Date(),
    /** mono: the monotonic clock durations are measured on (default performance.now()). */
    o: { readOnly?: boolean; mono?: () => number } = {},
  ): ConfigAxis {
    const mono = o.mono ?? (() => performance.now());
    const saved = log.latestOperationWith('configState')?.params.configState as ConfigTargetState | undefined;
    if (saved) return new ConfigAxis(log, saved, now, mono);
    if (o.readOnly) {
      const st = {
        defaultRevision: log.latestConfigRevision()?.revision ?? 0,
        previousDefault: undefined,
        rollout: undefined,
      };
      return new ConfigAxis(log, st, now, mono, initial);
    }
    const st = log.atomically(() => {
      const rev = log.latestConfigRevision() ?? log.recordConfigRevision({ config: initial, reason: 'initial config' });
      const first: ConfigTargetState = {
        defaultRevision: rev.revision,
        previousDefault: undefined,
        rollout: undefined,
      };
      log.recordOperation({
        kind: 'config',
        actor: 'planner',
        reason: 'initial config revision',
        params: { configState: first },
      });
      return first;
    });
    return new ConfigAxis(log, st, now, mono);
  }

  get state(): ConfigTargetState {
    return this.targetState;
  }

  revision(n: number): ConfigRevision | undefined {
    return this.log.configRevision(n);
  }

  defaultConfig(): ProxyConfig {
    const rev = this.log.configRevision(this.targetState.defaultRevision);
    return rev ? rev.config : this.noRevisionYet!;
  }

  /** The newest revision's number (0 before the first). */
  newestRevision(): number {
    return this.log.latestConfigRevision()?.revision ?? 0;
  }

  overrides(): Map<string, number> {
    return configOverrides(this.targetState);
  }

  /**
   * Records a new revision from a (partial) change over the default's config. A change that leaves
   * the default's values as they are makes nothing (no revision, no operation, no rollout: the
   * default is already what every node runs); one equal to another existing revision reuses it
   * (the newest such), so repeating an edit makes no twin revision. With `rollout`, the rollout of
   * the answered revision starts in the same transaction as its record, so a crash leaves either
   * both or neither. Compared with the newest revision before (review5 F2), a change equal to it
   * returned it without its rollout (`--waves --wait` exited 0 with nothing rolled out), and a
   * change back to the default's values made a twin revision the CLI called "no revision made".
   */
  newRevision(
    change: Record<string, unknown>,
    who: Actor,
    kind: OperationKind = 'config',
    rollout?: RolloutRequest,
  ): ConfigRevision {
    const base = this.defaultConfig();
    const config = readProxyConfig({ ...base, ...change });
    const hash = contentHash(config);
    const def = this.log.configRevision(this.targetState.defaultRevision);
    if (def && hash === def.hash) return def;
    const existing = this.revisionWithHash(hash);
    return this.log.atomically(() => {
      const rev = existing ?? this.log.recordConfigRevision({ config, reason: who.reason });
      this.log.recordOperation({
        kind,
        actor: who.actor,
        reason: who.reason,
        params: { revision: rev.revision, change, ...(existing ? { reused: true } : {}) },
      });
      if (rollout) this.startRollout({ ...rollout, revision: rev.revision }, who);
      return rev;
    });
  }

  /** The newest revision with this content hash (revisions are few: operators make them). */
  private revisionWithHash(hash: string): ConfigRevision | undefined {
    for (let n = this.log.latestConfigRevision()?.revision ?? 0; n >= 1; n--) {
      const rev = this.log.configRevision(n);
      if (rev?.hash === hash) return rev;
    }
    return undefined;
  }

  startRollout(o: RolloutRequest & { revision: number }, who: Actor): ConfigTargetState {
    if (!this.log.configRevision(o.revision)) throw new Error(`config revision ${o.revision} does not exist`);
    const waves = planWaves(o.nodes, o.waves, o.notCanary);
    const now = this.read();
    const next = startRollout(this.targetState, {
      configRevision: o.revision,
      waves,
      pauseOnError: o.pauseOnError,
      policy: o.policy,
      at: iso(now),
    });
    return this.commit(next, now, 'rollout', who, {
      revision: o.revision,
      waves,
      policy: next.rollout?.policy ?? null,
    });
  }

  pause(who: Actor): ConfigTargetState {
    const now = this.read();
    return this.commit(pauseRollout(this.targetState, iso(now)), now, 'rollout', who, { pause: true });
  }

  resume(who: Actor): ConfigTargetState {
    const now = this.read();
    return this.commit(resumeRollout(this.targetState, iso(now)), now, 'rollout', who, { resume: true });
  }

  /** Opens the --pause-before gate the rollout waits at; recorded as a `promote` gate decision. */
  promote(who: Actor): ConfigTargetState {
    const now = this.read();
    const next = promoteRollout(this.targetState, iso(now));
    return this.commit(next, now, 'rollout', who, { gate: 'promote', wave: next.rollout!.wave });
  }

  rollback(to: number | undefined, who: Actor): ConfigTargetState {
    if (to !== undefined && !this.log.configRevision(to)) throw new Error(`config revision ${to} does not exist`);
    const now = this.read();
    return this.commit(rollbackConfig(this.targetState, to, iso(now)), now, 'rollback', who, {
      axis: 'config',
      to: to ?? null,
    });
  }

  /** How long the running wave and its bake have lasted (monotonic; undefined: no rollout running). */
  elapsed(now: ClockReading = this.read()): RolloutElapsed | undefined {
    const { elapsed, anchors } = rolloutElapsed(this.targetState.rollout, this.anchors, now);
    this.anchors = anchors;
    return elapsed;
  }

  /** Ms until the running rollout's next deadline (wave timeout or bake end); undefined: none. */
  waitMs(): number | undefined {
    return rolloutWaitMs(this.targetState, this.elapsed());
  }

  /**
   * Feeds node reports, the fleet (a wave's node no longer in it is passed over) and the time to a
   * running rollout (on every ACK and on a timer); records
   * each gate decision (advance, bake, gate, tolerate, timeout, halt, complete) with its reason,
   * the resulting state in the same operation, so a restarted planner resumes the bake clock.
   */
  step(reports: ReadonlyMap<string, NodeReport>, fleet?: ReadonlySet<string>): boolean {
    const now = this.read();
    const { state: next, decision } = decideRollout(this.targetState, reports, iso(now), this.elapsed(now), fleet);
    if (next === this.targetState || !decision) return false;
    const r = next.rollout!;
    this.commit(
      next,
      now,
      'rollout',
      { actor: 'planner', reason: decision.reason },
      { gate: decision.kind, revision: r.configRevision, wave: r.wave, status: r.status },
    );
    return true;
  }

  /** Records `next`, stamped at `now`; a wave or bake it starts is anchored at that same reading. */
  private commit(
    next: ConfigTargetState,
    now: ClockReading,
    kind: OperationKind,
    who: Actor,
    params: Record<string, unknown>,
  ): ConfigTargetState {
    this.log.recordOperation({ kind, actor: who.actor, reason: who.reason, params: { ...params, configState: next } });
    this.targetState = next;
    this.elapsed(now);
    return next;
  }

  private read(): ClockReading {
    return { wallMs: this.now().getTime(), monoMs: this.mono() };
  }
}

const iso = (now: ClockReading) => new Date(now.wallMs).toISOString();
