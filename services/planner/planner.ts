import type { RetentionFloor } from '../../libs/eventlog/index.ts';
import {
  runInSlices,
  type AckOrNack,
  type NodeTarget,
  type Operation,
  type Rejection,
} from '../../libs/model/index.ts';
import { vipConflicts } from '../../libs/planner/index.ts';
import { ConfigAxis, DataAxis } from '../../libs/versioning/index.ts';
import { FleetStatus, type PlannerStatusRow } from './fleet-status.ts';
import type { NodeHashChecks } from './node-hash-checks.ts';
import { NodeTracker } from './node-tracker.ts';
import { EventIntake } from './event-intake.ts';
import { AckExpectations } from './ack-expectations.ts';
import { ReportLogGate } from './report-log-gate.ts';
import { InvalidReportLimiter } from './invalid-reports.ts';
import { PlannerOperations } from './planner-operations.ts';
import { ReportIntake } from './report-intake.ts';
import { ReportWriter } from './report-writer.ts';
import { RolloutDriver } from './rollout-driver.ts';
import type { PlannerOptions } from './planner-options.ts';
import { rebuildable, retentionFloors } from './retained-versions.ts';
import { StepFailures } from './step-failures.ts';
import { TargetWriter } from './target-writer.ts';
import { VersionsStreamSync } from './versions-stream-sync.ts';

export type { PlannerHooks, PlannerOptions } from './planner-options.ts';
export { NotCommittedError } from './planner-operations.ts';

/**
 * The planner: source → event log → ClusterState → debounced sync → version → bus. Every
 * mutation runs through one serial queue, so the log, the in-memory state and the targets on
 * the bus always move together; I/O is awaited inside the queue (publish before targets).
 */
export class Planner {
  data!: DataAxis;
  config!: ConfigAxis;
  readonly nodes: NodeTracker;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** What ACKs must echo: the log's data hash, and the node-state hashes rendered off the read paths. */
  private readonly expectations: AckExpectations;
  private viewStale: string | undefined;
  private stopped = false;
  /** Which ACK/NACKs reach the log (review3 N2); held ones are written by `reports`. */
  readonly reportGate = new ReportLogGate();
  private firstUnsyncedAt: number | undefined;
  /** Ends the initial list's hold on WAL checkpoints (see EventLog.holdWalCheckpoints). */
  private releaseWal: (() => void) | undefined;
  isSynced = false;
  /** Follower: told when a node reports a version this view does not hold yet (onViewBehind). */
  private viewBehind: ((version: number) => void) | undefined;
  private readonly invalidReports = new InvalidReportLimiter();
  /** vipConflicts() of the published content with that content's hash. */
  private conflicts:
    | { readonly hash: string; readonly revision: number; readonly list: readonly Rejection[] }
    | undefined;
  readonly synced: Promise<void>;
  private resolveSynced!: () => void;

  /** Each step's failure while it lasts (lastError, failure, failingFor). */
  private readonly failures: StepFailures;
  /** Publishes to the versions stream what it lacks of the log, and again what it lost. */
  private readonly stream: VersionsStreamSync;
  /** Writes config revisions and targets to the bus. */
  private readonly targets: TargetWriter;
  /** The fleet, each node's target and its status row. */
  private readonly fleetStatus: FleetStatus;
  /** Steps the running rollout and wakes it at its deadlines. */
  private readonly rollouts: RolloutDriver;
  /** The event source and the batcher that appends what it delivers to the log. */
  private readonly intake: EventIntake;
  /** The operator's operations (pin, rollout, rollback, ...). */
  private readonly operations: PlannerOperations;
  /** Takes in the nodes' reports (and seeds them from the log). */
  private readonly reportIntake: ReportIntake;
  /** Writes the reports the gate lets through, and those the log refused, to the log. */
  private readonly reports: ReportWriter;

  constructor(private readonly options: PlannerOptions) {
    this.nodes = new NodeTracker(options.statusThresholds);
    this.failures = new StepFailures({
      onError: (where, err) => this.options.hooks?.onError?.(where, err),
      onChange: (c) => this.options.hooks?.onStepFailure?.(c),
    });
    this.expectations = new AckExpectations({
      log: options.log,
      axes: this,
      role: () => this.role,
      onChecked: (nodes) => {
        this.recovered('node-state check');
        this.rollouts.checkedWave(nodes);
      },
      onError: (node, e) => this.fail('node-state check', new Error(`rendering ${node}: ${errorText(e)}`)),
    });
    this.stream = new VersionsStreamSync({
      log: options.log,
      bus: options.bus,
      hooks: options.hooks,
      axes: this,
    });
    this.targets = new TargetWriter({ bus: options.bus, axes: this });
    this.fleetStatus = new FleetStatus({
      axes: this,
      nodes: this.nodes,
      nodeSelector: options.nodeSelector,
      invalidReports: this.invalidReports,
      reportGate: () => this.reportGate,
      role: () => this.role,
      expectations: this.expectations,
      viewStale: () => this.viewStale,
      onNodeForgotten: (n) => this.options.hooks?.onNodeForgotten?.(n),
    });
    this.intake = new EventIntake({
      source: options.source,
      hooks: options.hooks,
      axes: this,
      serial: (fn) => this.serial(fn),
      failures: this.failures,
      stopped: () => this.stopped,
      isSynced: () => this.isSynced,
      appended: () => this.scheduleSync(),
    });
    this.rollouts = new RolloutDriver({
      axes: this,
      nodes: this.nodes,
      inFleet: (node) => this.fleetStatus.inFleet(node),
      expectations: this.expectations,
      serial: (fn) => this.serial(fn),
      publishAndTarget: () => this.publishAndTarget(),
      failures: this.failures,
      stopped: () => this.stopped,
      role: () => this.role,
      decider: options.decider,
    });
    this.operations = new PlannerOperations({
      log: options.log,
      bus: options.bus,
      commit: options.commit,
      axes: this,
      stream: this.stream,
      serial: (fn) => this.serial(fn),
      publishAndTarget: () => this.publishAndTarget(),
      stepRollout: () => this.rollouts.step(),
      armRolloutClock: () => this.rollouts.armClock(),
      waveFleet: () => this.fleetStatus.waveFleet(),
    });
    this.reports = new ReportWriter({
      log: options.log,
      gate: () => this.reportGate,
      serial: (fn) => this.serial(fn),
      failures: this.failures,
      stopped: () => this.stopped,
    });
    this.reportIntake = new ReportIntake({
      log: options.log,
      hooks: options.hooks,
      nodes: this.nodes,
      gate: () => this.reportGate,
      writer: this.reports,
      invalidReports: this.invalidReports,
      axes: this,
      rollouts: this.rollouts,
      serial: (fn) => this.serial(fn),
      publishAndTarget: () => this.publishAndTarget(),
      failures: this.failures,
      now: () => this.now(),
    });
    this.synced = new Promise((r) => (this.resolveSynced = r));
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /**
   * Data and config as the log holds them; the data rebuilt in slices (DataAxis.restoreSteps): at
   * 10,000 services × 250 endpoints one call held the thread ~16 s, so a planner elected, or
   * stepping down, lost its lease to its own restore, and every replica after it did the same
   * (docs/scale.md). The config is read in the same turn as the data's first step.
   */
  private async restoreViews(): Promise<{ data: DataAxis; config: ConfigAxis }> {
    const log = this.options.log;
    // A follower writes nothing, not even the initial config revision (review2 R5).
    const config = ConfigAxis.restore(log, this.options.initialConfig, () => this.now(), {
      readOnly: this.role === 'follower',
    });
    const data = await runInSlices(DataAxis.restoreSteps(log), {
      sliceMs: this.options.buildSliceMs ?? 10,
      stopIf: () => (this.stopped ? 'the planner stopped while restoring its view' : undefined), // its log may close
    });
    return { data, config };
  }

  /**
   * Restores data and config from the log, unless done: start() does it first. The group calls it
   * before it shows this planner, so nothing reads a planner still restoring.
   */
  async restore(): Promise<void> {
    if (this.restored) return;
    const { data, config } = await this.restoreViews();
    this.data = data;
    this.config = config;
    this.restored = true;
  }

  private restored = false;

  /** Restores from the log, republishes what the stream lacks, then starts the source. */
  async start(): Promise<void> {
    await this.restore();
    if (this.stopped) return; // stopped while restoring: it listens to nothing, starts no source
    if (this.role === 'follower') {
      // Every node's last report in the log, as a leader seeds them: a leader that just stepped
      // down (a new follower Planner) must not show nodes it heard seconds ago as never heard from.
      this.reportIntake.seedLastReports();
      this.expectations.checkAll(this.nodes.lastHeard());
      this.fleetStatus.noteTargets(this.data.latest()?.version ?? 0, performance.now());
      this.options.bus.listen({
        onAck: (a) => {
          this.nodes.onAck(a, performance.now());
          // The node runs a version this view lacks: the log has it (the leader flushes before it
          // publishes) but the view is rebuilt on a timer; until then the word was APPLYING
          // (probe5 H8). The group rebuilds it now, and the ACK is checked against it below.
          if (a.version > (this.data.latest()?.version ?? 0)) this.viewBehind?.(a.version);
          this.expectations.checkLater(a);
        },
        onHeartbeat: (h) => this.nodes.onHeartbeat(h, performance.now(), this.now().getTime()),
        onInvalid: (node, error) => this.reportIntake.onInvalid(node, error),
      });
      return;
    }
    this.reportIntake.seedLastReports();
    this.expectations.checkAll(this.nodes.lastHeard());
    await this.serial(() => this.publishAndTarget());
    this.options.bus.listen({
      onAck: (a) => {
        this.expectations.checkLater(a);
        return this.reportIntake.onAck(a);
      },
      onHeartbeat: (h) => this.reportIntake.onHeartbeat(h),
      onInvalid: (node, error) => this.reportIntake.onInvalid(node, error),
    });
    this.intake.open();
    // The initial list is a bulk load into the log: its WAL is copied into the file once, in a
    // step of its own after version 1 (and its checkpoint), not every few MB while the list pages in.
    this.releaseWal = this.options.log.holdWalCheckpoints();
    this.intake.start();
    void this.intake.synced.then(() =>
      this.serial(async () => {
        await this.flushIntake(); // the initial list must be durable and applied before version 1
        this.isSynced = true;
        await this.syncNow();
        this.resolveSynced();
        void this.serial(() => this.releaseWal?.()).then(
          () => this.recovered('wal checkpoint'),
          (e) => this.fail('wal checkpoint', e),
        );
      }),
    );
  }

  /**
   * Leader, just elected: records the reports its follower view heard that its log lacks
   * (ReportIntake.recordHeard, review2 L2).
   */
  recordHeard(heard: readonly AckOrNack[]): Promise<void> {
    return this.reportIntake.recordHeard(heard);
  }

  get role(): 'leader' | 'follower' {
    return this.options.role ?? 'leader';
  }

  /**
   * Follower: reloads data and config from the log (the replicated log applied new rows), in
   * slices; the view read meanwhile is the one before.
   */
  async refresh(): Promise<void> {
    if (this.role !== 'follower') return;
    let views: { data: DataAxis; config: ConfigAxis };
    try {
      views = await this.restoreViews();
    } catch (e) {
      if (this.stopped) return; // stopped meanwhile (a role change): given up, nothing to say
      throw e;
    }
    if (this.stopped) return;
    const { data, config } = views;
    this.data = data;
    this.config = config;
    // ACKs heard before the view held their version are checked now, not at the first status
    // read (which showed them APPLYING "awaiting the node-state check" meanwhile: probe5 H8).
    this.expectations.checkAll(this.nodes.lastHeard());
    this.fleetStatus.noteTargets(this.data.latest()?.version ?? 0, performance.now());
  }

  /** Follower: `hook` is called when a node reports a version newer than this view (the group reloads it). */
  onViewBehind(hook: (version: number) => void): void {
    this.viewBehind = hook;
  }

  /**
   * Follower: why its copy of the group's log is not following (set by the group; undefined once
   * it follows again). Its node words are then UNKNOWN "planner view stale: …", not measured
   * against the targets of a log that stopped (review F9).
   */
  markStale(why: string | undefined): void {
    if (this.role !== 'follower') return;
    this.viewStale = why;
  }

  /** Follower: whether it holds the group's log (set by the group once the replicated log caught up). */
  markSynced(synced: boolean): void {
    if (this.role !== 'follower') return;
    this.isSynced = synced;
    if (synced) this.resolveSynced();
  }

  /**
   * Leader, at the bus's periodic check: publishes again what the versions stream lost of what
   * nodes need (repairStream). A failed check is shown until one succeeds.
   */
  async checkStream(): Promise<void> {
    const bus = this.options.bus;
    if (!bus.streamLacks || this.stopped) return;
    try {
      // looked at outside the serial queue (a server that does not answer must not hold versions
      // or a stop behind it); what it finds is looked at again in the queue, between publishes
      if ((await bus.streamLacks()) !== undefined) await this.serial(() => this.stream.repair());
      this.recovered('versions stream');
    } catch (e) {
      this.fail('versions stream', e);
    }
  }

  /** Publishes whatever the bus lacks and rewrites the targets (the bus lost its store). */
  republish(): Promise<void> {
    return this.serial(() => this.publishAndTarget());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.retry);
    this.rollouts.stop();
    this.reports.stop();
    this.expectations.checks.stop();
    await this.intake.stop(); // what the source delivered is logged before we go
    await this.chain.catch(() => {});
    // Reports the gate still holds are the nodes' last words: written now, over budget or not
    // (a few rows once), before the log closes (and, in a group, before the leader's last flush).
    // Reports the log refused before (a full disk) are tried once more with them (ReportWriter.log).
    this.reports.log(this.reportGate.takeAll(performance.now()));
    try {
      this.releaseWal?.(); // stopped before synced: the file is checkpointed as usual from here on
    } catch (e) {
      this.fail('wal checkpoint', e);
    }
  }

  /**
   * The node-state hashes ACKs of the latest version must echo, rendered off the read paths, only
   * for nodes that ACKed that version, in slices that yield (review4 G7).
   */
  get hashChecks(): NodeHashChecks {
    return this.expectations.checks;
  }

  /** What the source's last scan refused (the current list). */
  get sourceRejections(): Rejection[] {
    return this.intake.sourceRejections;
  }

  sourceHealth(): unknown {
    return this.intake.health();
  }

  /**
   * Claims the published version's rendering leaves out (review3 K1: a VIP:port another service
   * won, an externalIP that is a node's own address), as rejections beside the malformed objects
   * in /status and the console. Computed when asked, once per published content (O(cluster)).
   */
  vipConflicts(): readonly Rejection[] {
    const hash = this.data.publishedHash();
    const revision = this.config.state.defaultRevision; // its mode decides what ipvs mode cannot serve
    if (this.conflicts?.hash !== hash || this.conflicts.revision !== revision)
      this.conflicts = { hash, revision, list: vipConflicts(this.data.publishedData(), this.config.defaultConfig()) };
    return this.conflicts.list;
  }

  /** Why the event source is failing right now, or undefined while it works (owner: sources). */
  sourceProblem(): string | undefined {
    return this.intake.problem();
  }

  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.role === 'follower') return Promise.reject(new Error('this planner follows: operations go to the leader'));
    const run = this.chain.then(fn);
    this.chain = run.catch(() => {});
    return run;
  }

  /** The most recent failure still current, or undefined once every step that failed has worked again. */
  get lastError(): string | undefined {
    return this.failures.last;
  }

  /** The failure of one step (e.g. 'append', 'source') while it lasts, else undefined. */
  failure(where: string): string | undefined {
    return this.failures.of(where);
  }

  /** How long (ms) a step has failed without a success in between; undefined: it is not failing. */
  failingFor(where: string, nowMs = performance.now()): number | undefined {
    return this.failures.failingFor(where, nowMs);
  }

  private fail(where: string, err: unknown): void {
    this.failures.fail(where, err);
  }

  /** Records a failure seen outside the planner's own steps (the group's, e.g. a step-down), shown until it recovers. */
  noteFailure(where: string, err: unknown): void {
    this.failures.fail(where, err, false); // the group says its own (lease, cluster, signing key)
  }

  /** Ends a failure noted with noteFailure (the group's, once what it names is over). */
  noteRecovered(where: string): void {
    this.recovered(where);
  }

  private recovered(where: string): void {
    this.failures.recovered(where);
  }

  private scheduleSync(): void {
    if (!this.isSynced || this.stopped) return; // no version before every informer synced once
    clearTimeout(this.timer);
    // Debounce folds bursts into one version, but sustained churn must not postpone versions forever.
    const now = Date.now();
    this.firstUnsyncedAt ??= now;
    const wait = Math.min(
      this.options.debounceMs ?? 30,
      Math.max(0, this.firstUnsyncedAt + (this.options.maxSyncDelayMs ?? 250) - now),
    );
    this.timer = setTimeout(
      () =>
        void this.serial(() => this.syncNow()).then(
          () => this.recovered('sync'),
          (e) => this.fail('sync', e),
        ),
      wait,
    );
  }

  /**
   * What the intake holds now, appended a batch a step (in the serial queue): a burst of large
   * EndpointSlices (2,000 of 250 endpoints: ~40 MB of rows) held the thread seconds in one call.
   */
  private flushIntake(): Promise<void> {
    return runInSlices(this.intake.flushSteps(), { sliceMs: this.options.buildSliceMs ?? 10 });
  }

  private async syncNow(): Promise<void> {
    this.firstUnsyncedAt = undefined;
    await this.flushIntake(); // never make a version from events that are not durable yet
    // In slices: events that arrive meanwhile queue behind it in the serial queue (the batcher's
    // flush), so they make the next version, never part of this one.
    this.stream.remember(await runInSlices(this.data.syncSteps(), { sliceMs: this.options.buildSliceMs ?? 10 }));
    await this.publishAndTarget();
    // A checkpoint only shortens a later restore: it is a step of its own, queued after the
    // version is on the bus, so the version (version 1 of a large cluster above all) never waits
    // for it, and a failed checkpoint never holds a version back. Serialised in slices, like the
    // build: in one call it held the thread ~12 s at 7,500 services × 250 endpoints, and the
    // lease expired under it (docs/scale.md, "Where it breaks first").
    void this.serial(() =>
      runInSlices(this.data.checkpointIfDueSteps(this.options.checkpointEvery ?? 10_000), {
        sliceMs: this.options.buildSliceMs ?? 10,
      }),
    ).then(
      () => this.recovered('checkpoint'),
      (e) => this.fail('checkpoint', e),
    );
  }

  /**
   * Publishes every recorded version the stream lacks, in order (VersionsStreamSync), then moves
   * the targets; on failure retried every second (the version is durable in the log).
   */
  private async publishAndTarget(): Promise<void> {
    const latest = this.data.latest();
    if (!latest) return;
    try {
      await this.stream.publishUpTo(latest.version);
      await this.writeTargets(latest.version);
      this.recovered('publish');
    } catch (e) {
      this.fail('publish', e);
      // The version is durable in the log; publishing is retried until the bus takes it.
      clearTimeout(this.retry);
      if (!this.stopped) this.retry = setTimeout(() => void this.serial(() => this.publishAndTarget()), 1000);
    }
  }

  /** Set once versions the log could no longer rebuild were left out of a republish (VersionsStreamSync). */
  get republished(): { readonly from: number; readonly note: string } | undefined {
    return this.stream.republished;
  }

  /**
   * The nodes status lists and rollouts wave over (FleetStatus.fleet): every node the cluster's
   * data names, and one it does not name only while it still reports; not those `--node-selector`
   * leaves out.
   */
  fleet(nowMs = performance.now()): string[] {
    return this.fleetStatus.fleet(nowMs);
  }

  /** Every fleet node's row (FleetStatus.status); renders nothing. */
  status(): PlannerStatusRow[] {
    return this.fleetStatus.status();
  }

  targetOf(node: string, version = this.data.latest()?.version ?? 0): NodeTarget {
    return this.fleetStatus.targetOf(node, version);
  }

  /** `--node-selector`'s canonical text, or undefined when every Node is in the fleet. */
  get nodeSelector(): string | undefined {
    return this.options.nodeSelector?.text || undefined;
  }

  /** Writes the targets of `version` (TargetWriter), then starts the nodes' clocks and the rollout's. */
  private async writeTargets(version: number): Promise<void> {
    await this.targets.write(version);
    const nowMs = performance.now();
    this.fleetStatus.forgetDeparted(nowMs);
    this.fleetStatus.noteTargets(version, nowMs);
    this.rollouts.armClock();
  }

  // ---- operations (each recorded with actor and reason: PlannerOperations) ----

  pin(...a: Parameters<PlannerOperations['pin']>) {
    return this.operations.pin(...a);
  }

  unpin(...a: Parameters<PlannerOperations['unpin']>) {
    return this.operations.unpin(...a);
  }

  configChange(...a: Parameters<PlannerOperations['configChange']>) {
    return this.operations.configChange(...a);
  }

  rollout(...a: Parameters<PlannerOperations['rollout']>) {
    return this.operations.rollout(...a);
  }

  recordRefusal(op: Operation): Promise<void> {
    return this.operations.recordRefusal(op);
  }

  rollbackConfig(...a: Parameters<PlannerOperations['rollbackConfig']>) {
    return this.operations.rollbackConfig(...a);
  }

  // ---- queries ----

  /** What online retention must keep replayable, as this planner knows it (retained-versions.ts). */
  retentionFloors(): RetentionFloor[] {
    return retentionFloors({
      data: this.data,
      fleet: () => this.fleet(),
      log: this.options.log,
      bus: this.options.bus,
      role: this.role,
    });
  }

  /** The versions that can be pinned, rolled back to or diffed: from the oldest one the log rebuilds (probe11 K3). */
  versions(opts: { from?: number; to?: number; newest?: number } = {}) {
    return this.options.log.versions(rebuildable(this.options.log, opts));
  }

  countVersions(range: { from?: number; to?: number } = {}): number {
    return this.options.log.countVersions(rebuildable(this.options.log, range));
  }
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));
