import { describe, expect, it } from 'vitest';
import type { NodeState } from '../../../libs/model/index.ts';
import {
  planKubeProxyIpvsRemoval,
  snapshotKubeProxyIpvs,
  type Exec,
} from '../../../libs/dataplane/kube-proxy-ipvs-takeover.ts';

// What kube-proxy's ipvs mode left (tool output in kube-proxy's formats) against what we render:
// only kube-proxy's objects that we do not render are planned for removal.
const IPVSADM = `-A -t 10.96.0.10:80 -s rr
-a -t 10.96.0.10:80 -r 10.50.1.10:8080 -m -w 1
-A -t 10.96.0.99:80 -s rr
-a -t 10.96.0.99:80 -r 10.50.1.10:8080 -m -w 1
-A -t 10.50.200.1:30080 -s rr
-a -t 10.50.200.1:30080 -r 10.50.1.10:8080 -m -w 1
-A -t 10.50.200.1:30099 -s rr
-A -u 10.200.0.1:7000 -s rr
`;
const fakeExec = (): Exec => async (cmd, args) => {
  const key = [cmd, ...args].join(' ');
  if (key === 'ip -o -4 addr show dev kube-ipvs0')
    return '5: kube-ipvs0    inet 10.96.0.10/32 scope global kube-ipvs0\\       valid_lft forever\n5: kube-ipvs0    inet 10.96.0.99/32 scope global kube-ipvs0\n';
  if (key === 'ipset save KUBE-NODE-PORT-TCP')
    return 'create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\nadd KUBE-NODE-PORT-TCP 30080\nadd KUBE-NODE-PORT-TCP 30099\n';
  if (key.startsWith('ipset save')) throw new Error('The set with the given name does not exist');
  if (key === 'ipvsadm -Sn') return IPVSADM;
  throw new Error(`unexpected ${key}`);
};

const IPTABLES_SAVE = `*mangle
:PREROUTING ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
COMMIT
*filter
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-FIREWALL - [0:0]
:FOREIGN-FW - [0:0]
-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT
-A INPUT -j KUBE-FIREWALL
-A INPUT -j FOREIGN-FW
-A OUTPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER
-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT
COMMIT
`;

const desired: NodeState = {
  node: 'n1',
  virtualServers: [
    {
      protocol: 'TCP',
      address: '10.96.0.10',
      port: 80,
      scheduler: 'rr',
      schedulerFlags: [],
      persistenceTimeout: 0,
      role: 'cluster-ip',
      servicePort: 'default/web:http',
      localOnly: false,
      sourceRanges: [],
      realServers: [],
    },
    {
      protocol: 'TCP',
      address: '10.50.200.1',
      port: 30080,
      scheduler: 'rr',
      schedulerFlags: [],
      persistenceTimeout: 0,
      role: 'node-port',
      servicePort: 'default/web:http',
      localOnly: false,
      sourceRanges: [],
      realServers: [],
    },
  ],
  boundAddresses: ['10.96.0.10'],
  ipsets: [{ name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', family: 'inet', entries: [] }],
  settings: {
    strictARP: false,
    masqueradeAll: false,
    clusterCIDR: '',
    tcpTimeout: 0,
    tcpFinTimeout: 0,
    udpTimeout: 0,
    excludeCIDRs: [],
  },
} as unknown as NodeState;

describe('taking over from kube-proxy ipvs mode: what is removed', () => {
  it("recognises kube-proxy's IPVS services by kube-ipvs0 addresses and its NodePort set, not foreign ones", async () => {
    const snap = await snapshotKubeProxyIpvs(fakeExec());
    expect([...snap.services.keys()].sort()).toEqual([
      'TCP/10.50.200.1:30080',
      'TCP/10.50.200.1:30099',
      'TCP/10.96.0.10:80',
      'TCP/10.96.0.99:80',
    ]);
    expect(snap.vips).toEqual(['10.96.0.10', '10.96.0.99']);
  });

  it("plans removal of what we do not render: services, addresses, kube-proxy chains (not the kubelet's), unused kube-proxy sets", async () => {
    const snap = await snapshotKubeProxyIpvs(fakeExec());
    const plan = planKubeProxyIpvsRemoval(snap, desired, IPTABLES_SAVE, [
      'KUBE-CLUSTER-IP',
      'KUBE-IPVS-IPS',
      'KUBE-6-CLUSTER-IP',
      'FOREIGN-SET',
      'KUBE-HEALTH-CHECK-NODE-PORT',
    ]);
    expect(plan.ipvsDeletes).toEqual([
      { flag: '-t', hostPort: '10.96.0.99:80' },
      { flag: '-t', hostPort: '10.50.200.1:30099' },
    ]);
    expect(plan.addressDeletes).toEqual(['10.96.0.99']);
    expect(plan.staleChains).toEqual([
      'mangle/KUBE-PROXY-CANARY',
      'nat/KUBE-PROXY-CANARY',
      'filter/KUBE-IPVS-OUT-FILTER',
      'filter/KUBE-NODE-PORT',
    ]);
    expect(plan.iptablesRestore).toBe(
      [
        '*mangle',
        '-F KUBE-PROXY-CANARY',
        '-X KUBE-PROXY-CANARY',
        'COMMIT',
        '*nat',
        '-F KUBE-PROXY-CANARY',
        '-X KUBE-PROXY-CANARY',
        'COMMIT',
        '*filter',
        '-D INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT',
        '-D OUTPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER',
        '-F KUBE-IPVS-OUT-FILTER',
        '-F KUBE-NODE-PORT',
        '-X KUBE-IPVS-OUT-FILTER',
        '-X KUBE-NODE-PORT',
        'COMMIT',
        '',
      ].join('\n'),
    );
    // KUBE-IPVS-IPS and KUBE-HEALTH-CHECK-NODE-PORT are referenced by our glue; FOREIGN-SET is not kube-proxy's
    expect(plan.ipsetDestroys).toEqual(['KUBE-6-CLUSTER-IP']);
  });
});
