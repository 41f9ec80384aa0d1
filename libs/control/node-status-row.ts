import type { AckOrNack, Heartbeat, NodeStatusWord, NodeTarget } from '../model/index.ts';

/** What the planner knows about one node, gathered from targets, acks and heartbeats. */
export interface NodeObservation {
  readonly node: string;
  readonly target: NodeTarget;
  /** The node's latest ACK or NACK, whichever came last. */
  readonly last: AckOrNack | undefined;
  readonly heartbeat: Heartbeat | undefined;
  /** Node-state hash the node should echo for its target (undefined: not computed). */
  readonly expectedNodeStateHash: string | undefined;
}

/** One line of `ctl status`. */
export interface NodeStatusRow {
  readonly node: string;
  readonly status: NodeStatusWord;
  readonly targetVersion: number;
  readonly targetConfigRevision: number;
  readonly appliedVersion: number | null;
  readonly appliedConfigRevision: number | null;
  readonly mode: string | null;
  /** Echoed node-state hash equals the expected one; null when the ack is not for the target. */
  readonly hashMatch: boolean | null;
  /** Data versions the node is behind its target (0 when synced). */
  readonly lag: number;
  readonly lastError: string | null;
  readonly lastReportAt: string | null;
  readonly heartbeatAt: string | null;
}

/** Computes the status word; libs/bus owns the rules, the planner passes them in. */
export type StatusWordFn = (o: NodeObservation, nowMs: number) => NodeStatusWord;

/** Builds the status row; pure. */
export function nodeStatusRow(o: NodeObservation, nowMs: number, word: StatusWordFn): NodeStatusRow {
  const last = o.last;
  const applied = last?.type === 'ACK'
    ? { v: last.version, c: last.configRevision }
    : last?.type === 'NACK' ? { v: last.lastGoodVersion, c: last.lastGoodConfigRevision }
      : o.heartbeat ? { v: o.heartbeat.appliedVersion, c: o.heartbeat.appliedConfigRevision } : undefined;
  const forTarget = last?.type === 'ACK' && last.version === o.target.version && last.configRevision === o.target.configRevision;
  const hashMatch = forTarget && o.expectedNodeStateHash !== undefined ? last.nodeStateHash === o.expectedNodeStateHash : null;
  return {
    node: o.node,
    status: word(o, nowMs),
    targetVersion: o.target.version,
    targetConfigRevision: o.target.configRevision,
    appliedVersion: applied?.v ?? null,
    appliedConfigRevision: applied?.c ?? null,
    mode: last?.type === 'ACK' ? last.mode : o.heartbeat?.mode ?? null,
    hashMatch,
    lag: applied ? Math.max(0, o.target.version - applied.v) : o.target.version,
    lastError: last?.type === 'NACK' ? last.error : null,
    lastReportAt: last?.at ?? null,
    heartbeatAt: o.heartbeat?.at ?? null,
  };
}

/** Fleet summary for the top of `ctl status`. */
export function summarizeStatus(rows: readonly NodeStatusRow[]): Record<NodeStatusWord, number> {
  const out: Record<NodeStatusWord, number> = { SYNCED: 0, APPLYING: 0, STALE: 0, ERROR: 0, UNKNOWN: 0 };
  for (const r of rows) out[r.status] += 1;
  return out;
}
