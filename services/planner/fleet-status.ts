import { notCanaryNodes, type NodeStatusRow } from '../../libs/control/index.ts';
import type { LabelSelector, NodeTarget } from '../../libs/model/index.ts';
import type { ConfigAxis, DataAxis } from '../../libs/versioning/index.ts';
import type { AckExpectations } from './ack-expectations.ts';
import { fleetNodes, fleetPlace, outsideReason, type Fleet } from './fleet-nodes.ts';
import type { InvalidReportLimiter } from './invalid-reports.ts';
import type { NodeTracker } from './node-tracker.ts';
import type { ReportLogGate } from './report-log-gate.ts';

export interface FleetStatusOptions {
  /** The planner's data and config (read at each use: a follower's are rebuilt by refresh). */
  readonly axes: { readonly data: DataAxis; readonly config: ConfigAxis };
  readonly nodes: NodeTracker;
  /** PlannerOptions.nodeSelector: the Nodes Switchboard proxies (absent: every Node). */
  readonly nodeSelector?: LabelSelector;
  readonly invalidReports: InvalidReportLimiter;
  /** The planner's report gate (read at each use). */
  readonly reportGate: () => ReportLogGate;
  readonly role: () => 'leader' | 'follower';
  readonly expectations: AckExpectations;
  /** Follower: why its copy of the group's log is not following (Planner.markStale). */
  readonly viewStale: () => string | undefined;
  /** A node the planner no longer keeps anything of (PlannerHooks.onNodeForgotten). */
  readonly onNodeForgotten: (node: string) => void;
}

/** A node's row in status: measured against its target, with why it reads as it does. */
export type PlannerStatusRow = NodeStatusRow & { reason: string; hashMatch: boolean | null; fleet?: false };

/**
 * Which nodes the planner answers for (the fleet), each node's target and when it moved, and
 * every fleet node's status row measured against it.
 */
export class FleetStatus {
  constructor(private readonly o: FleetStatusOptions) {}

  /** The labels of a node's current Node object (the live view: a follower's is rebuilt by refresh). */
  private readonly labelsOf = (node: string) => this.o.axes.data.live.nodeLabels(node);

  /**
   * The nodes status lists and rollouts wave over: every node the cluster's data names, silent or
   * not, and a node it does not name (an applier without a Node object, or one whose Node was
   * deleted) only while that node still reports. A node that left the cluster and stopped
   * reporting falls out after the silence threshold: before, every node ever heard stayed for
   * ever, also across restarts (seeded from the log), UNKNOWN in status, so `ctl wait` could never
   * finish, and in every later rollout's waves, which then halted on its wave timeout (review4 G1).
   * Nodes `--node-selector` leaves out are not in it (fleetNodes, probe4 K8).
   */
  fleet(nowMs = performance.now()): string[] {
    return [...this.fleetView(nowMs).nodes];
  }

  /** Whether `node` is in fleet() now, without building the fleet (O(1): a rollout step asks per wave node). */
  inFleet(node: string, nowMs = performance.now()): boolean {
    const heard = this.o.nodes.heardAt(node) >= nowMs - this.o.nodes.silenceMs();
    if (!heard && this.o.axes.data.publishedData().node(node) === undefined) return false;
    return fleetPlace(node, heard, { selector: this.o.nodeSelector, labelsOf: this.labelsOf }) === 'fleet';
  }

  /** The fleet a rollout waves over, and those of its nodes that may not be its canary (W1). */
  waveFleet(): { nodes: string[]; notCanary: Map<string, string> } {
    const inData = new Set(this.o.axes.data.publishedData().nodeNames());
    return { nodes: this.fleet(), notCanary: notCanaryNodes(this.status(), (n) => inData.has(n)) };
  }

  /** The fleet, and the nodes outside the selector that report anyway (shown in status, never counted). */
  fleetView(nowMs: number): Fleet {
    return fleetNodes({
      dataNodes: this.o.axes.data.publishedData().nodeNames(),
      heard: this.o.nodes.heardSince(nowMs - this.o.nodes.silenceMs()),
      selector: this.o.nodeSelector,
      labelsOf: this.labelsOf,
    });
  }

  /**
   * Forgets what is kept in memory of nodes no longer shown (tracker entries and report gates),
   * so a cluster whose node names churn (autoscaling, replacements) does not grow the planner.
   * The log keeps their history for audit; a node that comes back is heard afresh.
   */
  forgetDeparted(nowMs: number): void {
    const f = this.fleetView(nowMs);
    const shown = new Set([...f.nodes, ...f.outside]);
    for (const n of this.o.nodes.known())
      if (!shown.has(n)) {
        this.o.nodes.forget(n);
        this.o.invalidReports.forget(n);
        this.o.onNodeForgotten(n);
      }
    for (const n of this.o.reportGate().gated()) if (!shown.has(n)) this.o.reportGate().forget(n);
  }

  targetOf(node: string, version = this.o.axes.data.latest()?.version ?? 0): NodeTarget {
    const override = this.o.axes.config.overrides().get(node);
    return { version, configRevision: override ?? this.o.axes.config.state.defaultRevision };
  }

  /**
   * Starts each fleet node's APPLYING→STALE clock when its target moves: on a leader once the
   * targets are written, on a follower when its view of the log first holds them (refresh). A
   * follower never wrote targets, so its clock never started and a node stuck on an old version
   * read APPLYING for ever on every follower while the leader said STALE (probe14 P2: 190 s seen).
   */
  noteTargets(version: number, nowMs: number): void {
    const f = this.fleetView(nowMs);
    for (const n of [...f.nodes, ...f.outside]) this.o.nodes.noteTarget(n, this.targetOf(n, version), nowMs);
  }

  /**
   * Every fleet node's row. Renders nothing (review4 G7): the node-state hash an ACK of the latest
   * version must echo is one hashChecks already computed, or the row says it is being checked.
   */
  status(): PlannerStatusRow[] {
    const latest = this.o.axes.data.latest();
    const nowMs = performance.now();
    this.forgetDeparted(nowMs);
    const last = new Map(this.o.nodes.lastHeard().map((a) => [a.node, a]));
    const inData = new Set(this.o.axes.data.publishedData().nodeNames());
    const fleet = this.fleetView(nowMs);
    const outside = new Set(fleet.outside);
    return [...fleet.nodes, ...fleet.outside].sort().map((node) => {
      // A leader measures a node against what it told it (the targets it wrote), not a version it
      // made but could not publish yet: cut off from NATS, every node read STALE "target N set 69 s
      // ago" of a target never set, with the previous target's clock (probe14 P3). The version not
      // out yet is the planner's own failure (lastError `publish: …`, notReady).
      const target =
        (this.o.role() === 'leader' ? this.o.nodes.noted(node) : undefined) ??
        this.targetOf(node, latest?.version ?? 0);
      const a = last.get(node);
      const acked = a?.type === 'ACK' && a.version === target.version && a.configRevision === target.configRevision;
      const row = this.o.nodes.row(
        node,
        target,
        this.o.expectations.expectedOf(node, target, latest?.version, acked),
        nowMs,
        this.o.viewStale(),
      );
      // Reporting although --node-selector leaves its Node out: shown, never counted (probe4 K8).
      if (outside.has(node)) {
        const note = outsideReason(this.o.nodeSelector!);
        return { ...row, reason: row.reason ? `${row.reason}; ${note}` : note, fleet: false as const };
      }
      if (inData.has(node)) return row;
      // It runs what it was given, but that has no NodePorts: they are rendered on the addresses of
      // the node's Node object (its Node was deleted, or --node names no Node: probe4 K3).
      const note = 'no Node object of this name in the cluster: no NodePorts are rendered for it';
      return { ...row, reason: row.reason ? `${row.reason}; ${note}` : note };
    });
  }
}
