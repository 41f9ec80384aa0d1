import type { NodeReport, Rollout } from '../../libs/control/index.ts';
import type { Ack } from '../../libs/model/index.ts';
import type { ConfigAxis, DataAxis } from '../../libs/versioning/index.ts';
import type { AckExpectations } from './ack-expectations.ts';
import type { NodeTracker } from './node-tracker.ts';
import type { StepFailures } from './step-failures.ts';

export interface RolloutDriverOptions {
  /** The planner's data and config (read at each use). */
  readonly axes: { readonly data: DataAxis; readonly config: ConfigAxis };
  readonly nodes: NodeTracker;
  /** Whether a node is in the fleet now (FleetStatus.inFleet). */
  readonly inFleet: (node: string) => boolean;
  readonly expectations: AckExpectations;
  /** The planner's serial queue: every step runs in it. */
  readonly serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
  readonly publishAndTarget: () => Promise<void>;
  readonly failures: StepFailures;
  readonly stopped: () => boolean;
  readonly role: () => 'leader' | 'follower';
  /** This planner's id and lease term, stamped on each gate decision it records (probe24 F2). */
  readonly decider?: () => { planner: string; term: number } | undefined;
}

/**
 * Steps the running rollout (ConfigAxis.step) from the nodes' reports, checked against what
 * their ACKs must echo, and wakes it at its next deadline (a wave's timeout, a bake's end).
 */
export class RolloutDriver {
  /** Wakes the rollout when a wave times out or its bake ends without any report arriving. */
  private clock: NodeJS.Timeout | undefined;
  /** The one step a burst of ACKs asked for (stepSoon), not run yet. */
  private soon: NodeJS.Immediate | undefined;

  constructor(private readonly o: RolloutDriverOptions) {}

  stop(): void {
    clearTimeout(this.clock);
    clearImmediate(this.soon);
  }

  /**
   * One step for the ACKs that arrive together: a version's ACKs from a fleet come in bursts (NATS
   * hands the planner many in one read), and a step reads every node of the wave, so a step per
   * ACK cost O(wave) each, O(wave²) a version (1.1 ms an ACK in a 100% wave of 2,000 nodes). The
   * step runs once the burst's reports are in (after the I/O callbacks of this turn), in the
   * serial queue, as a step per ACK did; what it decides is the same, from the newest reports.
   */
  stepSoon(): void {
    if (this.soon || this.o.stopped() || this.o.axes.config.state.rollout?.status !== 'running') return;
    this.soon = setImmediate(
      () =>
        void this.o
          .serial(async () => {
            this.soon = undefined;
            // a leader that stepped down since the burst decides nothing: the new leader steps
            if (!this.o.stopped() && this.o.role() === 'leader' && this.step()) await this.o.publishAndTarget();
          })
          .then(
            () => this.o.failures.recovered('rollout'),
            (e) => {
              this.soon = undefined; // refused before it ran (the queue of a follower): a later burst steps
              this.o.failures.fail('rollout', e);
            },
          ),
    );
  }

  /**
   * Sets the one rollout timer to the next deadline of the running rollout, measured on the
   * monotonic clock from the wave and bake start (ConfigAxis.waitMs; a restarted planner takes
   * their elapsed time from the persisted wall stamps once, see rolloutElapsed).
   */
  armClock(): void {
    clearTimeout(this.clock);
    const due = this.o.axes.config.waitMs();
    if (due === undefined || this.o.stopped()) return;
    // +5 ms: a timer may fire a hair early; 2^31-1 ms is the longest a Node timer can wait.
    const wait = Math.min(due + 5, 2_147_483_647);
    this.clock = setTimeout(
      () =>
        void this.o
          .serial(async () => {
            if (this.step()) await this.o.publishAndTarget();
            else this.armClock();
          })
          .then(
            () => this.o.failures.recovered('rollout'),
            (e) => {
              this.soon = undefined; // refused before it ran (the queue of a follower): a later burst steps
              this.o.failures.fail('rollout', e);
            },
          ),
      wait,
    );
    this.clock.unref?.();
  }

  /**
   * One step of the running rollout from the nodes' reports and the fleet now (see decideRollout).
   * Without a running rollout there is nothing to decide, and nothing is built: every ACK steps,
   * and the reports and the fleet are O(nodes) each, so a version's ACKs from 2,000 nodes cost
   * the planner's thread ~1.9 s of that alone (bench/planner/ack-intake-bench.ts).
   */
  step(): boolean {
    const r = this.o.axes.config.state.rollout;
    if (r?.status !== 'running') return false;
    // A step reads the wave's nodes only (decideRollout): their reports and which of them are
    // still in the fleet, not every node's (O(wave) per ACK, not O(fleet)).
    const wave = r.waves[r.wave] ?? [];
    const inFleet = new Set(wave.filter((n) => this.o.inFleet(n)));
    return this.o.axes.config.step(this.waveReports(r, wave), inFleet, this.o.decider?.());
  }

  /**
   * The reports a rollout step reads: the running rollout's wave's. Each ACK is checked against
   * the hashes the planner expects (expectedOf): a node that ACKs the revision but runs something
   * else fails the wave instead of passing it. An ACK whose node-state hash is still being
   * checked is left out (not answered yet, as far as the wave can tell): it neither passes nor
   * fails the wave until hashChecks has it, and then steps the rollout (checkedWave).
   */
  private waveReports(r: Rollout, wave: readonly string[]): Map<string, NodeReport> {
    const latest = this.o.axes.data.latest()?.version;
    const unchecked: string[] = [];
    const expect = (a: Ack) => {
      const e = this.o.expectations.expectedOf(a.node, a, latest, true);
      if (e.nodeStateChecking) unchecked.push(a.node);
      return e;
    };
    const reports = new Map<string, NodeReport>();
    const nowMs = performance.now();
    for (const n of wave) {
      const rep = this.o.nodes.report(n, expect, nowMs);
      if (rep) reports.set(n, rep);
    }
    // A mismatch already known (data hash, two appliers) fails the node whatever its node state.
    for (const n of unchecked) if (!reports.get(n)?.mismatch) reports.delete(n);
    this.failModeNotRun(r, wave, reports);
    return reports;
  }

  /**
   * A rollout that changes the proxy mode passes a node only once it runs that mode: an ACK of the
   * revision from a node whose applier runs another real mode (`--mode ipvs|nftables` ignores the
   * config's mode; `--mode auto` without IPVS runs nftables) fails it like a mismatching ACK. Before
   * 2026-12-04 such a rollout completed with every node SYNCED and none switched (probe24 F1).
   * Dry-run appliers (mode `dry-run`) run no mode and are not judged.
   */
  private failModeNotRun(
    r: { configRevision: number; fromRevision: number },
    wave: readonly string[],
    reports: Map<string, NodeReport>,
  ): void {
    const asked = this.o.axes.config.revision(r.configRevision)?.config.mode;
    const before = this.o.axes.config.revision(r.fromRevision)?.config.mode;
    if (!asked || asked === before) return;
    for (const node of wave) {
      const a = this.o.nodes.lastReport(node);
      const rep = reports.get(node);
      if (a?.type !== 'ACK' || a.configRevision !== r.configRevision) continue;
      if (!rep || rep.type !== 'ACK' || rep.mismatch || (a.mode !== 'ipvs' && a.mode !== 'nftables')) continue;
      if (a.mode === asked) continue;
      reports.set(a.node, {
        ...rep,
        mismatch: `ACKed config revision ${r.configRevision} (mode ${asked}) but runs ${a.mode}: its applier's --mode is fixed (only --mode auto follows the config's mode) or it fell back (no IPVS in its kernel)`,
      });
    }
  }

  /** A slice of hashChecks finished: a running wave whose nodes' ACKs were waiting for it steps. */
  checkedWave(nodes: readonly string[]): void {
    const r = this.o.axes.config.state.rollout;
    if (this.o.role() !== 'leader' || this.o.stopped() || r?.status !== 'running') return;
    const wave = new Set(r.waves[r.wave]);
    if (!nodes.some((n) => wave.has(n))) return;
    void this.o
      .serial(async () => {
        if (this.step()) await this.o.publishAndTarget();
      })
      .then(
        () => this.o.failures.recovered('rollout'),
        (e) => this.o.failures.fail('rollout', e),
      );
  }
}
