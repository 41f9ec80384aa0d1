import type { AckOrNack, Heartbeat, NodeStatusWord, NodeTarget } from '../model/index.ts';

export interface NodeStatusThresholds {
  /** A node not heard from (heartbeat or ack) for this long is UNKNOWN. */
  readonly silenceMs: number;
  /** A node alive but not on its target this long after the target was set is STALE. */
  readonly applyTimeoutMs: number;
}

export const DEFAULT_NODE_STATUS_THRESHOLDS: NodeStatusThresholds = { silenceMs: 30_000, applyTimeoutMs: 60_000 };

/** Everything the planner knows about one node; times are the planner's own clock (ms). */
export interface NodeStatusInput {
  readonly target: NodeTarget | undefined;
  /** When the planner set the current target (for the APPLYING → STALE deadline). */
  readonly targetSetAt: number | undefined;
  readonly lastAck: AckOrNack | undefined;
  readonly lastAckAt: number | undefined;
  readonly lastHeartbeat: Heartbeat | undefined;
  readonly lastHeartbeatAt: number | undefined;
  readonly now: number;
  readonly thresholds?: NodeStatusThresholds;
}

export interface NodeStatus {
  readonly status: NodeStatusWord;
  /** Version/revision the node reports running (0 when unknown). */
  readonly appliedVersion: number;
  readonly appliedConfigRevision: number;
  readonly reason: string;
}

/**
 * The status word for one node. Pure: the caller passes the clock reading.
 *
 *  UNKNOWN   never heard from, or silent for `silenceMs` (it may still run its last state: appliers
 *            are fail-static, but we cannot prove what it runs)
 *  ERROR     its newest answer about the current target is a NACK, or it reports itself unhealthy
 *  SYNCED    it runs exactly the target (version and config revision)
 *  APPLYING  it runs something else, and the target is younger than `applyTimeoutMs`
 *  STALE     it runs something else, and has for longer than that
 */
export function computeNodeStatus(i: NodeStatusInput): NodeStatus {
  const th = i.thresholds ?? DEFAULT_NODE_STATUS_THRESHOLDS;
  const applied = appliedFrom(i);
  const lastHeard = Math.max(i.lastAckAt ?? -Infinity, i.lastHeartbeatAt ?? -Infinity);
  const mk = (status: NodeStatusWord, reason: string): NodeStatus => ({ status, reason, ...applied });
  if (lastHeard === -Infinity) return mk('UNKNOWN', 'never heard from');
  if (i.now - lastHeard > th.silenceMs) return mk('UNKNOWN', `silent for ${Math.round((i.now - lastHeard) / 1000)} s`);
  const t = i.target;
  if (!t) return mk('UNKNOWN', 'no target set');
  const onTarget = applied.appliedVersion === t.version && applied.appliedConfigRevision === t.configRevision;
  const nack = i.lastAck?.type === 'NACK' && i.lastAck.version === t.version && i.lastAck.configRevision === t.configRevision
    ? i.lastAck : undefined;
  if (nack && !onTarget) return mk('ERROR', `NACK for version ${nack.version}: ${nack.error}`);
  const hb = i.lastHeartbeat;
  if (hb && !hb.healthy && (i.lastHeartbeatAt ?? 0) >= (i.lastAckAt ?? 0)) return mk('ERROR', `unhealthy: ${hb.detail}`);
  if (onTarget) return mk('SYNCED', `running version ${t.version} config ${t.configRevision}`);
  const age = i.now - (i.targetSetAt ?? i.now);
  if (age > th.applyTimeoutMs) return mk('STALE', `running version ${applied.appliedVersion}, target ${t.version} set ${Math.round(age / 1000)} s ago`);
  return mk('APPLYING', `running version ${applied.appliedVersion}, target ${t.version}`);
}

/** What the node runs: from the newer of its last ACK and its last heartbeat. */
function appliedFrom(i: NodeStatusInput): { appliedVersion: number; appliedConfigRevision: number } {
  const ack = i.lastAck?.type === 'ACK' ? i.lastAck : undefined;
  const hb = i.lastHeartbeat;
  const useAck = ack && (!hb || (i.lastAckAt ?? 0) >= (i.lastHeartbeatAt ?? 0));
  if (useAck) return { appliedVersion: ack.version, appliedConfigRevision: ack.configRevision };
  if (hb) return { appliedVersion: hb.appliedVersion, appliedConfigRevision: hb.appliedConfigRevision };
  const nack = i.lastAck?.type === 'NACK' ? i.lastAck : undefined;
  if (nack) return { appliedVersion: nack.lastGoodVersion, appliedConfigRevision: nack.lastGoodConfigRevision };
  return { appliedVersion: 0, appliedConfigRevision: 0 };
}
