// The nftables benches' node state: N ClusterIP services without session affinity, E endpoints
// each (distinct pod addresses), sorted as the planner hands them over; `changed` swaps the
// first endpoint of the middle service (the one-endpoint change).
import type { NodeState, VirtualServer } from '../../libs/model/index.ts';
import { byCodeUnit, virtualServerKey } from '../../libs/model/index.ts';

export function benchState(N: number, E: number, changed = false): NodeState {
  const vs: VirtualServer[] = [];
  for (let i = 0; i < N; i++) {
    const realServers = Array.from({ length: E }, (_, j) => ({
      address: `10.${64 + (i >> 12)}.${(i >> 4) & 255}.${((i & 15) << 4) + j}`,
      port: 8080,
      weight: 1,
    }));
    if (changed && i === Math.floor(N / 2)) realServers[0] = { address: '10.250.0.1', port: 8080, weight: 1 };
    realServers.sort((a, b) => byCodeUnit(a.address, b.address));
    vs.push({
      protocol: 'TCP',
      address: `10.96.${i >> 8}.${i & 255}`,
      port: 80,
      scheduler: 'rr',
      schedulerFlags: [],
      persistenceTimeout: 0,
      role: 'cluster-ip',
      servicePort: `ns${i % 50}/svc${i}:http`,
      localOnly: false,
      sourceRanges: [],
      realServers,
    });
  }
  vs.sort((a, b) => byCodeUnit(virtualServerKey(a), virtualServerKey(b)));
  return {
    node: 'bench',
    virtualServers: vs,
    boundAddresses: [],
    ipsets: [],
    settings: {
      strictARP: false,
      masqueradeAll: false,
      clusterCIDR: '10.64.0.0/10',
      tcpTimeout: 0,
      tcpFinTimeout: 0,
      udpTimeout: 0,
      excludeCIDRs: [],
    },
  };
}
