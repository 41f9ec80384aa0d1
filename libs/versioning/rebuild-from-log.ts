import type { EventLog } from '../eventlog/event-log.ts';
import type { KubeKind } from '../model/index.ts';
import { ClusterDataIndex, ClusterState } from '../planner/index.ts';
import { eventChange, rejectionKey, type ObjectRejection } from './object-rejection.ts';

export interface RebuiltState {
  readonly state: ClusterState;
  /** Objects rejected as of the end (their previous good state is in `state`). */
  readonly rejections: Map<string, ObjectRejection>;
  /** Data as of `captureAtSeq` when asked for (a copy). */
  readonly captured: ClusterDataIndex | undefined;
  readonly seq: number;
}

const PAGE = 5000;

/**
 * Rebuilds the planner's state from the log by folding every event with the planner's own rule
 * (eventChange: malformed objects keep their previous good state), so a restarted planner holds
 * exactly the state it had. Sequential, O(events): checkpoints in the log store parsed objects
 * only, which is enough for this fold too, but the log does not expose them yet (see report).
 */
export function rebuildFromLog(log: EventLog, opts: { toSeq?: number; captureAtSeq?: number } = {}): RebuiltState {
  const toSeq = opts.toSeq ?? log.lastSeq();
  const state = new ClusterState();
  const rejections = new Map<string, ObjectRejection>();
  let captured: ClusterDataIndex | undefined;
  if (opts.captureAtSeq === 0) captured = new ClusterDataIndex();
  let from = 1;
  for (;;) {
    const batch = log.events({ fromSeq: from, toSeq, limit: PAGE });
    for (const e of batch) {
      const r = eventChange(e);
      const key = rejectionKey(e);
      if ('change' in r) {
        state.apply(r.change);
        rejections.delete(key);
      } else {
        rejections.set(key, { kind: e.kind as KubeKind, namespace: e.namespace, name: e.name, reason: r.reason, seq: e.seq });
      }
      if (e.seq === opts.captureAtSeq) captured = copyData(state.data);
    }
    if (batch.length < PAGE) break;
    from = batch[batch.length - 1]!.seq + 1;
  }
  state.commit();
  if (opts.captureAtSeq !== undefined && !captured) {
    // No event at exactly that seq (cannot happen with contiguous seqs, but stay total).
    throw new Error(`cannot rebuild data at seq ${opts.captureAtSeq}`);
  }
  return { state, rejections, captured, seq: toSeq };
}

export function copyData(idx: ClusterDataIndex): ClusterDataIndex {
  return ClusterDataIndex.from(idx.toClusterData());
}

