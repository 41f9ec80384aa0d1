import type { KubeObject } from '../../test/support/kube-api-server/index.ts';

/**
 * Synthetic cluster for the planner benchmark: S services (ClusterIP/NodePort mix, 1–2 ports),
 * each with one EndpointSlice of E endpoints spread over N nodes. Raw API objects, so the
 * benchmark includes validation.
 */
export interface GeneratedCluster {
  services: unknown[];
  slices: unknown[];
  nodes: unknown[];
}

export function generateCluster(opts: {
  services: number;
  endpointsPerService: number;
  nodes: number;
}): GeneratedCluster {
  const nodes = Array.from({ length: opts.nodes }, (_, i) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: `node-${i}`, labels: { 'topology.kubernetes.io/zone': `zone-${i % 3}` } },
    status: { addresses: [{ type: 'InternalIP', address: `172.16.${i >> 8}.${i & 255}` }] },
  }));
  const services: unknown[] = [];
  const slices: unknown[] = [];
  for (let s = 0; s < opts.services; s++) {
    services.push(makeService(s));
    slices.push(makeSlice(`ns-${s % 50}`, s, opts.endpointsPerService, opts.nodes, 0, s % 4 === 0));
  }
  return { services, slices, nodes };
}

/** Service s of generateCluster (ns-<s % 50>/svc-<s>; every 5th a NodePort, every 4th two ports). */
export function makeService(s: number): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `svc-${s}`, namespace: `ns-${s % 50}`, resourceVersion: '1' },
    spec: {
      type: s % 5 === 0 ? 'NodePort' : 'ClusterIP',
      clusterIP: `10.${96 + (s >> 16)}.${(s >> 8) & 255}.${s & 255}`,
      ports: [
        { name: 'http', port: 80, nodePort: s % 5 === 0 ? 30000 + (s % 2000) : undefined },
        ...(s % 4 === 0 ? [{ name: 'metrics', port: 9090 }] : []),
      ],
    },
  };
}

export function makeSlice(
  ns: string,
  s: number,
  count: number,
  nodes: number,
  generation: number,
  twoPorts = false,
): unknown {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `svc-${s}-abcde`,
      namespace: ns,
      labels: { 'kubernetes.io/service-name': `svc-${s}` },
      resourceVersion: String(generation + 1),
    },
    addressType: 'IPv4',
    // The target port moves with the generation so every generated event really changes the service.
    ports: [
      { name: 'http', port: 8080 + (generation % 50000), protocol: 'TCP' },
      ...(twoPorts ? [{ name: 'metrics', port: 9090, protocol: 'TCP' }] : []),
    ],
    endpoints: Array.from({ length: count }, (_, e) => {
      const n = (s * 7 + e + generation) % nodes;
      const ip = s * count + e;
      return {
        addresses: [`100.${64 + ((ip >> 16) & 63)}.${(ip >> 8) & 255}.${ip & 255}`],
        nodeName: `node-${n}`,
        conditions: { ready: (e + generation) % 10 !== 0 },
      };
    }),
  };
}

/**
 * Puts a generated cluster into a test API server (test/support's KubeApiServer) as the objects of
 * a real one: the server assigns each its resourceVersion (the generator's are dropped).
 */
export function serveCluster(
  server: { create(kind: 'Node' | 'Service' | 'EndpointSlice', o: KubeObject): unknown },
  gen: GeneratedCluster,
): void {
  const fresh = (o: unknown) => {
    const x = structuredClone(o) as KubeObject;
    delete (x.metadata as { resourceVersion?: string }).resourceVersion;
    return x;
  };
  for (const o of gen.nodes) server.create('Node', o as KubeObject);
  for (const o of gen.services) server.create('Service', fresh(o));
  for (const o of gen.slices) server.create('EndpointSlice', fresh(o));
}
