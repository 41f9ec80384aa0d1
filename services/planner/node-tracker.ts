import {
  type ApplyClock,
  applyClock,
  applyClockOnSessionStart,
  applyClockOnTarget,
  DEFAULT_NODE_STATUS_THRESHOLDS,
  ackMismatch,
  newestHealth,
  type ExpectedHashes,
  nodeStatus,
  type NodeReport,
  type NodeStatusRow,
  type NodeStatusThresholds,
} from '../../libs/control/index.ts';
import type { Ack, AckOrNack, Heartbeat, NodeTarget } from '../../libs/model/index.ts';

/** The hashes the planner expects a node's ACK to echo (what it can check; see ackMismatch). */
export type ExpectAck = (a: Ack) => ExpectedHashes;

interface NodeSeen {
  last?: AckOrNack;
  lastAt?: number;
  heartbeat?: Heartbeat;
  heartbeatAt?: number;
  target?: NodeTarget;
  /** The APPLYING→STALE clock of `target` (libs/control ApplyClock). */
  clock?: ApplyClock;
  /** The applier processes (instance ids) heard from the node, the newest last (at most KEPT_IDS). */
  heardIds?: Set<string>;
  /** Instance ids heard, with when (monotonic), and the one of the newest report. */
  instances?: Map<string, number>;
  lastInstance?: string;
  /** When an older instance id came back after another one (two processes alternate). */
  twinAt?: number;
  twinIds?: [string, string];
  /** The newest report dropped as not valid (probe10 H2), with when (monotonic). */
  invalid?: { error: string; at: number };
  /** The newest heartbeat's `at` minus the planner's time on receipt (node clock skew plus transit). */
  skewMs?: number;
}

/** How many of a node's applier processes a tracker remembers (to tell a new one: ApplyClock). */
const KEPT_IDS = 16;

/** One node's target, its APPLYING→STALE clock and the applier processes heard, as handed over. */
export interface HeldClock {
  readonly node: string;
  readonly target: NodeTarget;
  readonly clock: ApplyClock;
  readonly heardIds: readonly string[];
}

/** A node clock further than this from the planner's is said under the status table (probe12 L4). */
export const NODE_CLOCK_SKEW_WARN_MS = 30_000;

/**
 * Per-node bookkeeping: latest ACK/NACK, heartbeat, and when its target last moved. Every time
 * here is the planner's MONOTONIC clock (performance.now()): silence, APPLYING→STALE and the twin
 * window are durations, and a wall clock stepped back an hour kept a node that died just before
 * SYNCED for that hour (review4 G6). A report logged by another process is placed on this clock
 * once, from its wall-clock age (monoOfWall, when the planner seeds from its log).
 */
export class NodeTracker {
  private readonly nodes = new Map<string, NodeSeen>();

  /**
   * `startedAtMs`: when this tracker began to listen (monotonic). A node is called silent to a
   * rollout only after the silence threshold of listening: a restarted planner seeds each node's
   * last report at its real age, and heartbeats are not logged (probe20 P20-2).
   */
  constructor(
    private readonly thresholds?: NodeStatusThresholds,
    private readonly startedAtMs = performance.now(),
  ) {}

  private seen(node: string): NodeSeen {
    let s = this.nodes.get(node);
    if (!s) this.nodes.set(node, (s = {}));
    return s;
  }

  onAck(a: AckOrNack, nowMs: number): void {
    const s = this.seen(a.node);
    s.last = a;
    s.lastAt = nowMs;
    this.noteInstance(s, a.instance, nowMs);
    if (a.type === 'ACK') this.noteRunning(s, a.version, a.configRevision, nowMs);
  }

  /** Notes a report of a known node dropped as not valid; shown on its row (lastInvalidReport). */
  onInvalid(node: string, error: string, nowMs: number): void {
    this.seen(node).invalid = { error: error.slice(0, 200), at: nowMs };
  }

  /** Whether this tracker keeps anything of `node` (a fleet node, or one that reported). */
  has(node: string): boolean {
    return this.nodes.has(node);
  }

  /**
   * `wallMs`: the planner's wall time on receipt. The node's `at` is its own clock: LAST REPORT and
   * HEARTBEAT show it as is, so a clock minutes off must be said beside them (probe12 L4).
   */
  onHeartbeat(h: Heartbeat, nowMs: number, wallMs?: number): void {
    const s = this.seen(h.node);
    s.heartbeat = h;
    s.heartbeatAt = nowMs;
    const at = Date.parse(h.at);
    s.skewMs = wallMs !== undefined && Number.isFinite(at) ? at - wallMs : undefined;
    const fresh = this.noteInstance(s, h.instance, nowMs);
    // A process not heard before that verified nothing yet: an applier (re)started (probe20 P20-6).
    // One that already runs a version is not new to the node, only to this tracker (a new leader).
    if (fresh && h.appliedVersion === 0 && h.appliedConfigRevision === 0)
      s.clock = applyClockOnSessionStart(s.clock, nowMs);
    this.noteRunning(s, h.appliedVersion, h.appliedConfigRevision, nowMs);
  }

  /** The node runs `version`/`configRevision`: on its target, its next applier start has a fresh apply timeout. */
  private noteRunning(s: NodeSeen, version: number, configRevision: number, nowMs: number): void {
    if (s.target?.version === version && s.target.configRevision === configRevision)
      s.clock = applyClockOnTarget(s.clock, nowMs);
  }

  /**
   * A restarted applier has a new instance id and the old one falls silent; two processes
   * reporting as one node alternate: an id heard within the window comes back after another one.
   * That is flagged for a window (the silence threshold) after each alternation. True when `id`
   * was not heard from the node before (not among the last KEPT_IDS it used, at any age): a new
   * applier process, or one new to this tracker.
   */
  private noteInstance(s: NodeSeen, id: string | undefined, nowMs: number): boolean {
    if (id === undefined) return false;
    const windowMs = this.window();
    s.instances ??= new Map();
    for (const [other, at] of s.instances) if (nowMs - at > windowMs) s.instances.delete(other);
    const fresh = !s.heardIds?.has(id);
    s.heardIds ??= new Set();
    s.heardIds.delete(id); // re-inserted last: the oldest id goes first
    s.heardIds.add(id);
    if (s.heardIds.size > KEPT_IDS) s.heardIds.delete(s.heardIds.values().next().value!);
    if (s.lastInstance !== undefined && s.lastInstance !== id && s.instances.has(id)) {
      s.twinAt = nowMs;
      s.twinIds = [s.lastInstance, id].sort() as [string, string];
    }
    s.instances.set(id, nowMs);
    s.lastInstance = id;
    return fresh;
  }

  private window(): number {
    return (this.thresholds ?? DEFAULT_NODE_STATUS_THRESHOLDS).silenceMs;
  }

  private twin(node: string, s: NodeSeen, nowMs: number): string | undefined {
    if (s.twinAt === undefined || nowMs - s.twinAt > this.window()) return undefined;
    return `two appliers report as ${node} (instances ${s.twinIds!.join(', ')})`;
  }

  /** Every node's newest heartbeat with when it came (this process's monotonic clock). */
  heartbeatsHeard(): { heartbeat: Heartbeat; at: number }[] {
    return [...this.nodes.values()].flatMap((s) =>
      s.heartbeat && s.heartbeatAt !== undefined ? [{ heartbeat: s.heartbeat, at: s.heartbeatAt }] : [],
    );
  }

  /**
   * Takes over a heartbeat another tracker of this process heard (a Planner replaced on a role
   * change), unless a newer one came meanwhile. Heartbeats are not logged: a new Planner seeded from
   * the log alone knew only each node's last ACK, and said "silent for 170 s" of a node heard a
   * second before, or UNKNOWN after a failover until the node's next heartbeat (probe14 P6).
   */
  adoptHeartbeat(h: Heartbeat, at: number): void {
    const s = this.seen(h.node);
    if ((s.heartbeatAt ?? -Infinity) >= at) return;
    s.heartbeat = h;
    s.heartbeatAt = at;
  }

  /**
   * Every node's target with its APPLYING→STALE clock and the applier processes heard, for a
   * Planner replacing this one on a role change (adoptClocks): a new leader restarted every clock
   * at its takeover (a node STALE on the follower read APPLYING again for the apply timeout), and
   * took an applier process it had not heard itself for a new start (probe20 P20-6).
   */
  clocksHeld(): HeldClock[] {
    return [...this.nodes].flatMap(([node, s]) =>
      s.target && s.clock ? [{ node, target: s.target, clock: s.clock, heardIds: [...(s.heardIds ?? [])] }] : [],
    );
  }

  /** Takes over clocks another tracker of this process kept (clocksHeld), for nodes with no target noted here yet. */
  adoptClocks(held: readonly HeldClock[]): void {
    for (const h of held) {
      const s = this.seen(h.node);
      if (s.target) continue;
      s.target = h.target;
      s.clock = h.clock;
      s.heardIds = new Set([...h.heardIds, ...(s.heardIds ?? [])]);
    }
  }

  /** The target last noted for a node (what a leader last wrote for it), if any. */
  noted(node: string): NodeTarget | undefined {
    return this.nodes.get(node)?.target;
  }

  /** Notes a node's target; the APPLYING→STALE clock restarts only when it really moved. */
  noteTarget(node: string, target: NodeTarget, nowMs: number): void {
    const s = this.seen(node);
    if (s.target?.version !== target.version || s.target?.configRevision !== target.configRevision) {
      s.target = target;
      s.clock = applyClock(nowMs);
    }
  }

  /**
   * Nodes that answered or sent a heartbeat at or after `sinceMs` (monotonic). A node the
   * cluster's data does not name is in the fleet only while it reports (review4 G1).
   */
  heardSince(sinceMs: number): string[] {
    return [...this.nodes].filter(([, s]) => lastWordAt(s) >= sinceMs).map(([n]) => n);
  }

  /** When `node` was last heard (an ACK/NACK or a heartbeat); -Infinity: never. */
  heardAt(node: string): number {
    const s = this.nodes.get(node);
    return s ? lastWordAt(s) : -Infinity;
  }

  /** Every node this tracker keeps anything of. */
  known(): string[] {
    return [...this.nodes.keys()];
  }

  /** Drops all that is kept of a node: it left the cluster's data and fell silent (review4 G1). */
  forget(node: string): void {
    this.nodes.delete(node);
  }

  /** The silence threshold: a node not heard for this long is UNKNOWN (and, outside the data, gone). */
  silenceMs(): number {
    return this.window();
  }

  /** Every node's last ACK/NACK as heard (or seeded), for a planner taking over this one's view. */
  lastHeard(): AckOrNack[] {
    return [...this.nodes.values()].flatMap((s) => (s.last ? [s.last] : []));
  }

  /** A node's last ACK/NACK as heard (or seeded); undefined: none. */
  lastReport(node: string): AckOrNack | undefined {
    return this.nodes.get(node)?.last;
  }

  /**
   * A node's latest answer, as rollouts read it (undefined: it never answered), with the newest
   * verdict about the revision it answered for (a heartbeat's verdict turns it unhealthy during a
   * bake). `expect`: the hashes an ACK must echo; an ACK that differs carries the mismatch and does
   * not count as done, and so does the ACK of a node that two applier processes report as (it
   * proves neither runs it). One node at a time: a rollout step reads only its wave's nodes.
   */
  report(node: string, expect?: ExpectAck, nowMs = performance.now()): NodeReport | undefined {
    const s = this.nodes.get(node);
    if (!s?.last) return undefined;
    const h = newestHealth(s);
    const health =
      h && h.configRevision === s.last.configRevision ? { verdict: h.verdict, reason: h.reason } : undefined;
    return {
      type: s.last.type,
      configRevision: s.last.configRevision,
      error: s.last.type === 'NACK' ? s.last.error : undefined,
      mismatch:
        s.last.type !== 'ACK'
          ? undefined
          : (this.twin(node, s, nowMs) ?? (expect ? ackMismatch(s.last, expect(s.last)) : undefined)),
      health,
      ...this.silence(s, nowMs),
    };
  }

  /** `{silent}` when the node has not been heard for the silence threshold of listening, else {}. */
  private silence(s: NodeSeen, nowMs: number): { silent?: string } {
    const heard = Math.max(s.lastAt ?? -Infinity, s.heartbeatAt ?? -Infinity);
    const quiet = nowMs - Math.max(heard, this.startedAtMs);
    if (quiet <= this.window()) return {};
    return {
      silent: `silent for ${Math.round((nowMs - (Number.isFinite(heard) ? heard : this.startedAtMs)) / 1000)} s`,
    };
  }

  /** The node's status row, computed by libs/control's nodeStatus (the one rule for the word). */
  row(node: string, target: NodeTarget, expected: ExpectedHashes, nowMs: number, viewStale?: string): NodeStatusRow {
    const s = this.nodes.get(node) ?? {};
    const twin = this.twin(node, s, nowMs);
    const row = nodeStatus(
      {
        node,
        target,
        targetSetAt: s.clock?.targetSetAt,
        sessionStartAt: s.clock?.sessionStartAt,
        last: s.last,
        lastAt: s.lastAt,
        heartbeat: s.heartbeat,
        heartbeatAt: s.heartbeatAt,
        expectedNodeStateHash: expected.nodeStateHash,
        nodeStateChecking: expected.nodeStateChecking,
        expectedDataHash: expected.dataHash,
        viewStale,
        twin,
        newestVersion: expected.newestVersion,
      },
      nowMs,
      this.thresholds,
    );
    // Kept for the silence threshold: a clue to why a node whose reports all fail looks silent.
    const bad = s.invalid && nowMs - s.invalid.at <= this.window() ? s.invalid.error : undefined;
    const skew = s.skewMs !== undefined && Math.abs(s.skewMs) > NODE_CLOCK_SKEW_WARN_MS ? s.skewMs : undefined;
    const seen = skew === undefined ? row : { ...row, warnings: [...row.warnings, skewWarning(skew)] };
    return bad ? { ...seen, lastInvalidReport: bad } : seen;
  }
}

/** One warning line for a node clock off by `ms` (positive: ahead of the planner's). */
export function skewWarning(ms: number): string {
  return `node clock ${Math.round(Math.abs(ms) / 1000)} s ${ms > 0 ? 'ahead of' : 'behind'} the planner's: its LAST REPORT and HEARTBEAT times are its own (check its NTP)`;
}

function lastWordAt(s: NodeSeen): number {
  return Math.max(s.lastAt ?? -Infinity, s.heartbeatAt ?? -Infinity);
}
