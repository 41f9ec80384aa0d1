import type { IpsetState, NodeState, RealServer, VirtualServer } from '../../../../libs/model/index.ts';
import { formatIpsetSave } from '../../../../libs/planner/index.ts';

/** Small hand-built NodeStates for the pure dataplane tests. */
export function vs(address: string, port: number, reals: [string, number][], o: Partial<VirtualServer> = {}): VirtualServer {
  return {
    protocol: 'TCP', address, port, scheduler: 'rr', schedulerFlags: [], persistenceTimeout: 0, role: 'cluster-ip',
    servicePort: `default/svc-${port}:http`, localOnly: false, sourceRanges: [],
    realServers: reals.map(([a, p]): RealServer => ({ address: a, port: p, weight: 1 })), ...o,
  };
}

export function nodeState(virtualServers: VirtualServer[], o: Partial<NodeState> = {}): NodeState {
  const clusterIPs = [...new Set(virtualServers.map((v) => v.address))].sort();
  const ipsets: IpsetState[] = [
    { name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', family: 'inet', entries: virtualServers.map((v) => `${v.address},${v.protocol.toLowerCase()}:${v.port}`).sort() },
    { name: 'KUBE-IPVS-IPS', type: 'hash:ip', family: 'inet', entries: clusterIPs },
    { name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', entries: [] },
  ];
  return {
    node: 'n1', virtualServers, boundAddresses: clusterIPs, ipsets,
    settings: { strictARP: false, masqueradeAll: false, clusterCIDR: '10.244.0.0/16', tcpTimeout: 0, tcpFinTimeout: 0, udpTimeout: 0, excludeCIDRs: [] },
    ...o,
  };
}

export { formatIpsetSave };
