import type { EndpointEntry, IpFamily, ServicePortEntry } from '../model/index.ts';
import { ipFamily } from '../model/index.ts';

export interface EndpointSelection {
  /** Endpoints for traffic policy Cluster (topology applied when usable). */
  readonly cluster: readonly EndpointEntry[];
  /** Endpoints on this node, for traffic policy Local. */
  readonly local: readonly EndpointEntry[];
  /** Every endpoint of the family that sits on this node, whatever its condition. */
  readonly allLocal: readonly EndpointEntry[];
}

/**
 * kube-proxy's CategorizeEndpoints for one service port and address family: ready endpoints
 * first, serving-and-terminating ones only when no ready endpoint exists (so connections are not
 * dropped during a rollout), narrowed by topology as the slice hints say (topologyModeFromHints).
 */
export function selectEndpoints(
  port: ServicePortEntry,
  family: IpFamily,
  nodeName: string,
  nodeZone: string,
): EndpointSelection {
  const eps = port.endpoints.filter((e) => ipFamily(e.ip) === family);
  const mode = topologyMode(eps, nodeName, nodeZone);
  let cluster = eps.filter(
    (e) =>
      e.ready &&
      (mode === 'none' || (mode === 'node' ? (e.hintNodes ?? []).includes(nodeName) : e.hintZones.includes(nodeZone))),
  );
  if (cluster.length === 0) cluster = eps.filter((e) => e.serving && e.terminating);
  const allLocal = eps.filter((e) => e.nodeName !== '' && e.nodeName === nodeName);
  let local = allLocal.filter((e) => e.ready);
  if (local.length === 0) local = allLocal.filter((e) => e.serving && e.terminating);
  return { cluster, local, allLocal };
}

/**
 * kube-proxy's topologyModeFromHints (pkg/proxy/topology.go): the slice hints alone decide (the
 * EndpointSlice controller writes them only for Services that opted in: topology-mode Auto,
 * trafficDistribution PreferClose/PreferSameZone/PreferSameNode). Same node when every ready
 * endpoint has node hints and one names this node; else same zone when every ready endpoint has
 * zone hints and one names this node's zone; else none.
 */
function topologyMode(eps: readonly EndpointEntry[], nodeName: string, zone: string): 'none' | 'node' | 'zone' {
  let allNode = true;
  let forNode = false;
  let allZone = true;
  let forZone = false;
  let anyReady = false;
  for (const e of eps) {
    if (!e.ready) continue;
    anyReady = true;
    const nodes = e.hintNodes ?? [];
    if (nodes.length === 0) allNode = false;
    else if (nodeName !== '' && nodes.includes(nodeName)) forNode = true;
    if (e.hintZones.length === 0) allZone = false;
    else if (zone !== '' && e.hintZones.includes(zone)) forZone = true;
  }
  if (!anyReady) return 'none';
  if (allNode && forNode) return 'node';
  if (allZone && forZone) return 'zone';
  return 'none';
}
