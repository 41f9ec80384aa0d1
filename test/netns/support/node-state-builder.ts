import type { NodeState, Protocol, RealServer, VirtualServer, VirtualServerRole } from '../../../libs/model/index.ts';
import { byCodeUnit, virtualServerKey } from '../../../libs/model/index.ts';

/** A compact description of one virtual server for tests; the rest takes ipvs-mode defaults. */
export interface VsSpec {
  servicePort: string;
  address: string;
  port: number;
  protocol?: Protocol;
  role?: VirtualServerRole;
  localOnly?: boolean;
  persistenceTimeout?: number;
  sourceRanges?: string[];
  endpoints: string[]; // "ip:port"
  /** localOnly: the cluster-wide endpoints, where they differ (VirtualServer.clusterRealServers). */
  clusterEndpoints?: string[];
  /** localOnly: no endpoint on this node, `endpoints` are the cluster-wide fallback (localRealServers: []). */
  noLocalEndpoints?: boolean;
}

const realServers = (eps: readonly string[]): RealServer[] =>
  eps
    .map((e) => {
      const i = e.lastIndexOf(':');
      return { address: e.slice(0, i), port: Number(e.slice(i + 1)), weight: 1 };
    })
    .sort((a, b) => byCodeUnit(a.address, b.address) || a.port - b.port);

export function virtualServer(s: VsSpec): VirtualServer {
  return {
    protocol: s.protocol ?? 'TCP',
    address: s.address,
    port: s.port,
    scheduler: 'rr',
    schedulerFlags: [],
    persistenceTimeout: s.persistenceTimeout ?? 0,
    role: s.role ?? 'cluster-ip',
    servicePort: s.servicePort,
    localOnly: s.localOnly ?? false,
    sourceRanges: s.sourceRanges ?? [],
    realServers: realServers(s.endpoints),
    ...(s.clusterEndpoints ? { clusterRealServers: realServers(s.clusterEndpoints) } : {}),
    ...(s.noLocalEndpoints ? { localRealServers: [] } : {}),
  };
}

export function nodeState(specs: VsSpec[], settings: Partial<NodeState['settings']> = {}): NodeState {
  const virtualServers = specs.map(virtualServer).sort((a, b) => byCodeUnit(virtualServerKey(a), virtualServerKey(b)));
  return {
    node: 'node-a',
    virtualServers,
    boundAddresses: [],
    ipsets: [],
    settings: {
      strictARP: false,
      masqueradeAll: false,
      clusterCIDR: '',
      tcpTimeout: 0,
      tcpFinTimeout: 0,
      udpTimeout: 0,
      excludeCIDRs: [],
      ...settings,
    },
  };
}

/**
 * `services` ClusterIP services (10.96.x.y:80) of `endpoints` endpoints each, any number of them
 * (10.64.0.0 up, port 8000 + the service's index): large endpoint maps and sets for scale cases.
 */
export function servicesWithEndpoints(services: number, endpoints: number): NodeState {
  return nodeState(
    Array.from({ length: services }, (_, i) => ({
      servicePort: `ns/svc${i}:p`,
      address: `10.96.${i >> 8}.${i & 255}`,
      port: 80,
      endpoints: Array.from(
        { length: endpoints },
        (_, e) => `10.${64 + (e >> 16)}.${(e >> 8) & 255}.${e & 255}:${8000 + i}`,
      ),
    })),
  );
}
