import { hostPort, virtualServerKey, type NodeState } from '../model/index.ts';

/** One virtual server to probe through the dataplane, and the endpoint that shows it is reachable. */
export interface ProbeTarget {
  /** `tcp/10.96.0.1:80`, as ipvsadm names the virtual server. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** A real server of it, connected to directly first: if that fails, the endpoint (not the dataplane) is at fault. */
  readonly endpoint: { readonly address: string; readonly port: number; readonly text: string };
}

/**
 * Picks up to `sample` virtual servers of `state` to probe in round `round`. Candidates are TCP
 * (a connection proves the path; UDP cannot answer that without an application protocol) and have
 * an endpoint with weight > 0; LoadBalancer addresses restricted by source ranges are left out
 * (the node's own address may rightly be refused). Sorted by key and taken round-robin from an
 * offset that moves each round, so successive rounds cover the whole set. Pure.
 */
export function pickProbeTargets(state: NodeState, sample: number, round: number): ProbeTarget[] {
  const candidates = state.virtualServers
    .filter((vs) => vs.protocol === 'TCP' && vs.sourceRanges.length === 0 && vs.realServers.some((r) => r.weight > 0))
    .map((vs) => ({ vs, key: virtualServerKey(vs).toLowerCase() }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const n = Math.min(Math.max(0, Math.floor(sample)), candidates.length);
  const out: ProbeTarget[] = [];
  for (let i = 0; i < n; i++) {
    const { vs, key } = candidates[(round * n + i) % candidates.length]!;
    const live = vs.realServers.filter((r) => r.weight > 0);
    const ep = live[round % live.length]!;
    out.push({
      key,
      address: vs.address,
      port: vs.port,
      endpoint: { address: ep.address, port: ep.port, text: hostPort(ep.address, ep.port) },
    });
  }
  return out;
}
