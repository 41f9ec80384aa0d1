// The applier (ipvs) benches' node state: S ClusterIP services × E endpoints each (service 0 with
// `extra` more), their addresses bound to kube-ipvs0 and in the ClusterIP ipsets, glue off.
import type { NodeState, VirtualServer } from '../../libs/model/index.ts';

export function ipvsBenchState(services: number, endpoints: number, extra = 0): NodeState {
  const vss: VirtualServer[] = [];
  for (let s = 0; s < services; s++) {
    const address = `10.96.${s >> 8}.${s & 255}`;
    const n = endpoints + (s === 0 ? extra : 0);
    vss.push({
      protocol: 'TCP',
      address,
      port: 80,
      scheduler: 'rr',
      schedulerFlags: [],
      persistenceTimeout: 0,
      role: 'cluster-ip',
      servicePort: `default/s${s}:http`,
      localOnly: false,
      sourceRanges: [],
      realServers: Array.from({ length: n }, (_, e) => ({
        address: `10.${128 + (e >> 4)}.${s >> 8}.${s & 255}`,
        port: 8000 + (e & 15),
        weight: 1,
      })).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port)),
    });
  }
  vss.sort((a, b) => (`${a.address}` < `${b.address}` ? -1 : 1));
  const vips = vss.map((v) => v.address).sort();
  return {
    node: 'bench',
    virtualServers: vss,
    boundAddresses: vips,
    ipsets: [
      {
        name: 'KUBE-CLUSTER-IP',
        type: 'hash:ip,port',
        family: 'inet',
        entries: vss.map((v) => `${v.address},tcp:80`).sort(),
      },
      { name: 'KUBE-IPVS-IPS', type: 'hash:ip', family: 'inet', entries: vips },
    ],
    settings: {
      strictARP: false,
      masqueradeAll: false,
      clusterCIDR: '',
      tcpTimeout: 0,
      tcpFinTimeout: 0,
      udpTimeout: 0,
      excludeCIDRs: [],
    },
  };
}
