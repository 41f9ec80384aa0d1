import type { NodeState } from '../model/index.ts';
import { nodeStateHash } from '../planner/index.ts';
import type { Dataplane } from './dataplane.ts';

/** What one apply did; the CLI prints it and the NATS applier acks with it. */
export interface ApplySummary {
  readonly mode: string;
  readonly node: string;
  readonly services: number;
  readonly virtualServers: number;
  readonly realServers: number;
  readonly writes: number;
  readonly verified: boolean;
  /** nodeStateHash of what was programmed (the ACK hash). */
  readonly hash: string;
  readonly durations: { readonly applyMs: number };
  readonly notes: readonly string[];
}

/**
 * The one path from a rendered NodeState to the kernel, shared by `switchboard apply --once` and
 * the long-running applier: apply through the dataplane, then summarize with the content hash.
 */
export async function applyNodeState(dataplane: Dataplane, state: NodeState): Promise<ApplySummary> {
  const r = await dataplane.apply(state);
  return {
    mode: dataplane.mode,
    node: state.node,
    services: new Set(state.virtualServers.map((v) => v.servicePort.split(':')[0])).size,
    virtualServers: state.virtualServers.length,
    realServers: state.virtualServers.reduce((n, v) => n + v.realServers.length, 0),
    writes: r.kernelWrites,
    verified: r.verified,
    hash: nodeStateHash(state),
    durations: { applyMs: Math.round(r.durationMs * 10) / 10 },
    notes: r.notes,
  };
}
