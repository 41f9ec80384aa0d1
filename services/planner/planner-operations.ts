import type { EventLog } from '../../libs/eventlog/index.ts';
import type { FieldChange, RollbackExpectation, WavePolicy, WaveSpec } from '../../libs/control/index.ts';
import type { Operation } from '../../libs/model/index.ts';
import type { Actor, ConfigAxis, DataAxis, DataOperation } from '../../libs/versioning/index.ts';
import type { PlannerBus } from './planner-bus.ts';
import type { VersionsStreamSync } from './versions-stream-sync.ts';

/**
 * An operation committed to this planner's file but not (known to be) in the group's log: the
 * caller must not take it as done. API: 503.
 */
export class NotCommittedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotCommittedError';
  }
}

export interface PlannerOperationsOptions {
  readonly log: EventLog;
  readonly bus: PlannerBus;
  /** PlannerOptions.commit: resolves once the group's log holds every row committed to the file. */
  readonly commit?: () => Promise<void>;
  /** The planner's data and config (read at each use). */
  readonly axes: { readonly data: DataAxis; readonly config: ConfigAxis };
  readonly stream: VersionsStreamSync;
  /** The planner's serial queue: every operation runs in it (and is refused on a follower). */
  readonly serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
  readonly publishAndTarget: () => Promise<void>;
  /** One step of the running rollout; true when targets must move. */
  readonly stepRollout: () => boolean;
  readonly armRolloutClock: () => void;
  /** The fleet a rollout waves over, and those of its nodes that may not be its canary (W1). */
  readonly waveFleet: () => { nodes: string[]; notCanary: Map<string, string> };
}

/**
 * The operator's operations on a leader (pin, unpin, config change, rollout, rollback, a refusal's
 * record), each recorded with actor and reason, answered only once the group's log holds it.
 */
export class PlannerOperations {
  constructor(private readonly o: PlannerOperationsOptions) {}

  /**
   * Awaited by every operation right after its local commit, before it publishes or answers: a
   * row only this file holds is dropped by a step-down's truncation (follow() keeps what the
   * group holds), so an operation answered before its flush could vanish from the group's history
   * while the operator holds its id (review2 R4). A fenced flush means another leader wrote: this
   * planner steps down (the group's flush timer sees the same fence) and the rows are dropped; a
   * flush that timed out or was abandoned may still land, so the caller is told to check.
   */
  private async committed(what: string): Promise<void> {
    try {
      await this.o.commit?.();
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new NotCommittedError(
        e instanceof Error && e.name === 'FencedError'
          ? `${what} is not committed to the group's log (${why}): this planner steps down and drops it; retry against the leader`
          : `${what} is not confirmed in the group's log (${why}): it is lost if this planner steps down before its next flush; check the leader's 'audit ops' before retrying`,
      );
    }
  }

  private async finishData(d: DataOperation) {
    this.o.stream.remember(d.version);
    await this.committed(`operation ${d.operation.id} (${d.operation.kind})`);
    await this.o.publishAndTarget();
    return {
      operation: d.operation.id,
      version: d.version?.record.version ?? null,
      hash: this.o.axes.data.publishedHash(),
      pinned: this.o.axes.data.pin ?? null,
    };
  }

  /**
   * Holds the data at `version`'s content. `expectPin`: the pinned version its sender saw (0: none);
   * when another pin replaced it meanwhile, refused (409) naming that pin (probe11 K2). The answer
   * names the pin this one replaced (`replaced`), so last-writer-wins is said, not silent.
   */
  pin(version: number, who: Actor, kind: 'pin' | 'rollback' = 'pin', expectPin?: number) {
    return this.o.serial(async () => {
      this.o.stream.refuseWhileDisagreeing(`this ${kind}`);
      const earlier = this.pinHolder();
      this.checkPinExpectation(expectPin, `this ${kind}`);
      const out = await this.finishData(this.o.axes.data.holdAt(version, kind, who));
      const replaced = earlier && earlier.version !== version ? earlier : undefined;
      return replaced ? { ...out, replaced } : out;
    });
  }

  unpin(who: Actor, expectPin?: number) {
    return this.o.serial(() => {
      this.o.stream.refuseWhileDisagreeing('this unpin');
      this.checkPinExpectation(expectPin, 'this unpin');
      return this.finishData(this.o.axes.data.release(who));
    });
  }

  /** The pin in force and who set it (the operation that recorded it), or undefined. */
  private pinHolder() {
    const pin = this.o.axes.data.pin;
    if (!pin) return undefined;
    const op = this.o.log.latestOperationWith('pin');
    const by = op && (op.params.pin as { version?: number } | null)?.version === pin.version ? op : undefined;
    return { version: pin.version, kind: pin.kind, actor: by?.actor ?? null, at: by?.at ?? null };
  }

  private checkPinExpectation(expectPin: number | undefined, what: string): void {
    if (expectPin === undefined) return;
    const held = this.pinHolder();
    if ((held?.version ?? 0) === expectPin) return;
    const now = held
      ? `the data is pinned to version ${held.version} (${held.kind}${held.actor ? ` by ${held.actor} at ${held.at}` : ''})`
      : 'the data is not pinned';
    const saw = expectPin === 0 ? 'no pin' : `a pin to version ${expectPin}`;
    throw new Error(`${now}, not ${saw} as ${what} expected: nothing done; see ctl status`);
  }

  configChange(
    change: Record<string, unknown>,
    who: Actor,
    kind: 'mode' | 'config',
    rollout?: { waves: WaveSpec[]; pauseOnError: boolean; policy?: WavePolicy },
  ) {
    return this.o.serial(async () => {
      this.o.stream.refuseWhileDisagreeing(`this ${kind} change`);
      await this.refuseRevisionTheBusHolds(change, kind);
      const rev = this.o.axes.config.newRevision(change, who, kind, rollout && { ...rollout, ...this.o.waveFleet() });
      await this.committed(`config revision ${rev.revision} (${kind})`);
      if (this.o.axes.config.state.rollout?.configRevision === rev.revision) await this.o.publishAndTarget();
      return { revision: rev.revision, hash: rev.hash, config: rev.config, state: this.o.axes.config.state };
    });
  }

  rollout(
    o: {
      revision?: number;
      waves?: WaveSpec[];
      pauseOnError?: boolean;
      policy?: WavePolicy;
      resume?: boolean;
      pause?: boolean;
      promote?: boolean;
      /** Roll out a revision made from an earlier default although it reverts fields (K1). */
      force?: boolean;
    },
    who: Actor,
  ) {
    return this.o.serial(async () => {
      if (o.pause) {
        const st = this.o.axes.config.pause(who); // overrides stay as they are: nothing to publish
        this.o.armRolloutClock(); // a paused rollout has no deadline
        await this.committed('the rollout pause'); // lost, the next leader would carry the rollout on
        return st;
      }
      this.o.stream.refuseWhileDisagreeing(o.resume ? 'this resume' : o.promote ? 'this promotion' : 'this rollout');
      let changes: FieldChange[] | undefined;
      if (o.resume) this.o.axes.config.resume(who);
      else if (o.promote) this.o.axes.config.promote(who);
      else {
        if (o.revision === undefined || !o.waves)
          throw new Error('rollout needs a config revision and waves (or resume)');
        changes = this.o.axes.config.deltaTo(o.revision);
        this.o.axes.config.startRollout(
          {
            revision: o.revision,
            waves: o.waves,
            ...this.o.waveFleet(),
            pauseOnError: !!o.pauseOnError,
            policy: o.policy,
            force: o.force,
          },
          who,
        );
      }
      this.o.stepRollout();
      await this.committed(`the rollout ${o.resume ? 'resume' : o.promote ? 'promotion' : 'start'}`);
      await this.o.publishAndTarget();
      // changes: what the started rollout moves against the default it started from (K1)
      return changes ? { ...this.o.axes.config.state, changes } : this.o.axes.config.state;
    });
  }

  /**
   * Records an operator action the API refused (refused-operations.ts, probe11 K5). A leader only
   * (serial refuses on a follower); queued behind the operation in flight and, like an accepted
   * operation, settled only once the group's log holds it: the refusal changed nothing, but its
   * record is the audit trail, and one not yet flushed was lost with a step-down (the next leader
   * answers `audit ops` without it). Rejects (NotCommittedError) when the flush fails; the API
   * still answers the refusal as it would.
   */
  recordRefusal(op: Operation): Promise<void> {
    return this.o.serial(async () => {
      this.o.log.recordOperation(op);
      await this.committed(`the record of a refused ${op.kind}`);
    });
  }

  /**
   * Instant config rollback. `o.expect`: the state its sender saw, checked (409 when it moved,
   * probe11 K2); `o.force`: to a revision that never was the default (K7). The answer carries the
   * default it moved from (`rolledBackFrom`) and the rollout it stopped, if any (`stoppedRollout`).
   */
  rollbackConfig(to: number | undefined, who: Actor, o: { expect?: RollbackExpectation; force?: boolean } = {}) {
    return this.o.serial(async () => {
      this.o.stream.refuseWhileDisagreeing('this rollback');
      const before = this.o.axes.config.state;
      const r = before.rollout;
      const st = this.o.axes.config.rollback(to, who, o);
      await this.committed('the config rollback');
      await this.o.publishAndTarget();
      const stopped = r && r.status !== st.rollout?.status && st.rollout?.status === 'rolled-back';
      return {
        ...st,
        rolledBackFrom: before.defaultRevision,
        ...(stopped ? { stoppedRollout: r.configRevision } : {}),
      };
    });
  }

  /**
   * A log behind the targets bucket (restored, fresh, another group's) numbers its next config
   * revision as one the bucket holds with other content: recorded, it could never be put, and
   * from then on no target moved (`config revision 2 already exists with another hash`), every
   * new data version stuck on the bus (probe13 R8). Refused before it is recorded.
   */
  private async refuseRevisionTheBusHolds(change: Record<string, unknown>, kind: string): Promise<void> {
    const hash = this.o.axes.config.newRevisionHash(change);
    if (hash === undefined) return;
    const next = this.o.axes.config.newestRevision() + 1;
    const held = await this.o.bus.configRevisionHash?.(next);
    if (held === undefined || held === hash) return;
    throw new Error(
      `this ${kind} change refused: config revision ${next} already exists in the targets bucket with other content (hash ${held.slice(0, 12)}; this log ends at revision ${next - 1}: restored or fresh?), and a revision number names one config; see docs/operations.md "Restoring from a backup"`,
    );
  }
}
