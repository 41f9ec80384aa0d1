import type { NodeStatusThresholds } from '../../libs/bus/index.ts';
import type { EventLog } from '../../libs/eventlog/index.ts';
import type { LabelSelector, ProxyConfig, Rejection } from '../../libs/model/index.ts';
import type { ObjectRejection } from '../../libs/planner/index.ts';
import type { EventSourceFactory } from './event-source.ts';
import type { InvalidReason } from './invalid-reports.ts';
import type { PlannerBus } from './planner-bus.ts';
import type { StepFailureChange } from './step-failures.ts';

/** Optional hooks for metrics and audit; none may throw into the planner. */
export interface PlannerHooks {
  onEvents?(n: number): void;
  onRejected?(r: ObjectRejection | Rejection): void;
  onVersion?(version: number, publishMs: number): void;
  onError?(where: string, err: unknown): void;
  /**
   * One of the planner's own steps (source, append, publish, ...) started failing, failed
   * differently, or works again: said on stderr (StepFailures says when; not every retry).
   */
  onStepFailure?(c: StepFailureChange): void;
  /** Something an operator must know that is not a failure (said once, e.g. versions not republished). */
  onNote?(message: string): void;
  /** A report dropped as not valid; `node` only when the planner knows the node its subject names. */
  onInvalidReport?(node: string | undefined, reason: InvalidReason): void;
  /** A node the planner no longer keeps anything of (it left the cluster's data and is silent). */
  onNodeForgotten?(node: string): void;
}

export interface PlannerOptions {
  readonly log: EventLog;
  readonly bus: PlannerBus;
  readonly source: EventSourceFactory;
  readonly initialConfig: ProxyConfig;
  /** Quiet time that folds a burst of events into one version (default 30 ms). */
  readonly debounceMs?: number;
  /** Longest a version may wait under sustained churn, however busy the source (default 250 ms). */
  readonly maxSyncDelayMs?: number;
  /**
   * Longest a slice of a version build runs before it yields to the event loop (default 10 ms;
   * 0: one step a slice). The build of a 100 000-endpoint change held the loop for seconds in one
   * step (probe10 H9): the lease renewal, heartbeats and GET /status run between its slices now.
   */
  readonly buildSliceMs?: number;
  /** Write an object-state checkpoint into the log every this many events (default 10000; 0 = never). */
  readonly checkpointEvery?: number;
  readonly statusThresholds?: NodeStatusThresholds;
  /**
   * `--node-selector`: the Nodes Switchboard proxies (those that run an applier). The others are in
   * no rollout wave and no `ctl wait` (fleetNodes). Rendering does not read it. Absent: every Node.
   */
  readonly nodeSelector?: LabelSelector;
  readonly hooks?: PlannerHooks;
  readonly now?: () => Date;
  /**
   * `leader` (default): runs the source, publishes, moves targets, records ACKs. `follower`: reads
   * the log (kept current by the replicated log, reloaded with refresh()) and hears reports in
   * memory only; it writes nothing anywhere and refuses operations.
   */
  readonly role?: 'leader' | 'follower';
  /**
   * Resolves once every row committed to the local file is in the group's log (the replicated
   * log's flush); rejects when it cannot say so (fenced, timed out, abandoned). An operation is
   * answered only after it resolved (review2 R4). Absent: the file is all there is.
   */
  readonly commit?: () => Promise<void>;
  /**
   * Who this planner is in its group, in which lease term: stamped as `params.by` on the rollout
   * gate decisions it records, so `audit ops` tells which leader took each step across a failover
   * (probe24 F2). Undefined: not stamped.
   */
  readonly decider?: () => { planner: string; term: number } | undefined;
}
