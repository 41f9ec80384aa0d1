import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  Compaction,
  compactionRecords,
  finishLeftRecord,
  markStopped,
  markStoppedQuietly,
  replayableFrom,
  settleLeftRecord,
  type CompactionRecord,
} from './compact-log.ts';
import { databaseOf } from './database-handle.ts';
import type { EventLog } from './event-log.ts';
import type { LogPosition } from './log-rows.ts';

/**
 * The planner's online retention (`--retain-versions`, `--retain-age`; review4 G8): compaction of
 * its own file while it runs, in small transactions (compact-log.ts `Compaction`), never past what
 * must stay. Default: no policy, nothing is removed.
 */
export interface RetentionPolicy {
  /** Keep the newest this many versions replayable (and their events, checkpoints and ACKs). */
  readonly versions?: number;
  /** Keep every version that was current at some time within this many ms before now. */
  readonly ageMs?: number;
}

/** A version retention must keep replayable, and what needs it (a noun phrase: /status says `heldBy` it). */
export interface RetentionFloor {
  readonly version: number;
  readonly why: string;
}

/** What the running planner says must stay, read at each run. */
export interface RetentionBounds {
  readonly floors: readonly RetentionFloor[];
  /**
   * The position the group's log acknowledged (the replicated log's mark): no row past it is
   * removed, so a truncation to the group's end (rows committed here, never appended) never needs
   * a removed row. Null: nothing acknowledged yet, nothing is removed. Undefined: not replicated.
   */
  readonly acknowledged?: LogPosition | null;
  /** Whether a node is one of the cluster's (the acks cut keeps each such node's last reports). */
  readonly clusterHas?: (node: string) => boolean;
}

/** The version a policy alone would keep from (undefined: it keeps everything there is). */
export function policyKeepsFrom(log: EventLog, policy: RetentionPolicy, now: Date): number | undefined {
  const latest = log.latestVersion()?.version;
  if (latest === undefined) return undefined;
  const keeps: number[] = [];
  if (policy.versions !== undefined) keeps.push(Math.max(1, latest - policy.versions + 1));
  if (policy.ageMs !== undefined) {
    // The version current at the window's start: the newest one made at or before it (versions_by_time).
    const start = new Date(now.getTime() - policy.ageMs).toISOString();
    const v = databaseOf(log)
      .prepare('SELECT version FROM versions WHERE created_at <= ? ORDER BY created_at DESC, version DESC LIMIT 1')
      .pluck()
      .get(start) as number | undefined;
    keeps.push(v ?? 1);
  }
  if (keeps.length === 0) return undefined;
  const from = Math.min(...keeps); // both given: the one that keeps more
  return from > 1 ? from : undefined;
}

/**
 * The version to compact before (pure over the log's rows): the policy's, lowered to every floor
 * and to the newest version whose events the group acknowledged. `heldBy` names the floor that
 * lowered it, if one did.
 */
export function retentionTarget(
  log: EventLog,
  policy: RetentionPolicy,
  bounds: RetentionBounds,
  now: Date,
): { before: number; heldBy?: string } | undefined {
  const wanted = policyKeepsFrom(log, policy, now);
  if (wanted === undefined) return undefined;
  let before = wanted;
  let heldBy: string | undefined;
  const lower = (version: number, why: string) => {
    if (version < before) {
      before = version;
      heldBy = why;
    }
  };
  for (const f of bounds.floors) lower(f.version, f.why);
  if (bounds.acknowledged === null) lower(0, "the group's log (it acknowledged nothing yet)");
  else if (bounds.acknowledged) {
    const seq = bounds.acknowledged.chains.events.id;
    const v = databaseOf(log)
      .prepare('SELECT max(version) FROM versions WHERE version <= ? AND seq_to <= ?')
      .pluck()
      .get(before, seq) as number | null;
    lower(v ?? 0, `the group's log (it acknowledged events up to seq ${seq})`);
  }
  if (before <= 1) return heldBy === undefined ? undefined : { before: 0, heldBy };
  return heldBy === undefined ? { before } : { before, heldBy };
}

/** The tables a run removes rows from (the metric's `table` label). */
export type RemovedTable = 'events' | 'acks' | 'versions' | 'checkpoints';

export interface RetentionRun {
  readonly at: string;
  readonly before: number;
  readonly eventsRemoved: number;
  readonly acksRemoved: number;
  readonly versionsRemoved: number;
  readonly checkpointsRemoved: number;
  readonly steps: number;
  readonly ms: number;
  readonly longestStepMs: number;
}

/** What /status and `db status` say of retention. */
export interface RetentionStatus {
  /** The policy (null: none; the log keeps everything). */
  readonly policy: RetentionPolicy | null;
  /** The oldest version the log still rebuilds (replayableFrom); null: none. */
  readonly oldestVersion: number | null;
  /** The first event still held (the events chain's anchor + 1), and the acks'. */
  readonly oldestSeq: number;
  readonly oldestAckId: number;
  /** The newest compaction recorded in the file (this planner's or `db compact`'s); null: never. */
  readonly lastCompaction: CompactionRecord | null;
  /** Why retention keeps more than the policy asks now (a floor); absent when nothing does. */
  readonly heldBy?: string;
  /** Why the last run failed; absent when it did not. */
  readonly error?: string;
}

export interface OnlineRetentionOptions {
  readonly log: EventLog;
  readonly policy: RetentionPolicy;
  /** Read at each run; undefined: not now (the planner does not hold the group's log yet). */
  readonly bounds: () => RetentionBounds | undefined;
  /** How often a run starts (default 60 s). */
  readonly intervalMs?: number;
  /** Rows removed per transaction (default 500: see docs/eventlog.md, "Online retention"). */
  readonly sliceRows?: number;
  readonly say?: (line: string) => void;
  /** Told after each step that removed rows (metrics). */
  readonly onRemoved?: (table: RemovedTable, n: number) => void;
  readonly now?: () => Date;
  /**
   * The monotonic clock (default performance.now). An age cut is measured at the wall clock, but
   * never past where this clock moved since the retention started; given with `now` in tests.
   */
  readonly monoNow?: () => number;
}

/**
 * Runs retention every `intervalMs` inside the planner that holds the file's writer lock: plans a
 * Compaction at the target (cut at a checkpoint the planner already wrote, so a step is a delete
 * of at most `sliceRows` rows), then runs one step per event-loop turn, so appends, the lease and
 * the API go on between steps. stop() ends a run between two steps (what it removed stays
 * removed, consistently).
 */
export class OnlineRetention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private heldBy: string | undefined;
  private error: string | undefined;
  private last: RetentionRun | undefined;
  /** The compaction of the run under way (its record is `underWay` on /status). */
  private current: Compaction | undefined;

  /** Both clocks read together at the start: see ageNow(). */
  private readonly anchor: { readonly wallMs: number; readonly monoMs: number };
  private saidStep = false;

  constructor(private readonly o: OnlineRetentionOptions) {
    this.anchor = { wallMs: this.wallNow().getTime(), monoMs: this.monoNow() };
  }

  private wallNow(): Date {
    return this.o.now?.() ?? new Date();
  }

  private monoNow(): number {
    // an injected wall clock without a monotonic one is a test that moves time by hand: follow it
    return this.o.monoNow?.() ?? (this.o.now ? Number.NaN : performance.now());
  }

  /**
   * The time an age cut is measured at: the wall clock, but never ahead of the start's wall time
   * plus the monotonic time since. A forward wall-clock step (NTP, an RTC wrong until it syncs, a
   * VM restored) would otherwise make rows inside the promised window look old and remove them for
   * good (probe8 C1: a +2 d step removed the last hour's versions); a backward step only keeps more.
   */
  private ageNow(say?: (line: string) => void): Date {
    const wall = this.wallNow();
    const steady = this.anchor.wallMs + (this.monoNow() - this.anchor.monoMs);
    if (!(wall.getTime() > steady)) return wall; // NaN (a hand-moved test clock) or not ahead: the wall clock
    const aheadMs = wall.getTime() - steady;
    if (aheadMs > 60_000 && say && !this.saidStep) {
      this.saidStep = true;
      say(
        `retention: the wall clock is ${Math.round(aheadMs / 1000)} s ahead of the time measured since this planner started (a clock step?): ages are measured on the latter`,
      );
    }
    return new Date(steady);
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.runOnce(), this.o.intervalMs ?? 60_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  /** One run now (or the one under way). Never throws: a failure is said and shown in status(). */
  runOnce(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.running ??= this.run().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** This process's last run that removed rows (undefined: none yet). */
  lastRun(): RetentionRun | undefined {
    return this.last;
  }

  status(): RetentionStatus {
    const heldBy = this.heldByNow();
    const s = retentionStatus(this.o.log, this.o.policy);
    const last = s.lastCompaction;
    const underWay =
      last && last.finishedAt === undefined && !last.stopped && last.id === this.current?.recordId
        ? { lastCompaction: { ...last, underWay: true } }
        : {};
    return {
      ...s,
      ...underWay,
      ...(heldBy === undefined ? {} : { heldBy }),
      ...(this.error === undefined ? {} : { error: this.error }),
    };
  }

  /**
   * What holds retention back now, read from today's floors (probe11 K3: the last run's reason
   * stayed on /status for up to a whole interval after the pin it named had moved); the last run's
   * when the bounds are not known now (not holding the group's log) or cannot be read.
   */
  private heldByNow(): string | undefined {
    try {
      const bounds = this.o.bounds();
      if (!bounds) return this.heldBy;
      return retentionTarget(this.o.log, this.o.policy, bounds, this.ageNow())?.heldBy;
    } catch {
      return this.heldBy;
    }
  }

  /** A floor below `before` the planner holds now (undefined: none, or the bounds cannot be read now). */
  private floorBelow(before: number): RetentionFloor | undefined {
    const floors = this.o.bounds()?.floors ?? [];
    return floors.filter((f) => f.version < before).sort((a, b) => a.version - b.version)[0];
  }

  private async run(): Promise<void> {
    const log = this.o.log;
    const say = this.o.say ?? (() => {});
    try {
      const bounds = this.o.bounds();
      if (!bounds) return;
      const now = this.ageNow(say);
      // No run of this process is under way: an unfinished record no one marked was left by a
      // process that ended during its run; said as such, not as a run that "goes on".
      const settled = settleLeftRecord(log, 'planner', this.o.now?.() ?? new Date());
      if (settled?.how === 'finished')
        say(`retention: compaction record ${settled.id} was left unfinished after its last removal; marked finished`);
      else if (settled)
        say(
          `retention: compaction record ${settled.id} was left unfinished by a process that ended during its run; marked stopped`,
        );
      const target = retentionTarget(log, this.o.policy, bounds, now);
      this.heldBy = target?.heldBy;
      // at or below what the log already keeps from (a floor that came later, a node that fell behind): nothing to do
      if (!target || target.before === 0) {
        this.error = undefined;
        return;
      }
      const limits = {
        atCheckpoint: true,
        by: 'planner',
        ...(bounds.acknowledged
          ? {
              maxAcksId: bounds.acknowledged.chains.acks.id,
              maxVersionsId: bounds.acknowledged.chains.versions.id,
            }
          : {}),
        ...(bounds.clusterHas ? { clusterHas: bounds.clusterHas } : {}),
        now: () => this.o.now?.() ?? new Date(),
      };
      // At or below what the log already keeps from (a floor that came later, a node that fell
      // behind): no event goes, but version rows a crash or an older release left may (probe9 V1).
      // Except a run killed part way at this very target: it wrote its checkpoints first, so the log
      // already rebuilds from the target, yet events up to its cut remain; planned again, its cut
      // (the same checkpoint) still lies ahead, so this run goes on with it.
      const from = replayableFrom(log) ?? 1;
      const left = compactionRecords(log)[0];
      const resumes = target.before === from && left?.finishedAt === undefined && left?.beforeVersion === from;
      const c =
        target.before <= from && !resumes
          ? Compaction.planVersionRows(log, limits)
          : Compaction.plan(log, target.before, limits);
      if (!c.hasWork) {
        // a run killed after its last removal step left its record unfinished: nothing else finishes it
        const id = finishLeftRecord(log, 'planner', this.o.now?.() ?? new Date());
        if (id !== undefined)
          say(`retention: compaction record ${id} was left unfinished after its last removal; marked finished`);
        this.error = undefined;
        return;
      }
      const t0 = performance.now();
      let before: Record<RemovedTable, number> = { events: 0, acks: 0, versions: 0, checkpoints: 0 };
      this.current = c;
      /** Why the run ended part way (undefined: it finished). */
      let stoppedWhy: string | undefined;
      for (;;) {
        let more: boolean;
        try {
          more = c.step(this.o.sliceRows ?? 500);
        } catch (e) {
          const why = e instanceof Error ? e.message : String(e);
          markStoppedQuietly(log, c.recordId, `a step failed: ${why}`, this.o.now?.() ?? new Date());
          throw e;
        }
        const r = c.result();
        const now = {
          events: r.eventsRemoved,
          acks: r.acksRemoved,
          versions: r.versionsRemoved,
          checkpoints: r.checkpointsRemoved,
        };
        for (const k of ['events', 'acks', 'versions', 'checkpoints'] as const)
          if (now[k] > before[k]) this.o.onRemoved?.(k, now[k] - before[k]);
        before = now;
        if (!more) break;
        if (this.stopped) {
          stoppedWhy = 'the planner stopped (shut down, or stepped down as leader)';
          break;
        }
        await nextTurn(); // appends, the lease and the API run between two steps
        // A pin or rollback accepted between two steps was checked against what the log rebuilt
        // then (it moves up in stages during a run, one checkpoint at a time), not against this
        // run's target: going on would remove the content it holds (CI: the oldest listed version
        // pinned mid-run, then /status had no rebuildable version at all).
        const came = this.floorBelow(target.before);
        if (came) {
          this.heldBy = came.why;
          stoppedWhy = `${came.why} came during it`;
          say(
            `retention: stopped the run to version ${target.before} after ${c.stepCount} steps: ${came.why} came during it (the next run plans again)`,
          );
          break;
        }
      }
      if (stoppedWhy !== undefined && c.recordId > 0)
        markStopped(log, c.recordId, stoppedWhy, this.o.now?.() ?? new Date());
      const r = c.result();
      this.last = {
        at: now.toISOString(),
        before: target.before,
        eventsRemoved: r.eventsRemoved,
        acksRemoved: r.acksRemoved,
        versionsRemoved: r.versionsRemoved,
        checkpointsRemoved: r.checkpointsRemoved,
        steps: c.stepCount,
        ms: Math.round(performance.now() - t0),
        longestStepMs: Math.round(c.longestStepMs * 10) / 10,
      };
      this.error = undefined;
      if (r.eventsRemoved + r.acksRemoved + r.versionsRemoved > 0)
        say(
          `retention: removed ${r.eventsRemoved} events (up to seq ${r.cutSeq}), ${r.acksRemoved} ACK/NACK rows and ${r.versionsRemoved} version rows (up to version ${r.versionsCutId}); the log rebuilds versions from ${replayableFrom(log) ?? '-'} on (${this.last.steps} steps in ${this.last.ms} ms, the longest ${this.last.longestStepMs} ms)${target.heldBy ? `; held back by ${target.heldBy}` : ''}`,
        );
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      if (why !== this.error) say(`retention: ${why}; tried again in the next run`);
      this.error = why;
    } finally {
      this.current = undefined;
    }
  }
}

/** What the file says of retention (no planner needed: `db status` reads it from a read-only log). */
export function retentionStatus(log: EventLog, policy: RetentionPolicy | null): RetentionStatus {
  const db = databaseOf(log);
  const anchor = (chain: string) =>
    db.prepare('SELECT anchor_id FROM chain_heads WHERE chain = ?').pluck().get(chain) as number;
  return {
    policy,
    oldestVersion: replayableFrom(log) ?? null,
    oldestSeq: anchor('events') + 1,
    oldestAckId: anchor('acks') + 1,
    lastCompaction: compactionRecords(log)[0] ?? null,
  };
}
