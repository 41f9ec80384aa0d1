import type { AckOrNack } from '../../libs/model/index.ts';

/**
 * Which ACK/NACKs the leader writes to the log (review3 N2). Every recorded report is a
 * hash-chained row and a replicated-log append on the planner's one thread; a node may send as
 * many as it likes as itself (a broken applier retrying, a compromised one flooding), and 28
 * large ones were enough to starve the lease renewal. So, per node:
 *
 * - a report equal to the last one recorded (same words: type, version, config, hashes, error,
 *   health word, instance; not its time or timings) is recorded again at most once per
 *   `repeatMs`: a node NACKing the same version every 2 s shows once a minute that it still fails;
 * - at most `burst` reports are recorded at once, refilled at `perSecond`: an honest node sends
 *   one or two per version, so every change it reports is recorded; beyond that the newest
 *   report waits (`held`) and is recorded when the node's budget allows (takeDue), each newer
 *   one replacing it, so the log's last report for a node is always the node's last word.
 *
 * The in-memory view (NodeTracker, status, rollouts) hears every report; only the log is gated.
 * Pure: the caller passes the time and arms its own timer from nextDueAt. The planner passes a
 * monotonic clock (performance.now()); a time before the gate's last one (a wall clock stepped
 * back, review4 G6) restarts the refill and repeat clocks at that time instead of stopping the
 * refill until the clock is back past its last refill.
 */
export interface ReportLogGateOptions {
  /** How often an unchanged report is recorded again (default 60 s). */
  readonly repeatMs?: number;
  /** Reports one node may have recorded at once (default 10). */
  readonly burst?: number;
  /** Sustained reports per second and node (default 2). */
  readonly perSecond?: number;
}

interface NodeGate {
  tokens: number;
  refilledAt: number;
  lastWords: string | undefined;
  lastAt: number;
  held: AckOrNack | undefined;
}

export type GateDecision = 'record' | 'held' | 'repeat';

export class ReportLogGate {
  private readonly nodes = new Map<string, NodeGate>();
  private readonly repeatMs: number;
  private readonly burst: number;
  private readonly perSecond: number;
  /** Reports not recorded: repeats, and held reports replaced by a newer one before their turn. */
  notRecorded = 0;

  constructor(o: ReportLogGateOptions = {}) {
    this.repeatMs = o.repeatMs ?? 60_000;
    this.burst = o.burst ?? 10;
    this.perSecond = o.perSecond ?? 2;
  }

  /** `record`: write it now. `held`: kept for takeDue. `repeat`: not to be written. */
  offer(a: AckOrNack, now: number): GateDecision {
    const g = this.gate(a.node, now);
    const words = reportWords(a);
    if (words === g.lastWords && now - g.lastAt < this.repeatMs) {
      // The log's last word for the node is already this one: a report held in between is moot.
      if (g.held) this.notRecorded++;
      g.held = undefined;
      this.notRecorded++;
      return 'repeat';
    }
    if (!g.held && g.tokens >= 1) {
      this.take(g, words, now);
      return 'record';
    }
    if (g.held) this.notRecorded++;
    g.held = a;
    return 'held';
  }

  /**
   * Drops a node's gate once it left the cluster (review4 G1), unless a report of it still waits
   * to be written: that one is the log's last word for the node and is kept until takeDue.
   */
  forget(node: string): void {
    if (!this.nodes.get(node)?.held) this.nodes.delete(node);
  }

  /** Nodes with a gate (for tests and pruning). */
  gated(): string[] {
    return [...this.nodes.keys()];
  }

  /** Held reports whose node's budget allows them now, each marked recorded. */
  takeDue(now: number): AckOrNack[] {
    const out: AckOrNack[] = [];
    for (const g of this.nodes.values()) {
      if (!g.held) continue;
      this.refill(g, now);
      if (g.tokens < 1) continue;
      out.push(g.held);
      this.take(g, reportWords(g.held), now);
      g.held = undefined;
    }
    return out;
  }

  /**
   * Every held report, due or not, each marked recorded: the planner is stopping, and a report
   * left held would never reach the log (its node's last word lost with the process).
   */
  takeAll(now: number): AckOrNack[] {
    const out: AckOrNack[] = [];
    for (const g of this.nodes.values()) {
      if (!g.held) continue;
      out.push(g.held);
      this.take(g, reportWords(g.held), now);
      g.held = undefined;
    }
    return out;
  }

  /** When the earliest held report becomes due (undefined: none held). */
  nextDueAt(now: number): number | undefined {
    let next: number | undefined;
    for (const g of this.nodes.values()) {
      if (!g.held) continue;
      this.refill(g, now);
      const at = g.tokens >= 1 ? now : now + Math.ceil(((1 - g.tokens) * 1000) / this.perSecond);
      next = next === undefined ? at : Math.min(next, at);
    }
    return next;
  }

  private gate(node: string, now: number): NodeGate {
    let g = this.nodes.get(node);
    if (!g) {
      g = { tokens: this.burst, refilledAt: now, lastWords: undefined, lastAt: 0, held: undefined };
      this.nodes.set(node, g);
    } else this.refill(g, now);
    return g;
  }

  private refill(g: NodeGate, now: number): void {
    if (now < g.refilledAt) {
      // The clock went back: what it says about the time since the last refill is nothing. The
      // budget stays as it was and refills from now on; the repeat interval counts from now.
      g.refilledAt = now;
      g.lastAt = Math.min(g.lastAt, now);
    } else if (now > g.refilledAt) {
      g.tokens = Math.min(this.burst, g.tokens + ((now - g.refilledAt) * this.perSecond) / 1000);
      g.refilledAt = now;
    }
  }

  private take(g: NodeGate, words: string, now: number): void {
    g.tokens -= 1;
    g.lastWords = words;
    g.lastAt = now;
  }
}

/** What a report says, without when it was said or how long it took (see ReportLogGate). */
export function reportWords(a: AckOrNack): string {
  if (a.type === 'NACK')
    return JSON.stringify([
      'NACK',
      a.version,
      a.configRevision,
      a.error,
      a.lastGoodVersion,
      a.lastGoodConfigRevision,
      a.instance ?? null,
    ]);
  return JSON.stringify([
    'ACK',
    a.version,
    a.configRevision,
    a.dataHash,
    a.nodeStateHash,
    a.mode,
    a.healthy ?? null,
    a.detail ?? null,
    a.health?.verdict ?? null,
    a.health?.stateVerified ?? null,
    a.instance ?? null,
  ]);
}
