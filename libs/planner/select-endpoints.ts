import type { EndpointEntry, IpFamily, ServiceEntry, ServicePortEntry } from '../model/index.ts';
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
 * dropped during a rollout), zone hints only when the service opted in and every ready endpoint
 * carries hints and at least one names this node's zone.
 */
export function selectEndpoints(
  svc: ServiceEntry,
  port: ServicePortEntry,
  family: IpFamily,
  nodeName: string,
  nodeZone: string,
): EndpointSelection {
  const eps = port.endpoints.filter((e) => ipFamily(e.ip) === family);
  const useTopology = svc.topologyAware && nodeZone !== '' && canUseTopology(eps, nodeZone);
  let cluster = eps.filter((e) => e.ready && (!useTopology || e.hintZones.includes(nodeZone)));
  if (cluster.length === 0) cluster = eps.filter((e) => e.serving && e.terminating);
  const allLocal = eps.filter((e) => e.nodeName !== '' && e.nodeName === nodeName);
  let local = allLocal.filter((e) => e.ready);
  if (local.length === 0) local = allLocal.filter((e) => e.serving && e.terminating);
  return { cluster, local, allLocal };
}

function canUseTopology(eps: readonly EndpointEntry[], zone: string): boolean {
  let hasZone = false;
  for (const e of eps) {
    if (!e.ready) continue;
    if (e.hintZones.length === 0) return false;
    if (e.hintZones.includes(zone)) hasZone = true;
  }
  return hasZone;
}
