import { nodeStatus, type NodeStatusThresholds } from '../control/index.ts';
import type { AckOrNack, Heartbeat, NodeStatusWord, NodeTarget } from '../model/index.ts';

export { DEFAULT_NODE_STATUS_THRESHOLDS, type NodeStatusThresholds } from '../control/index.ts';

/** The inputs of libs/control's nodeStatus, under the names the bus side uses. */
export interface NodeStatusInput {
  readonly target: NodeTarget | undefined;
  readonly targetSetAt: number | undefined;
  /** A new applier process's first report after the target was set, when it restarted the clock (ApplyClock). */
  readonly sessionStartAt?: number;
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

/** The status word for one node: libs/control's nodeStatus (the one rule), in the bus's shape. */
export function computeNodeStatus(i: NodeStatusInput): NodeStatus {
  const r = nodeStatus(
    {
      node: '',
      target: i.target,
      targetSetAt: i.targetSetAt,
      sessionStartAt: i.sessionStartAt,
      last: i.lastAck,
      lastAt: i.lastAckAt,
      heartbeat: i.lastHeartbeat,
      heartbeatAt: i.lastHeartbeatAt,
    },
    i.now,
    i.thresholds,
  );
  return {
    status: r.status,
    reason: r.reason,
    appliedVersion: r.appliedVersion ?? 0,
    appliedConfigRevision: r.appliedConfigRevision ?? 0,
  };
}
