import type { EventLog } from '../eventlog/index.ts';
import {
  configDelta,
  configOverrides,
  decideRollout,
  formatAssignments,
  formatFieldChanges,
  unaskedChanges,
  pauseRollout,
  planWaves,
  promoteRollout,
  resumeRollout,
  rollbackConfig,
  rollbackExpectationMiss,
  rolloutElapsed,
  rolloutWaitMs,
  startRollout,
  type ClockReading,
  type ConfigTargetState,
  type FieldChange,
  type NodeReport,
  type RollbackExpectation,
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
  /**
   * Roll out a revision made from an earlier default although it would also change fields its
   * operator did not ask for (they go back to the values of the default it was made from; K1).
   */
  readonly force?: boolean;
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
        // base: the default the change was made over (K1: a rollout once another default is in force reverts it)
        params: {
          revision: rev.revision,
          change,
          base: this.targetState.defaultRevision,
          ...(existing ? { reused: true } : {}),
        },
      });
      if (rollout) this.startRollout({ ...rollout, revision: rev.revision }, who);
      return rev;
    });
  }

  /**
   * The content hash of the revision newRevision(change) would record, or undefined when it would
   * record none (the change leaves the default as it is, or equals an existing revision).
   */
  newRevisionHash(change: Record<string, unknown>): string | undefined {
    const hash = contentHash(readProxyConfig({ ...this.defaultConfig(), ...change }));
    if (hash === this.log.configRevision(this.targetState.defaultRevision)?.hash) return undefined;
    return this.revisionWithHash(hash) ? undefined : hash;
  }

  /** The newest revision with this content hash (revisions are few: operators make them). */
  private revisionWithHash(hash: string): ConfigRevision | undefined {
    for (let n = this.log.latestConfigRevision()?.revision ?? 0; n >= 1; n--) {
      const rev = this.log.configRevision(n);
      if (rev?.hash === hash) return rev;
    }
    return undefined;
  }

  /** What moving the default to revision `n` changes, field by field (empty: `n` does not exist). */
  deltaTo(n: number): FieldChange[] {
    const rev = this.log.configRevision(n);
    return rev ? configDelta(filled(this.defaultConfig()), rev.config) : [];
  }

  /**
   * Starts the rollout of a revision. One made from a default other than the one in force now
   * would also change the fields its operator did not touch (back to that older default's
   * values): refused in one line naming them, unless `force` (K1). Rebasing the revision instead
   * would change what it means after it was shown and recorded; refusing keeps a revision's
   * number naming one config. The operation records what changes against the current default.
   */
  startRollout(o: RolloutRequest & { revision: number }, who: Actor): ConfigTargetState {
    const rev = this.log.configRevision(o.revision);
    if (!rev) throw new Error(`config revision ${o.revision} does not exist`);
    const waves = planWaves(o.nodes, o.waves, o.notCanary);
    const now = this.read();
    const next = startRollout(this.targetState, {
      configRevision: o.revision,
      waves,
      pauseOnError: o.pauseOnError,
      policy: o.policy,
      at: iso(now),
    });
    const current = filled(this.defaultConfig());
    const changes = configDelta(current, rev.config);
    const made = this.madeAs(o.revision);
    // made over the default in force: what it changes is what was asked
    const stale = made && made.base !== this.targetState.defaultRevision;
    const unasked = stale ? unaskedChanges(current, rev.config, Object.keys(made.change)) : [];
    if (unasked.length > 0 && !o.force) throw new Error(this.staleBaseLine(o.revision, made!, unasked));
    return this.commit(next, now, 'rollout', who, {
      revision: o.revision,
      waves,
      policy: next.rollout?.policy ?? null,
      changes,
      ...(unasked.length > 0 ? { forced: unasked } : {}),
    });
  }

  /** `config revision 5 was made from revision 3, and revision 4 has become the default since: …`. */
  private staleBaseLine(n: number, made: MadeAs, unasked: readonly FieldChange[]): string {
    const def = this.targetState.defaultRevision;
    const from =
      made.base === undefined
        ? `config revision ${n} was not made from the cluster default (revision ${def})`
        : `config revision ${n} was made from revision ${made.base}, and revision ${def} has become the cluster default since`;
    return (
      `${from}: rolling it out would also change ${formatFieldChanges(unasked)}; ` +
      `make the change again over the default (ctl config set ${formatAssignments(made.change)}) or roll it out with --force`
    );
  }

  /**
   * The change revision `n` was last asked as (its newest config or mode operation) and the
   * default it was made over (absent in operations recorded before bases were; K1). Undefined
   * for a revision no operation made (the initial one). Operators make revisions rarely, and this
   * is read only when a rollout starts, so a scan of the operations is cheap enough.
   */
  private madeAs(n: number): MadeAs | undefined {
    const ops = this.log.operations();
    for (let i = ops.length - 1; i >= 0; i--) {
      const { kind, params } = ops[i]!;
      if ((kind !== 'config' && kind !== 'mode') || params.revision !== n) continue;
      const change = params.change;
      if (!change || typeof change !== 'object' || Array.isArray(change)) continue;
      const base = typeof params.base === 'number' ? params.base : undefined;
      return { change: change as Record<string, unknown>, base };
    }
    return undefined;
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

  /**
   * Instant rollback (rollbackConfig). `expect`: what the sender saw; when the state moved since,
   * refused in one line naming who moved it last, so a double submit or a retry does not walk
   * back twice (K2). A named revision that never was the cluster default is refused unless
   * `force`: the rollback would be its instant, unstaged rollout to every node (K7).
   */
  rollback(
    to: number | undefined,
    who: Actor,
    o: { expect?: RollbackExpectation; force?: boolean } = {},
  ): ConfigTargetState {
    if (to !== undefined && !this.log.configRevision(to)) throw new Error(`config revision ${to} does not exist`);
    const miss = o.expect && rollbackExpectationMiss(this.targetState, o.expect);
    if (miss) throw new Error(`${miss}${this.lastMoveText()}`);
    if (to !== undefined && !o.force && !this.wasDefault(to))
      throw new Error(
        `config revision ${to} was never the cluster default: a rollback to it would roll it out to every node at once; ` +
          `roll it out in waves (ctl rollout --config-revision ${to}) or pass --force`,
      );
    const now = this.read();
    return this.commit(rollbackConfig(this.targetState, to, iso(now)), now, 'rollback', who, {
      axis: 'config',
      to: to ?? null,
      ...(o.expect ? { expect: o.expect } : {}),
      ...(o.force ? { force: true } : {}),
    });
  }

  /** Whether revision `n` is or was the cluster default (any recorded config state says so). */
  private wasDefault(n: number): boolean {
    const st = this.targetState;
    if (st.defaultRevision === n || st.rollout?.fromRevision === n) return true;
    return this.log
      .operations()
      .some((op) => (op.params.configState as ConfigTargetState | undefined)?.defaultRevision === n);
  }

  /** `; last config operation: rollback by bob at T ("undo")`, or '' when none by an operator. */
  private lastMoveText(): string {
    const ops = this.log.operations({ newest: 200 });
    for (let i = ops.length - 1; i >= 0; i--) {
      const op = ops[i]!;
      if (op.actor === 'planner' || op.params.configState === undefined) continue;
      return `; last config operation: ${op.kind} by ${op.actor} at ${op.at}${op.reason ? ` (${JSON.stringify(op.reason)})` : ''}`;
    }
    return '';
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
  step(
    reports: ReadonlyMap<string, NodeReport>,
    fleet?: ReadonlySet<string>,
    /** Which planner decides, in which term (a group's leader): recorded as the operation's `by`. */
    by?: { readonly planner: string; readonly term: number },
  ): boolean {
    const now = this.read();
    const { state: next, decision } = decideRollout(this.targetState, reports, iso(now), this.elapsed(now), fleet);
    if (next === this.targetState || !decision) return false;
    const r = next.rollout!;
    this.commit(
      next,
      now,
      'rollout',
      { actor: 'planner', reason: decision.reason },
      { gate: decision.kind, revision: r.configRevision, wave: r.wave, status: r.status, ...(by ? { by } : {}) },
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

/**
 * A config with every field, as revisions made from a change have them (readProxyConfig fills the
 * defaults): an initial config given partly must not read as a change of the fields it left out.
 */
function filled(config: ProxyConfig): ProxyConfig {
  try {
    return readProxyConfig({ ...config });
  } catch {
    return config; // one this version no longer reads as valid: compared as it is
  }
}

interface MadeAs {
  readonly change: Record<string, unknown>;
  readonly base: number | undefined;
}

const iso = (now: ClockReading) => new Date(now.wallMs).toISOString();
