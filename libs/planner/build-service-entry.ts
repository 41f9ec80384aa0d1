import {
  byCodeUnit,
  type EndpointEntry,
  type EndpointSliceObject,
  type NodeFacts,
  type NodeObject,
  type ServiceEntry,
  type ServiceObject,
  type ServicePortEntry,
} from '../model/index.ts';

/**
 * Merges a Service with its EndpointSlices into the node-independent entry that data versions
 * carry. Returns undefined for services the proxy ignores (ExternalName, headless, no cluster IP
 * allocated yet) — as kube-proxy's ShouldSkipService does.
 */
export function buildServiceEntry(svc: ServiceObject, slices: Iterable<EndpointSliceObject>): ServiceEntry | undefined {
  if (svc.type === 'ExternalName' || svc.headless || svc.clusterIPs.length === 0) return undefined;
  const sliceList = [...slices].filter((s) => s.addressType !== 'FQDN');
  const ports: ServicePortEntry[] = svc.ports.map((p) => ({
    name: p.name,
    protocol: p.protocol,
    port: p.port,
    nodePort: svc.type === 'NodePort' || svc.type === 'LoadBalancer' ? p.nodePort : 0,
    endpoints: endpointsFor(p.name, p.protocol, sliceList),
  }));
  ports.sort((a, b) => byCodeUnit(a.name, b.name));
  return {
    key: `${svc.meta.namespace}/${svc.meta.name}`,
    clusterIPs: svc.clusterIPs,
    externalIPs: uniqueSorted(svc.externalIPs),
    loadBalancerIngress: uniqueSorted(svc.loadBalancerIngress),
    loadBalancerSourceRanges: uniqueSorted(svc.loadBalancerSourceRanges),
    affinityTimeoutSeconds: svc.sessionAffinity === 'ClientIP' ? svc.affinityTimeoutSeconds : 0,
    externalTrafficPolicy: svc.externalTrafficPolicy,
    internalTrafficPolicy: svc.internalTrafficPolicy,
    healthCheckNodePort: svc.healthCheckNodePort,
    topologyAware: svc.topologyAware,
    nodePorts: svc.type === 'NodePort' || svc.type === 'LoadBalancer',
    ports,
  };
}

/**
 * Endpoints of one service port across all slices, matched by port name and protocol the way the
 * endpoint slice cache does. The same ip:port in two slices (possible during slice moves) is kept
 * once, preferring the more usable copy (ready over serving over neither) so the result does not
 * depend on slice order.
 */
function endpointsFor(portName: string, protocol: string, slices: EndpointSliceObject[]): EndpointEntry[] {
  const byAddr = new Map<string, EndpointEntry>();
  for (const slice of slices) {
    const sp = slice.ports.find((p) => p.name === portName && p.protocol === protocol);
    if (!sp) continue;
    for (const ep of slice.endpoints) {
      const ip = ep.addresses[0]!; // kube-proxy uses the first address only
      const entry: EndpointEntry = {
        ip,
        port: sp.port,
        nodeName: ep.nodeName,
        zone: ep.zone,
        ready: ep.ready,
        serving: ep.serving,
        terminating: ep.terminating,
        hintZones: uniqueSorted(ep.hintZones),
      };
      const key = `${ip}|${sp.port}`;
      const prev = byAddr.get(key);
      if (
        !prev ||
        rank(entry) > rank(prev) ||
        (rank(entry) === rank(prev) && byCodeUnit(JSON.stringify(entry), JSON.stringify(prev)) < 0)
      ) {
        byAddr.set(key, entry);
      }
    }
  }
  return [...byAddr.values()].sort((a, b) => byCodeUnit(a.ip, b.ip) || a.port - b.port);
}

const rank = (e: EndpointEntry): number => (e.ready ? 2 : e.serving ? 1 : 0);

function uniqueSorted(xs: readonly string[]): string[] {
  return [...new Set(xs)].sort(byCodeUnit);
}

/** The facts rendering uses from a Node; status churn outside them makes no new version. */
export function buildNodeFacts(node: NodeObject): NodeFacts {
  return { name: node.meta.name, addresses: uniqueSorted(node.addresses.map((a) => a.address)), zone: node.zone };
}
