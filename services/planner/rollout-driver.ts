import type { NodeReport } from '../../libs/control/index.ts';
import type { ConfigAxis, DataAxis } from '../../libs/versioning/index.ts';
import type { AckExpectations } from './ack-expectations.ts';
import type { NodeTracker } from './node-tracker.ts';
import type { StepFailures } from './step-failures.ts';

export interface RolloutDriverOptions {
  /** The planner's data and config (read at each use). */
  readonly axes: { readonly data: DataAxis; readonly config: ConfigAxis };
  readonly nodes: NodeTracker;
  /** The fleet now (Planner.fleet). */
  readonly fleet: () => string[];
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

  constructor(private readonly o: RolloutDriverOptions) {}

  stop(): void {
    clearTimeout(this.clock);
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
            (e) => this.o.failures.fail('rollout', e),
          ),
      wait,
    );
    this.clock.unref?.();
  }

  /** One step of the running rollout from the nodes' reports and the fleet now (see decideRollout). */
  step(): boolean {
    return this.o.axes.config.step(this.rolloutReports(), new Set(this.o.fleet()), this.o.decider?.());
  }

  /**
   * The reports a rollout step reads. While a rollout runs, each ACK is checked against the
   * hashes the planner expects (expectedOf): a node that ACKs the revision but runs something
   * else fails the wave instead of passing it. An ACK whose node-state hash is still being
   * checked is left out (not answered yet, as far as the wave can tell): it neither passes nor
   * fails the wave until hashChecks has it, and then steps the rollout (checkedWave). Without a
   * running rollout no step reads them.
   */
  private rolloutReports(): Map<string, NodeReport> {
    const r = this.o.axes.config.state.rollout;
    if (r?.status !== 'running') return this.o.nodes.reports();
    const latest = this.o.axes.data.latest()?.version;
    const wave = new Set(r.waves[r.wave]); // the only nodes a step reads: check no others
    const unchecked: string[] = [];
    const reports = this.o.nodes.reports((a) => {
      if (!wave.has(a.node)) return {};
      const e = this.o.expectations.expectedOf(a.node, a, latest, true);
      if (e.nodeStateChecking) unchecked.push(a.node);
      return e;
    });
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
    wave: ReadonlySet<string>,
    reports: Map<string, NodeReport>,
  ): void {
    const asked = this.o.axes.config.revision(r.configRevision)?.config.mode;
    const before = this.o.axes.config.revision(r.fromRevision)?.config.mode;
    if (!asked || asked === before) return;
    for (const a of this.o.nodes.lastHeard()) {
      const rep = reports.get(a.node);
      if (!wave.has(a.node) || a.type !== 'ACK' || a.configRevision !== r.configRevision) continue;
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
