import type { IpsetState, NodeState, RealServer, VirtualServer } from '../../../../libs/model/index.ts';
import { formatIpsetSave as formatSets } from '../../../../libs/planner/index.ts';
import { glueFamilies, netfilterGlue, withGlueSets } from '../../../../libs/dataplane/ipvs/netfilter-glue.ts';

/** Small hand-built NodeStates for the pure dataplane tests. */
export function vs(
  address: string,
  port: number,
  reals: [string, number][],
  o: Partial<VirtualServer> = {},
): VirtualServer {
  return {
    protocol: 'TCP',
    address,
    port,
    scheduler: 'rr',
    schedulerFlags: [],
    persistenceTimeout: 0,
    role: 'cluster-ip',
    servicePort: `default/svc-${port}:http`,
    localOnly: false,
    sourceRanges: [],
    realServers: reals.map(([a, p]): RealServer => ({ address: a, port: p, weight: 1 })),
    ...o,
  };
}

export function nodeState(virtualServers: VirtualServer[], o: Partial<NodeState> = {}): NodeState {
  const clusterIPs = [...new Set(virtualServers.map((v) => v.address))].sort();
  // Deliberately only some of kube-proxy's sets: the applier must add those its glue needs.
  const ipsets: IpsetState[] = [
    {
      name: 'KUBE-CLUSTER-IP',
      type: 'hash:ip,port',
      family: 'inet',
      entries: virtualServers.map((v) => `${v.address},${v.protocol.toLowerCase()}:${v.port}`).sort(),
    },
    { name: 'KUBE-IPVS-IPS', type: 'hash:ip', family: 'inet', entries: clusterIPs },
    { name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', entries: [] },
  ];
  return {
    node: 'n1',
    virtualServers,
    boundAddresses: clusterIPs,
    ipsets,
    settings: {
      strictARP: false,
      masqueradeAll: false,
      clusterCIDR: '10.244.0.0/16',
      tcpTimeout: 0,
      tcpFinTimeout: 0,
      udpTimeout: 0,
      excludeCIDRs: [],
    },
    ...o,
  };
}

/** `ipset save` text the applier must produce: the state's sets plus the empty ones the glue matches on. */
export function formatIpsetSave(s: NodeState): string {
  return formatSets(withGlueSets(s, netfilterGlue(s.settings, glueFamilies(s))));
}
