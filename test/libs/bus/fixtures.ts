import {
  byEndpointAddress,
  type DataDelta,
  type NodeFacts,
  type ServiceEntry,
  type VersionArtifact,
} from '../../../libs/model/index.ts';
import { ClusterDataIndex } from '../../../libs/planner/index.ts';

/** A plain ClusterIP service entry: every policy at its default, the given key, IPs and ports. */
export function serviceEntry(
  key: string,
  clusterIPs: string[],
  ports: ServiceEntry['ports'],
  nodePorts = false,
): ServiceEntry {
  return {
    key,
    clusterIPs,
    externalIPs: [],
    loadBalancerIngress: [],
    loadBalancerSourceRanges: [],
    affinityTimeoutSeconds: 0,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    healthCheckNodePort: 0,
    topologyAware: false,
    nodePorts,
    ports,
  };
}

/** A ClusterIP service `key` on port 80 whose ready TCP endpoints (:8080, on node n1) have the IPs `ips`. */
function httpService(key: string, clusterIP: string, ips: readonly string[]): ServiceEntry {
  return serviceEntry(
    key,
    [clusterIP],
    [
      {
        name: 'http',
        protocol: 'TCP',
        port: 80,
        nodePort: 0,
        endpoints: ips.map((ip) => ({
          ip,
          port: 8080,
          nodeName: 'n1',
          zone: '',
          ready: true,
          serving: true,
          terminating: false,
          hintZones: [],
        })),
      },
    ],
  );
}

/** A ClusterIP service with `endpoints` ready TCP endpoints; `gen` varies the endpoint IPs. */
export function service(i: number, endpoints = 2, gen = 0): ServiceEntry {
  return httpService(
    `ns/svc-${i}`,
    `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    Array.from({ length: endpoints }, (_, e) => `10.${1 + (gen % 200)}.${i % 250}.${e + 1}`),
  );
}

/** A ClusterIP service `key` with `n` ready endpoints (any number: 10.100.0.0 up), shifted by `shift`. */
export function largeService(key: string, n: number, shift = 0): ServiceEntry {
  return httpService(
    key,
    '10.97.0.1',
    Array.from({ length: n }, (_, i) => {
      const e = i + shift;
      return `10.${100 + (e >> 16)}.${(e >> 8) & 255}.${e & 255}`;
    }),
  );
}

/**
 * largeService with its endpoints in the order entries keep them, by (ip, port) in code-unit order
 * (the planner sorts them; largeService lists them as generated): what patches are made against.
 */
export function sortedLargeService(key: string, n: number, shift = 0): ServiceEntry {
  const e = largeService(key, n, shift);
  const p = e.ports[0]!;
  return { ...e, ports: [{ ...p, endpoints: [...p.endpoints].sort(byEndpointAddress) }] };
}

export function node(name: string): NodeFacts {
  return { name, addresses: ['192.168.0.1'], zone: '' };
}

export const emptyDelta: DataDelta = { upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: [] };

/**
 * A planner in miniature: holds data, makes numbered versions from deltas, and hands out each
 * version's artifacts exactly as a real planner would (hash = ClusterDataIndex.hash()).
 */
export class VersionMaker {
  readonly index = new ClusterDataIndex();
  version = 0;
  readonly history: {
    delta: VersionArtifact & { form: 'delta' };
    checkpoint: () => VersionArtifact & { form: 'checkpoint' };
  }[] = [];

  next(
    delta: Partial<DataDelta>,
    reason = 'test',
  ): { delta: VersionArtifact & { form: 'delta' }; checkpoint: () => VersionArtifact & { form: 'checkpoint' } } {
    const d = { ...emptyDelta, ...delta };
    this.index.apply(d);
    this.version++;
    const header = {
      version: this.version,
      parent: this.version - 1,
      hash: this.index.hash(),
      reason,
      createdAt: '2026-01-01T00:00:00.000Z',
    };
    const data = this.index.toClusterData();
    const v = {
      delta: { ...header, form: 'delta' as const, delta: d },
      checkpoint: () => ({ ...header, form: 'checkpoint' as const, data }),
    };
    this.history.push(v);
    return v;
  }
}
