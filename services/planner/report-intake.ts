import { monoOfWall } from '../../libs/control/index.ts';
import type { EventLog } from '../../libs/eventlog/index.ts';
import { nodesBehind } from '../../libs/eventlog/index.ts';
import type { AckOrNack, Heartbeat } from '../../libs/model/index.ts';
import type { ConfigAxis } from '../../libs/versioning/index.ts';
import { invalidReason, type InvalidReportLimiter } from './invalid-reports.ts';
import type { NodeTracker } from './node-tracker.ts';
import type { PlannerHooks } from './planner-options.ts';
import type { ReportLogGate } from './report-log-gate.ts';
import type { ReportWriter } from './report-writer.ts';
import type { RolloutDriver } from './rollout-driver.ts';
import type { StepFailures } from './step-failures.ts';

export interface ReportIntakeOptions {
  readonly log: EventLog;
  readonly hooks?: PlannerHooks;
  readonly nodes: NodeTracker;
  /** The planner's report gate (read at each use). */
  readonly gate: () => ReportLogGate;
  readonly writer: ReportWriter;
  readonly invalidReports: InvalidReportLimiter;
  /** The planner's config (read at each use). */
  readonly axes: { readonly config: ConfigAxis };
  readonly rollouts: RolloutDriver;
  /** The planner's serial queue. */
  readonly serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
  readonly publishAndTarget: () => Promise<void>;
  readonly failures: StepFailures;
  /** The planner's wall clock (PlannerOptions.now). */
  readonly now: () => Date;
}

/**
 * What the nodes say, taken in on a leader: each ACK/NACK moves the node tracker, reaches the log
 * through the gate and steps a running rollout; heartbeats and reports not valid are counted; a
 * restarted or newly elected planner seeds the tracker from the log and writes back what it heard.
 */
export class ReportIntake {
  constructor(private readonly o: ReportIntakeOptions) {}

  /**
   * A restarted planner seeds the tracker with each node's last logged ACK/NACK. Nodes do not ACK
   * again until their target moves, so without it a restarted planner mid-rollout saw a baking
   * wave as silent (it would time out), and every node's status lost the hashes its ACK proved
   * (HASH and LAST REPORT "-", the word by heartbeat numbers alone) until the next version. The
   * seed is dated when the node says it made it, never later than now, and carries no health
   * verdict: that one may be stale (heartbeats, not logged, may have turned it since), and an
   * unhealthy verdict that counted is already in a rollout's failed list. The node's next
   * heartbeat (within seconds) brings its current verdict.
   */
  seedLastReports(): void {
    for (const n of nodesBehind(this.o.log, { all: true })) {
      const { health: _stale, ...report } = n.lastReport as AckOrNack & { health?: unknown };
      // Dated when a planner received it (the log's received_at), not by the node's own clock:
      // a clock behind would make a node heard seconds ago look silent, one ahead would outrank
      // every later report and hide silence (review F4). Rows logged before received_at existed
      // fall back to the node's `at`, never later than now. The tracker measures silence on the
      // monotonic clock (review4 G6): the wall-clock age of the row is taken once, here.
      const heard = Date.parse(n.receivedAt ?? n.lastReport.at);
      this.o.nodes.onAck(
        report as AckOrNack,
        monoOfWall(heard, { wallMs: this.o.now().getTime(), monoMs: performance.now() }),
      );
    }
  }

  /**
   * Leader, just elected: records the reports its follower view heard that its log lacks (review2
   * L2). ACK/NACK rows the previous leader recorded in its last flush interval are dropped by its
   * step-down truncation, and nodes do not report again until their target moves; every replica
   * hears every report, so the new leader writes them back. A report the log already holds, or
   * one older than the log's last for that node, is skipped.
   */
  recordHeard(heard: readonly AckOrNack[]): Promise<void> {
    return this.o.serial(() => {
      const logged = new Map(nodesBehind(this.o.log, { all: true }).map((n) => [n.node, n.lastReport]));
      const missing: AckOrNack[] = [];
      for (const a of heard) {
        const l = logged.get(a.node);
        if (
          l &&
          (Date.parse(l.at) > Date.parse(a.at) || (l.at === a.at && l.version === a.version && l.type === a.type))
        )
          continue;
        this.o.nodes.onAck(a, performance.now());
        missing.push(a);
      }
      this.o.writer.log(missing); // one commit for them all (review4 G9)
    });
  }

  /**
   * A report dropped as not valid (probe10 H2): counted, said (rate-limited) and kept on the row of
   * the node its subject names. A node the planner does not know is counted without its name: a
   * hostile subject must not grow the metric's labels or this planner's memory.
   */
  onInvalid(subjectNode: string, error: string): void {
    const node = this.o.nodes.has(subjectNode) ? subjectNode : undefined;
    const now = performance.now();
    if (node) this.o.nodes.onInvalid(node, error, now);
    this.o.hooks?.onInvalidReport?.(node, invalidReason(error));
    const line = this.o.invalidReports.offer(node, subjectNode, error, now);
    if (line) this.o.hooks?.onNote?.(line);
  }

  onAck(a: AckOrNack): Promise<void> {
    return this.o
      .serial(async () => {
        const now = performance.now(); // durations (silence, the gate's budget) are monotonic: review4 G6
        // Every report moves the in-memory view, first: whether the log takes it or not (review4 G5:
        // a write that failed on a full disk dropped the ACK from the view too, and a rollout wave
        // whose nodes had ACKed timed out once space was back). The log gets what the gate lets
        // through (a repeat of the node's last logged word, or more than its budget, is not a row of
        // its own).
        this.o.nodes.onAck(a, now);
        const logged = this.o.gate().offer(a, now);
        if (logged === 'record') this.o.writer.log([a], 'soon');
        else if (logged === 'held') this.o.writer.armFlush(now);
        this.o.rollouts.stepSoon();
      })
      .then(
        () => this.o.failures.recovered('ack'),
        (e) => this.o.failures.fail('ack', e),
      );
  }

  /**
   * Heartbeats carry the node's re-probed verdict: while a rollout runs, a verdict that turned
   * unhealthy must fail the wave now, not at the next ACK or deadline.
   */
  onHeartbeat(h: Heartbeat): Promise<void> | void {
    const before = this.o.nodes.report(h.node)?.health?.verdict;
    this.o.nodes.onHeartbeat(h, performance.now(), this.o.now().getTime());
    if (this.o.axes.config.state.rollout?.status !== 'running' || !h.health || h.health.verdict === before) return;
    return this.o
      .serial(async () => {
        if (this.o.rollouts.step()) await this.o.publishAndTarget();
      })
      .catch((e) => this.o.failures.fail('heartbeat', e));
  }
}
