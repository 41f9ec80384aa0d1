import { describe, expect, it } from 'vitest';
import { NODES, planFor, service, slice } from '../../support/plan-fixture.ts';
import { entryFromText, entryToText } from '../../../libs/netlink/index.ts';

const HTTP = '[{name: http, port: 8080, protocol: TCP}]';
const ep = (ip: string, node: string, cond = '{ready: true}', extra = '') =>
  `{addresses: [${ip}], nodeName: ${node}, conditions: ${cond}${extra}}`;

interface Case {
  name: string;
  yaml: string;
  node?: string;
  config?: Record<string, unknown>;
  ipvsadm?: string[]; // lines that must appear
  ipset?: string[]; // `add` lines that must appear
  absent?: string[]; // ipvsadm or ipset lines that must NOT appear
  exactIpvsadm?: boolean; // ipvsadm output must be exactly `ipvsadm`
}

const cases: Case[] = [
  {
    name: 'ClusterIP spreads over ready endpoints only',
    yaml:
      NODES +
      service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]') +
      slice('web', HTTP, [
        ep('10.244.1.2', 'node-a'),
        ep('10.244.2.2', 'node-b'),
        ep('10.244.2.3', 'node-b', '{ready: false}'),
      ]),
    exactIpvsadm: true,
    ipvsadm: [
      '-A -t 10.96.0.1:80 -s rr',
      '-a -t 10.96.0.1:80 -r 10.244.1.2:8080 -m -w 1',
      '-a -t 10.96.0.1:80 -r 10.244.2.2:8080 -m -w 1',
    ],
    ipset: [
      'add KUBE-CLUSTER-IP 10.96.0.1,tcp:80',
      'add KUBE-IPVS-IPS 10.96.0.1',
      'add KUBE-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2',
    ],
    absent: ['add KUBE-LOOP-BACK 10.244.2.2,tcp:8080,10.244.2.2', 'add KUBE-NODE-PORT-TCP 80'],
  },
  {
    name: 'serving+terminating endpoints are a fallback only when nothing is ready',
    yaml:
      NODES +
      service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]') +
      slice('web', HTTP, [
        ep('10.244.1.2', 'node-a', '{ready: false, serving: true, terminating: true}'),
        ep('10.244.1.3', 'node-a', '{ready: false, serving: false, terminating: true}'),
      ]),
    ipvsadm: ['-a -t 10.96.0.1:80 -r 10.244.1.2:8080 -m -w 1'],
    absent: ['-a -t 10.96.0.1:80 -r 10.244.1.3:8080 -m -w 1'],
  },
  {
    name: 'terminating endpoints are unused while a ready one exists',
    yaml:
      NODES +
      service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]') +
      slice('web', HTTP, [
        ep('10.244.1.2', 'node-a', '{ready: false, serving: true, terminating: true}'),
        ep('10.244.2.2', 'node-b'),
      ]),
    ipvsadm: ['-a -t 10.96.0.1:80 -r 10.244.2.2:8080 -m -w 1'],
    absent: ['-a -t 10.96.0.1:80 -r 10.244.1.2:8080 -m -w 1'],
  },
  {
    name: 'NodePort on every node address of the family, bitmap set entry',
    yaml:
      NODES +
      service('np', 'type: NodePort\n  clusterIP: 10.96.0.2\n  ports: [{name: http, port: 80, nodePort: 31000}]') +
      slice('np', HTTP, [ep('10.244.2.2', 'node-b')]),
    ipvsadm: [
      '-A -t 192.0.2.10:31000 -s rr',
      '-a -t 192.0.2.10:31000 -r 10.244.2.2:8080 -m -w 1',
      '-A -t 10.96.0.2:80 -s rr',
    ],
    ipset: ['add KUBE-NODE-PORT-TCP 31000'],
    absent: ['-A -t 192.0.2.11:31000 -s rr', 'add KUBE-NODE-PORT-LOCAL-TCP 31000', 'add KUBE-IPVS-IPS 192.0.2.10'],
  },
  {
    name: 'nodePortAddresses filters node addresses',
    yaml:
      NODES +
      service('np', 'type: NodePort\n  clusterIP: 10.96.0.2\n  ports: [{name: http, port: 80, nodePort: 31000}]'),
    config: { nodePortAddresses: ['198.51.100.0/24'] },
    ipvsadm: ['-A -t 10.96.0.2:80 -s rr'],
    absent: ['-A -t 192.0.2.10:31000 -s rr'],
  },
  {
    // probe6 P6: kube-proxy ≥1.29's spelling (its nftables default) means the Node's own addresses
    name: 'nodePortAddresses ["primary"] serves NodePorts on the Node object\'s addresses, as an empty list',
    yaml:
      NODES +
      service('np', 'type: NodePort\n  clusterIP: 10.96.0.2\n  ports: [{name: http, port: 80, nodePort: 31000}]'),
    config: { nodePortAddresses: ['primary'] },
    exactIpvsadm: true,
    ipvsadm: ['-A -t 10.96.0.2:80 -s rr', '-A -t 192.0.2.10:31000 -s rr'],
  },
  {
    name: 'UDP and SCTP NodePorts use their own sets (SCTP is hash:ip,port per node IP)',
    yaml:
      NODES +
      service(
        'multi',
        'type: NodePort\n  clusterIP: 10.96.0.3\n  ports: [{name: dns, port: 53, protocol: UDP, nodePort: 31053}, {name: s, port: 7000, protocol: SCTP, nodePort: 31070}]',
      ),
    ipvsadm: [
      '-A -u 10.96.0.3:53 -s rr',
      '-A -u 192.0.2.10:31053 -s rr',
      '-A --sctp-service 10.96.0.3:7000 -s rr',
      '-A --sctp-service 192.0.2.10:31070 -s rr',
    ],
    ipset: [
      'add KUBE-NODE-PORT-UDP 31053',
      'add KUBE-NODE-PORT-SCTP-HASH 192.0.2.10,sctp:31070',
      'add KUBE-CLUSTER-IP 10.96.0.3,udp:53',
      'add KUBE-CLUSTER-IP 10.96.0.3,sctp:7000',
    ],
    absent: ['add KUBE-NODE-PORT-TCP 31053'],
  },
  {
    name: 'externalIPs: bound, own set; externalTrafficPolicy Local selects local endpoints only',
    yaml:
      NODES +
      service(
        'ext',
        'clusterIP: 10.96.0.4\n  externalIPs: [203.0.113.5]\n  externalTrafficPolicy: Local\n  ports: [{name: http, port: 80}]',
      ) +
      slice('ext', HTTP, [ep('10.244.1.2', 'node-a'), ep('10.244.2.2', 'node-b')]),
    ipvsadm: [
      '-A -t 203.0.113.5:80 -s rr',
      '-a -t 203.0.113.5:80 -r 10.244.1.2:8080 -m -w 1',
      '-a -t 10.96.0.4:80 -r 10.244.2.2:8080 -m -w 1',
    ],
    ipset: ['add KUBE-EXTERNAL-IP-LOCAL 203.0.113.5,tcp:80', 'add KUBE-IPVS-IPS 203.0.113.5'],
    absent: ['-a -t 203.0.113.5:80 -r 10.244.2.2:8080 -m -w 1', 'add KUBE-EXTERNAL-IP 203.0.113.5,tcp:80'],
  },
  {
    name: 'externalIPs with policy Cluster use KUBE-EXTERNAL-IP and every endpoint',
    yaml:
      NODES +
      service('ext', 'clusterIP: 10.96.0.4\n  externalIPs: [203.0.113.5]\n  ports: [{name: http, port: 80}]') +
      slice('ext', HTTP, [ep('10.244.1.2', 'node-a'), ep('10.244.2.2', 'node-b')]),
    ipvsadm: ['-a -t 203.0.113.5:80 -r 10.244.2.2:8080 -m -w 1'],
    ipset: ['add KUBE-EXTERNAL-IP 203.0.113.5,tcp:80'],
    absent: ['add KUBE-EXTERNAL-IP-LOCAL 203.0.113.5,tcp:80'],
  },
  {
    name: 'LoadBalancer: ingress VIP, source ranges, node in range, Local policy sets and health check',
    yaml:
      NODES +
      service(
        'lb',
        'type: LoadBalancer\n  clusterIP: 10.96.0.5\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 32000\n  loadBalancerSourceRanges: [192.0.2.0/24, 198.51.100.0/24]\n  ports: [{name: http, port: 80, nodePort: 31080}]',
        'status: {loadBalancer: {ingress: [{ip: 203.0.113.9}, {hostname: lb.example.com}]}}',
      ) +
      slice('lb', HTTP, [ep('10.244.1.2', 'node-a'), ep('10.244.2.2', 'node-b')]),
    ipvsadm: [
      '-A -t 203.0.113.9:80 -s rr',
      '-a -t 203.0.113.9:80 -r 10.244.1.2:8080 -m -w 1',
      '-a -t 192.0.2.10:31080 -r 10.244.1.2:8080 -m -w 1',
    ],
    ipset: [
      'add KUBE-LOAD-BALANCER 203.0.113.9,tcp:80',
      'add KUBE-LOAD-BALANCER-LOCAL 203.0.113.9,tcp:80',
      'add KUBE-LOAD-BALANCER-FW 203.0.113.9,tcp:80',
      'add KUBE-LOAD-BALANCER-SOURCE-CIDR 203.0.113.9,tcp:80,192.0.2.0/24',
      'add KUBE-LOAD-BALANCER-SOURCE-CIDR 203.0.113.9,tcp:80,198.51.100.0/24',
      'add KUBE-LOAD-BALANCER-SOURCE-IP 203.0.113.9,tcp:80,203.0.113.9',
      'add KUBE-NODE-PORT-TCP 31080',
      'add KUBE-NODE-PORT-LOCAL-TCP 31080',
      'add KUBE-HEALTH-CHECK-NODE-PORT 32000',
      'add KUBE-IPVS-IPS 203.0.113.9',
    ],
    absent: ['-a -t 203.0.113.9:80 -r 10.244.2.2:8080 -m -w 1', '-a -t 192.0.2.10:31080 -r 10.244.2.2:8080 -m -w 1'],
  },
  {
    name: 'LoadBalancer without source ranges has no firewall entries',
    yaml:
      NODES +
      service(
        'lb',
        'type: LoadBalancer\n  clusterIP: 10.96.0.5\n  ports: [{name: http, port: 80, nodePort: 31080}]',
        'status: {loadBalancer: {ingress: [{ip: 203.0.113.9}]}}',
      ),
    ipset: ['add KUBE-LOAD-BALANCER 203.0.113.9,tcp:80'],
    absent: [
      'add KUBE-LOAD-BALANCER-FW 203.0.113.9,tcp:80',
      'add KUBE-LOAD-BALANCER-LOCAL 203.0.113.9,tcp:80',
      'add KUBE-NODE-PORT-LOCAL-TCP 31080',
    ],
  },
  {
    name: 'sessionAffinity ClientIP becomes persistence with the configured timeout',
    yaml:
      NODES +
      service(
        'sticky',
        'clusterIP: 10.96.0.6\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}\n  ports: [{name: http, port: 80}]',
      ) +
      service(
        'sticky2',
        'clusterIP: 10.96.0.7\n  sessionAffinity: ClientIP\n  ports: [{name: dns, port: 53, protocol: UDP}]',
      ),
    ipvsadm: ['-A -t 10.96.0.6:80 -s rr -p 600', '-A -u 10.96.0.7:53 -s rr -p 10800'],
    absent: ['-A -t 10.96.0.6:80 -s rr'],
  },
  {
    name: 'internalTrafficPolicy Local: ClusterIP uses local endpoints, NodePort still cluster-wide',
    yaml:
      NODES +
      service(
        'itp',
        'type: NodePort\n  clusterIP: 10.96.0.8\n  internalTrafficPolicy: Local\n  ports: [{name: http, port: 80, nodePort: 31081}]',
      ) +
      slice('itp', HTTP, [ep('10.244.1.2', 'node-a'), ep('10.244.2.2', 'node-b')]),
    node: 'node-b',
    ipvsadm: ['-a -t 10.96.0.8:80 -r 10.244.2.2:8080 -m -w 1', '-a -t 192.0.2.11:31081 -r 10.244.1.2:8080 -m -w 1'],
    absent: ['-a -t 10.96.0.8:80 -r 10.244.1.2:8080 -m -w 1'],
  },
  {
    name: 'dual-stack: both families, KUBE-6- sets, bracketed IPv6 in ipvsadm',
    yaml:
      NODES +
      service(
        'ds',
        'type: NodePort\n  clusterIPs: [10.96.0.9, "fd00:96::9"]\n  ports: [{name: http, port: 80, nodePort: 31090}]',
      ) +
      slice('ds', HTTP, [ep('10.244.1.2', 'node-a')]) +
      slice('ds', HTTP, [ep('"fd00:244:1::2"', 'node-a')], { name: 'ds-v6', addressType: 'IPv6' }),
    ipvsadm: [
      '-A -t [fd00:96::9]:80 -s rr',
      '-a -t [fd00:96::9]:80 -r [fd00:244:1::2]:8080 -m -w 1',
      '-a -t 10.96.0.9:80 -r 10.244.1.2:8080 -m -w 1',
      '-A -t [2001:db8::10]:31090 -s rr',
      '-a -t [2001:db8::10]:31090 -r [fd00:244:1::2]:8080 -m -w 1',
    ],
    ipset: [
      'add KUBE-6-CLUSTER-IP fd00:96::9,tcp:80',
      'add KUBE-6-NODE-PORT-TCP 31090',
      'add KUBE-CLUSTER-IP 10.96.0.9,tcp:80',
      'add KUBE-6-IPVS-IPS fd00:96::9',
    ],
    absent: [
      '-a -t 10.96.0.9:80 -r [fd00:244:1::2]:8080 -m -w 1',
      '-a -t [2001:db8::10]:31090 -r 10.244.1.2:8080 -m -w 1',
    ],
  },
  {
    name: 'headless and ExternalName services produce nothing',
    yaml:
      NODES +
      service('headless', 'clusterIP: None\n  ports: [{name: http, port: 80}]') +
      slice('headless', HTTP, [ep('10.244.1.2', 'node-a')]) +
      service('ext', 'type: ExternalName\n  externalName: example.com'),
    exactIpvsadm: true,
    ipvsadm: [],
    absent: ['add KUBE-LOOP-BACK 10.244.1.2,tcp:8080,10.244.1.2'],
  },
  {
    name: 'topology hints: a node only gets endpoints hinted for its zone',
    yaml:
      NODES +
      service('topo', 'clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80}]', '').replace(
        'namespace: default}',
        'namespace: default, annotations: {service.kubernetes.io/topology-mode: Auto}}',
      ) +
      slice('topo', HTTP, [
        ep('10.244.1.2', 'node-a', '{ready: true}', ', zone: zone-a, hints: {forZones: [{name: zone-a}]}'),
        ep('10.244.2.2', 'node-b', '{ready: true}', ', zone: zone-b, hints: {forZones: [{name: zone-b}]}'),
      ]),
    ipvsadm: ['-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1'],
    absent: ['-a -t 10.96.0.10:80 -r 10.244.2.2:8080 -m -w 1'],
  },
  {
    name: 'topology hints are ignored when one ready endpoint has none',
    yaml:
      NODES +
      service('topo', 'clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80}]').replace(
        'namespace: default}',
        'namespace: default, annotations: {service.kubernetes.io/topology-mode: Auto}}',
      ) +
      slice('topo', HTTP, [
        ep('10.244.1.2', 'node-a', '{ready: true}', ', zone: zone-a, hints: {forZones: [{name: zone-a}]}'),
        ep('10.244.2.2', 'node-b', '{ready: true}', ', zone: zone-b'),
      ]),
    ipvsadm: ['-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1', '-a -t 10.96.0.10:80 -r 10.244.2.2:8080 -m -w 1'],
  },
  {
    name: 'topology hints decide without the opt-in annotation (kube-proxy topologyModeFromHints)',
    yaml:
      NODES +
      service('topo', 'clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80}]') +
      slice('topo', HTTP, [
        ep('10.244.1.2', 'node-a', '{ready: true}', ', zone: zone-a, hints: {forZones: [{name: zone-a}]}'),
        ep('10.244.2.2', 'node-b', '{ready: true}', ', zone: zone-b, hints: {forZones: [{name: zone-b}]}'),
      ]),
    ipvsadm: ['-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1'],
    absent: ['-a -t 10.96.0.10:80 -r 10.244.2.2:8080 -m -w 1'],
  },
  {
    name: 'scheduler and flags come from the proxy config',
    yaml: NODES + service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]'),
    config: { scheduler: 'mh', schedulerFlags: ['mh-port', 'mh-fallback'] },
    ipvsadm: ['-A -t 10.96.0.1:80 -s mh -b mh-fallback,mh-port'],
    absent: ['-A -t 10.96.0.1:80 -s rr'],
  },
  {
    name: 'ports are matched to slice ports by name and protocol',
    yaml:
      NODES +
      service('two', 'clusterIP: 10.96.0.11\n  ports: [{name: web, port: 80}, {name: admin, port: 81}]') +
      slice(
        'two',
        '[{name: web, port: 8080, protocol: TCP}, {name: admin, port: 9090, protocol: TCP}, {name: web, port: 5353, protocol: UDP}]',
        [ep('10.244.1.2', 'node-a')],
      ),
    ipvsadm: ['-a -t 10.96.0.11:80 -r 10.244.1.2:8080 -m -w 1', '-a -t 10.96.0.11:81 -r 10.244.1.2:9090 -m -w 1'],
    absent: ['-a -t 10.96.0.11:80 -r 10.244.1.2:5353 -m -w 1', '-a -t 10.96.0.11:80 -r 10.244.1.2:9090 -m -w 1'],
  },
  {
    name: 'endpoints of several slices are merged; a duplicate address is kept once',
    yaml:
      NODES +
      service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]') +
      slice('web', HTTP, [ep('10.244.1.2', 'node-a')], { name: 'web-1' }) +
      slice('web', HTTP, [ep('10.244.2.2', 'node-b'), ep('10.244.1.2', 'node-a')], { name: 'web-2' }),
    exactIpvsadm: true,
    ipvsadm: [
      '-A -t 10.96.0.1:80 -s rr',
      '-a -t 10.96.0.1:80 -r 10.244.1.2:8080 -m -w 1',
      '-a -t 10.96.0.1:80 -r 10.244.2.2:8080 -m -w 1',
    ],
  },
];

describe('renderNodeState (kube-proxy ipvs semantics)', () => {
  it.each(cases)('$name', (c) => {
    const r = planFor(c.yaml, c.node ?? 'node-a', c.config ?? {});
    expect(r.rejected).toEqual([]);
    if (c.exactIpvsadm) expect(r.ipvsadm).toEqual([...(c.ipvsadm ?? [])].sort());
    for (const line of c.ipvsadm ?? []) expect(r.ipvsadm).toContain(line);
    for (const line of c.ipset ?? []) expect(r.ipsetAdds).toContain(line);
    for (const line of c.absent ?? []) {
      expect(r.ipvsadm).not.toContain(line);
      expect(r.ipsetAdds).not.toContain(line);
    }
  });

  it('binds cluster, external and LB addresses to kube-ipvs0 but never node addresses', () => {
    const r = planFor(
      NODES +
        service(
          'lb',
          'type: LoadBalancer\n  clusterIP: 10.96.0.5\n  externalIPs: [203.0.113.7]\n  ports: [{name: http, port: 80, nodePort: 31080}]',
          'status: {loadBalancer: {ingress: [{ip: 203.0.113.9}]}}',
        ),
    );
    expect(r.state.boundAddresses).toEqual(['10.96.0.5', '203.0.113.7', '203.0.113.9']);
  });

  it('keeps every kube-proxy set, empty ones included, with its type', () => {
    const r = planFor(NODES);
    const byName = Object.fromEntries(r.state.ipsets.map((s) => [s.name, s.type]));
    expect(byName['KUBE-LOOP-BACK']).toBe('hash:ip,port,ip');
    expect(byName['KUBE-LOAD-BALANCER-SOURCE-CIDR']).toBe('hash:ip,port,net');
    expect(byName['KUBE-NODE-PORT-TCP']).toBe('bitmap:port');
    expect(byName['KUBE-IPVS-IPS']).toBe('hash:ip');
    expect(r.state.ipsets).toHaveLength(17);
    expect(r.state.ipsets.every((s) => s.entries.length === 0)).toBe(true);
  });

  it('renders the same state for a node the cluster does not know, minus NodePorts', () => {
    const r = planFor(
      NODES +
        service('np', 'type: NodePort\n  clusterIP: 10.96.0.2\n  ports: [{name: http, port: 80, nodePort: 31000}]'),
      'node-z',
    );
    expect(r.ipvsadm).toEqual(['-A -t 10.96.0.2:80 -s rr']);
  });

  // contentHash takes JSON.stringify natively only for values whose keys all come in code-unit
  // order; a node hashes every virtual server it renders, on every event
  it("builds every virtual server with its keys (and its real servers' keys) in code-unit order", () => {
    const unsorted = (v: unknown, path: string): string[] => {
      if (typeof v !== 'object' || v === null) return [];
      if (Array.isArray(v)) return v.flatMap((x, i) => unsorted(x, `${path}[${i}]`));
      const keys = Object.keys(v);
      const here = keys.join() === [...keys].sort().join() ? [] : [`${path}: ${keys.join()}`];
      return [...here, ...keys.flatMap((k) => unsorted((v as Record<string, unknown>)[k], `${path}.${k}`))];
    };
    let seen = 0;
    for (const c of cases) {
      const r = planFor(c.yaml, c.node ?? 'node-a', c.config ?? {});
      seen += r.state.virtualServers.length;
      expect(unsorted(r.state.virtualServers, c.name)).toEqual([]);
    }
    expect(seen).toBeGreaterThan(20);
  });
});

// k3s servicelb and MetalLB publish node addresses as LoadBalancer ingress IPs. Bound on their
// owner, KUBE-IPVS-FILTER drops every other port of it there (probe6 P15, kube-proxy #117613);
// bound on another node, that node's own traffic to the owner stays home and is dropped the same
// way (kubelet, ssh, the overlay). Served on every node, bound on none; routed to the owner.
describe('LoadBalancer ingress IPs that are node addresses', () => {
  const world =
    NODES +
    service(
      'svclb',
      'type: LoadBalancer\n  clusterIP: 10.96.0.8\n  ports: [{name: http, port: 80, nodePort: 31081}]',
      'status: {loadBalancer: {ingress: [{ip: 192.0.2.10}, {ip: 192.0.2.11}, {ip: 203.0.113.9}]}}',
    );

  it('ipvs: served on every node, neither bound nor in KUBE-IPVS-IPS on any', () => {
    for (const node of ['node-a', 'node-b', 'node-z']) {
      const r = planFor(world, node);
      for (const ip of ['192.0.2.10', '192.0.2.11']) {
        expect(r.ipvsadm, `${node} ${ip}`).toContain(`-A -t ${ip}:80 -s rr`);
        expect(r.ipsetAdds, `${node} ${ip}`).toContain(`add KUBE-LOAD-BALANCER ${ip},tcp:80`);
      }
      // an ingress IP no node has is bound as before
      expect(r.state.boundAddresses, node).toEqual(['10.96.0.8', '203.0.113.9']);
      expect(
        r.ipsetAdds.filter((l) => l.startsWith('add KUBE-IPVS-IPS ')),
        node,
      ).toEqual(['add KUBE-IPVS-IPS 10.96.0.8', 'add KUBE-IPVS-IPS 203.0.113.9']);
      expect(r.conflicts, node).toEqual([]);
    }
  });

  it('nftables: served on every node (only the service port is captured)', () => {
    for (const node of ['node-a', 'node-b']) {
      const r = planFor(world, node, { mode: 'nftables' });
      const lb = r.state.virtualServers.filter((vs) => vs.role === 'load-balancer').map((vs) => vs.address);
      expect(lb.sort(), node).toEqual(['192.0.2.10', '192.0.2.11', '203.0.113.9']);
    }
  });

  it('is bound again once no node has that address (a pure function of cluster data)', () => {
    const withoutNodeB = world.replace('{name: node-b,', '{name: node-gone,').replace('192.0.2.11}]}', '192.0.2.99}]}');
    expect(planFor(withoutNodeB, 'node-a').state.boundAddresses).toEqual(['10.96.0.8', '192.0.2.11', '203.0.113.9']);
  });
});

// probe6 P3: ipvs mode's glue had no IPv6 half, so an IPv6 LB address under IPv6 source ranges was
// not served there (fail closed). With the ip6tables glue enforcing KUBE-6-LOAD-BALANCER-SOURCE-CID
// it is served in both modes, its ranges in the IPv6 sets, and nothing is rejected.
describe('IPv6 load balancer source ranges', () => {
  const yaml =
    NODES +
    service(
      'v6lb',
      'type: LoadBalancer\n  ipFamilies: [IPv4, IPv6]\n  clusterIPs: [10.96.0.9, "fd00::9"]\n  clusterIP: 10.96.0.9\n  loadBalancerSourceRanges: [198.51.100.0/24, "2001:db8:aaaa::/48"]\n  ports: [{name: http, port: 80, nodePort: 31090}]',
      'status: {loadBalancer: {ingress: [{ip: 203.0.113.19}, {ip: "2001:db8:1::19"}]}}',
    );
  it("ipvs: both LB addresses are served, each with its family's ranges in the sets the glue matches; no rejection", () => {
    const r = planFor(yaml);
    expect(r.ipvsadm).toContain('-A -t [2001:db8:1::19]:80 -s rr');
    expect(r.ipvsadm).toContain('-A -t 203.0.113.19:80 -s rr');
    expect(r.ipsetAdds).toContain('add KUBE-LOAD-BALANCER-SOURCE-CIDR 203.0.113.19,tcp:80,198.51.100.0/24');
    expect(r.ipsetAdds).toContain('add KUBE-6-LOAD-BALANCER-FW 2001:db8:1::19,tcp:80');
    expect(r.ipsetAdds).toContain('add KUBE-6-LOAD-BALANCER-SOURCE-CID 2001:db8:1::19,tcp:80,2001:db8:aaaa::/48');
    expect(r.conflicts.filter((c) => c.includes('v6lb'))).toEqual([]);
  });
  it('nftables: served, no rejection', () => {
    const r = planFor(yaml, 'node-a', { mode: 'nftables' });
    expect(r.state.virtualServers.some((vs) => vs.address === '2001:db8:1::19')).toBe(true);
    expect(r.conflicts.filter((c) => c.includes('v6lb'))).toEqual([]);
  });
});

// review3 K1: a tenant who lists another service's VIP (cluster DNS) or a node's own address in
// spec.externalIPs must not take that VIP:port over, and the losing claim must be reported.
describe('VIP:port claims (review3 K1)', () => {
  const DNS_PORTS = '[{name: dns, port: 53, protocol: UDP}]';
  const dns = (ns: string, name: string, spec: string, ip: string) =>
    service(name, spec).replace('namespace: default', `namespace: ${ns}`) +
    slice(name, DNS_PORTS, [ep(ip, 'node-a')]).replace('namespace: default', `namespace: ${ns}`);
  const world =
    NODES +
    dns('kube-system', 'kube-dns', `clusterIP: 10.96.0.10\n  ports: ${DNS_PORTS}`, '10.244.1.3') +
    // namespace "a-team" sorts before "kube-system": name order alone would hand it the VIP
    dns(
      'a-team',
      'x',
      `clusterIP: 10.96.77.77\n  externalIPs: [10.96.0.10, 192.0.2.10]\n  ports: ${DNS_PORTS}`,
      '10.244.9.9',
    );

  it("keeps a service's own ClusterIP over another's externalIP claim, and reports the loser", () => {
    const r = planFor(world);
    expect(r.ipvsadm).toContain('-a -u 10.96.0.10:53 -r 10.244.1.3:53 -m -w 1');
    expect(r.ipvsadm).not.toContain('-a -u 10.96.0.10:53 -r 10.244.9.9:53 -m -w 1');
    expect(r.conflicts).toContain(
      'Service a-team/x: external-ip claim on UDP/10.96.0.10:53 (port dns) lost to kube-system/kube-dns:dns (cluster-ip)',
    );
  });

  it('reports the Service that loses a NodePort another Service holds (probe10 H6)', () => {
    const np = (name: string, ip: string, end: string) =>
      service(name, `type: NodePort\n  clusterIP: ${ip}\n  ports: [{name: http, port: 80, nodePort: 31000}]`) +
      slice(name, '[{name: http, port: 8080}]', [ep(end, 'node-a')]);
    const r = planFor(NODES + np('web', '10.96.0.20', '10.244.1.2') + np('dup', '10.96.0.21', '10.244.1.7'));
    // "default/dup:http" sorts first: its endpoint serves the NodePort, web's does not
    expect(r.ipvsadm.filter((l) => l.startsWith('-a -t 192.0.2.10:31000 '))).toEqual([
      '-a -t 192.0.2.10:31000 -r 10.244.1.7:8080 -m -w 1',
    ]);
    expect(r.conflicts).toEqual([
      'Service default/web: node-port claim on TCP/:31000 (port http) lost to default/dup:http',
    ]);
  });

  // probe6 P7: served on the other nodes, node-b's address would be bound to their kube-ipvs0
  // (ipvs) or captured (nftables): their connections to node-b on any other port (kubelet, ssh,
  // the overlay) would end in KUBE-IPVS-FILTER's drop. So no node serves it.
  it("serves an externalIP that is a node's address on no node, and says whose it is", () => {
    for (const mode of ['ipvs', 'nftables']) {
      for (const node of ['node-a', 'node-b']) {
        const r = planFor(world, node, { mode });
        expect(
          r.state.virtualServers.filter((vs) => vs.address === '192.0.2.10'),
          `${mode} ${node}`,
        ).toEqual([]);
        expect(r.state.boundAddresses, `${mode} ${node}`).not.toContain('192.0.2.10');
        expect(
          r.ipsetAdds.filter((l) => l.includes('192.0.2.10')),
          `${mode} ${node}`,
        ).toEqual([]);
        expect(r.conflicts).toContain(
          "Service a-team/x: externalIP 192.0.2.10 is the address of node node-a: served on no node (a Service may not take a node's address)",
        );
      }
    }
  });

  it('serves it again once no node has that address (a pure function of cluster data)', () => {
    const withoutNodeA = world.replace('{name: node-a,', '{name: node-gone,').replace('192.0.2.10}', '192.0.2.99}');
    const b = planFor(withoutNodeA, 'node-b');
    expect(b.ipvsadm).toContain('-A -u 192.0.2.10:53 -s rr');
    expect(b.state.boundAddresses).toContain('192.0.2.10');
    expect(b.conflicts.filter((c) => c.includes('192.0.2.10'))).toEqual([]);
  });
});

// A single-address source range went into the hash:ip,port,net set as "x/32" ("x/128"); the kernel
// reads it back without the prefix, so in ipvs mode every cycle failed verification ("ipset …
// has 1 entries, want 1"). Every rendered entry must be the text the kernel reads back.
describe('ipset entries in the form the kernel reads back', () => {
  const yaml =
    NODES +
    service(
      'host-ranges',
      'type: LoadBalancer\n  ipFamilies: [IPv4, IPv6]\n  clusterIPs: [10.96.0.11, "fd00::11"]\n  clusterIP: 10.96.0.11\n  loadBalancerSourceRanges: [198.51.100.7/32, 192.0.2.0/24, "2001:db8:aaaa::7/128", "2001:db8:bbbb::/48"]\n  ports: [{name: http, port: 80, nodePort: 31091}]',
      'status: {loadBalancer: {ingress: [{ip: 203.0.113.21}, {ip: "2001:db8:1::21"}]}}',
    );
  it('a host-length source range has no prefix; every entry survives the read-back unchanged', () => {
    const r = planFor(yaml);
    expect(r.ipsetAdds).toContain('add KUBE-LOAD-BALANCER-SOURCE-CIDR 203.0.113.21,tcp:80,198.51.100.7');
    expect(r.ipsetAdds).toContain('add KUBE-LOAD-BALANCER-SOURCE-CIDR 203.0.113.21,tcp:80,192.0.2.0/24');
    expect(r.ipsetAdds).toContain('add KUBE-6-LOAD-BALANCER-SOURCE-CID 2001:db8:1::21,tcp:80,2001:db8:aaaa::7');
    expect(r.ipsetAdds).toContain('add KUBE-6-LOAD-BALANCER-SOURCE-CID 2001:db8:1::21,tcp:80,2001:db8:bbbb::/48');
    const sets = r.state.ipsets.filter((s) => s.entries.length > 0);
    expect(sets.length).toBeGreaterThan(5);
    for (const s of sets)
      for (const e of s.entries)
        expect(`${s.name} ${entryToText(s.type, entryFromText(s.type, e))}`).toBe(`${s.name} ${e}`);
  });
});
