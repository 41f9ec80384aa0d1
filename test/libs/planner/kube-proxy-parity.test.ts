import { describe, expect, it } from 'vitest';
import { parseManifestText } from '../../../libs/model/index.ts';
import { ClusterState } from '../../../libs/planner/index.ts';
import { NODES, planFor, service, slice } from '../../support/plan-fixture.ts';

// Where kube-proxy's Service semantics and ours once differed (probe6 findings), checked on the
// plan every node renders (ipvsadm / ipset text, as `switchboard plan` prints it).

const HTTP = '[{name: http, port: 8080, protocol: TCP}]';
const ep = (ip: string, node: string, cond = '{ready: true}', extra = '') =>
  `{addresses: [${ip}], nodeName: ${node}, conditions: ${cond}${extra}}`;

describe('LoadBalancer ingress ipMode (probe6 P4)', () => {
  const yaml = (ingress: string) =>
    NODES +
    service(
      'lb',
      'type: LoadBalancer\n  clusterIP: 10.96.0.9\n  ports: [{name: http, port: 80, nodePort: 31009}]',
      `status: {loadBalancer: {ingress: ${ingress}}}`,
    ) +
    slice('lb', HTTP, [ep('10.244.2.9', 'node-b')]);

  it('programs VIP-mode and unset-mode addresses, never Proxy-mode ones (kube-proxy IsVIPMode)', () => {
    const plan = planFor(
      yaml('[{ip: 198.51.100.1, ipMode: Proxy}, {ip: 198.51.100.2, ipMode: VIP}, {ip: 198.51.100.3}]'),
    );
    expect(plan.rejected).toEqual([]);
    expect(plan.ipvsadm).toContain('-A -t 198.51.100.2:80 -s rr');
    expect(plan.ipvsadm).toContain('-A -t 198.51.100.3:80 -s rr');
    expect(plan.ipvsadm.filter((l) => l.includes('198.51.100.1'))).toEqual([]);
    expect(plan.ipsetAdds.filter((l) => l.includes('198.51.100.1'))).toEqual([]);
    expect(plan.state.boundAddresses).toEqual(['10.96.0.9', '198.51.100.2', '198.51.100.3']);
  });

  it('renders a Service whose ingress states no ipMode exactly as before ipMode was read', () => {
    const unset = planFor(yaml('[{ip: 198.51.100.2}]')).state;
    const vip = planFor(yaml('[{ip: 198.51.100.2, ipMode: VIP}]')).state;
    expect(vip).toEqual(unset);
    expect(unset.boundAddresses).toContain('198.51.100.2');
  });
});

describe('traffic policy Local without a local endpoint, ipvs mode (probe6 P2, P8)', () => {
  const yamlWith = (endpoints: string[]) =>
    NODES +
    service(
      'loc',
      'type: LoadBalancer\n  clusterIP: 10.96.0.7\n  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local\n  externalIPs: [198.51.100.7]\n  ports: [{name: http, port: 80, nodePort: 31007}]',
      'status: {loadBalancer: {ingress: [{ip: 203.0.113.7}]}}',
    ) +
    slice('loc', HTTP, endpoints);
  const yaml = yamlWith([ep('10.244.2.7', 'node-b'), ep('10.244.2.8', 'node-b')]);

  it('programs the cluster-wide endpoints (kube-proxy #97081); the Local sets still keep them unmasqueraded', () => {
    const plan = planFor(yaml, 'node-a');
    for (const vs of ['10.96.0.7:80', '198.51.100.7:80', '203.0.113.7:80', '192.0.2.10:31007'])
      for (const rs of ['10.244.2.7:8080', '10.244.2.8:8080'])
        expect(plan.ipvsadm).toContain(`-a -t ${vs} -r ${rs} -m -w 1`);
    expect(plan.ipsetAdds).toEqual(
      expect.arrayContaining([
        'add KUBE-NODE-PORT-LOCAL-TCP 31007',
        'add KUBE-LOAD-BALANCER-LOCAL 203.0.113.7,tcp:80',
        'add KUBE-EXTERNAL-IP-LOCAL 198.51.100.7,tcp:80',
      ]),
    );
  });

  it('with a local endpoint programs only that one, and no endpoint at all programs none', () => {
    const withLocal = planFor(yamlWith([ep('10.244.2.7', 'node-b'), ep('10.244.2.8', 'node-a')]));
    expect(withLocal.ipvsadm.filter((l) => l.startsWith('-a -t 203.0.113.7:80'))).toEqual([
      '-a -t 203.0.113.7:80 -r 10.244.2.8:8080 -m -w 1',
    ]);
    const none = planFor(yamlWith([]));
    expect(none.ipvsadm.filter((l) => l.startsWith('-a '))).toEqual([]);
    expect(none.ipvsadm).toContain('-A -t 203.0.113.7:80 -s rr');
  });

  it('leaves the state of a Local service whose endpoints are all on this node as it was', () => {
    const allHere = planFor(yamlWith([ep('10.244.2.7', 'node-a'), ep('10.244.2.8', 'node-a')]));
    for (const vs of allHere.state.virtualServers) {
      expect(vs.localRealServers).toBeUndefined();
      expect(vs.clusterRealServers).toBeUndefined();
    }
  });
});

describe("Services and slices of another proxy (probe6 P14: kube-proxy's informer selector)", () => {
  const svc = (name: string, ip: string, labels = '') =>
    service(name, `clusterIP: ${ip}\n  ports: [{name: http, port: 80}]`).replace(
      `metadata: {name: ${name}, namespace: default}`,
      `metadata: {name: ${name}, namespace: default${labels ? `, labels: {${labels}}` : ''}}`,
    );
  const labelled = (yaml: string, labels: string) =>
    yaml.replace('labels: {kubernetes.io/service-name:', `labels: {${labels}, kubernetes.io/service-name:`);

  it('skips a Service labelled service-proxy-name (or headless), and slices so labelled', () => {
    const plan = planFor(
      NODES +
        svc('other', '10.96.1.50', 'service.kubernetes.io/service-proxy-name: multus-proxy') +
        slice('other', HTTP, [ep('192.168.200.5', 'node-b')]) +
        svc('hl', '10.96.1.51', 'service.kubernetes.io/headless: ""') +
        svc('mine', '10.96.1.52') +
        slice('mine', HTTP, [ep('10.244.2.52', 'node-b')], { name: 'mine-1' }) +
        labelled(
          slice('mine', HTTP, [ep('10.244.2.53', 'node-b')], { name: 'mine-2' }),
          'service.kubernetes.io/service-proxy-name: multus-proxy',
        ) +
        labelled(
          slice('mine', HTTP, [ep('10.244.2.54', 'node-b')], { name: 'mine-3' }),
          'service.kubernetes.io/headless: ""',
        ),
    );
    expect(plan.rejected).toEqual([]);
    expect(plan.ipvsadm).toEqual(['-A -t 10.96.1.52:80 -s rr', '-a -t 10.96.1.52:80 -r 10.244.2.52:8080 -m -w 1']);
  });
});

describe('topology from the slice hints (probe6 P5: kube-proxy topologyModeFromHints)', () => {
  const hinted = (ip: string, node: string, zone: string, hints: string) =>
    ep(ip, node, '{ready: true}', `, zone: ${zone}, hints: {${hints}}`);
  const plan = (spec: string, endpoints: string[], node = 'node-a') =>
    planFor(
      NODES +
        service('t', `clusterIP: 10.96.0.20\n  ports: [{name: http, port: 80}]\n  ${spec}`) +
        slice('t', HTTP, endpoints),
      node,
    ).ipvsadm.filter((l) => l.startsWith('-a '));
  const rs = (ip: string) => `-a -t 10.96.0.20:80 -r ${ip}:8080 -m -w 1`;

  it('PreferSameZone: zone hints narrow to this zone', () => {
    const eps = [
      hinted('10.244.1.2', 'node-a', 'zone-a', 'forZones: [{name: zone-a}]'),
      hinted('10.244.2.2', 'node-b', 'zone-b', 'forZones: [{name: zone-b}]'),
    ];
    expect(plan('trafficDistribution: PreferSameZone', eps)).toEqual([rs('10.244.1.2')]);
    expect(plan('trafficDistribution: PreferSameZone', eps, 'node-b')).toEqual([rs('10.244.2.2')]);
  });

  it('PreferSameNode: node hints narrow to this node, before zone hints', () => {
    const eps = [
      hinted('10.244.1.2', 'node-a', 'zone-a', 'forNodes: [{name: node-a}], forZones: [{name: zone-a}]'),
      hinted('10.244.1.3', 'node-c', 'zone-a', 'forNodes: [{name: node-c}], forZones: [{name: zone-a}]'),
      hinted('10.244.2.2', 'node-b', 'zone-b', 'forNodes: [{name: node-b}], forZones: [{name: zone-b}]'),
    ];
    expect(plan('trafficDistribution: PreferSameNode', eps)).toEqual([rs('10.244.1.2')]);
  });

  it('node hints that name no endpoint for this node fall back to zone hints, then to all', () => {
    const eps = [
      hinted('10.244.1.3', 'node-c', 'zone-a', 'forNodes: [{name: node-c}], forZones: [{name: zone-a}]'),
      hinted('10.244.2.2', 'node-b', 'zone-b', 'forNodes: [{name: node-b}], forZones: [{name: zone-b}]'),
    ];
    expect(plan('trafficDistribution: PreferSameNode', eps)).toEqual([rs('10.244.1.3')]);
    const partial = [eps[0]!, ep('10.244.2.2', 'node-b')];
    expect(plan('trafficDistribution: PreferSameNode', partial)).toEqual([rs('10.244.1.3'), rs('10.244.2.2')]);
  });

  it('keeps node hints in the data only where a slice gives them (other entries hash as before)', () => {
    const yaml =
      NODES +
      service('t', 'clusterIP: 10.96.0.20\n  ports: [{name: http, port: 80}]') +
      slice('t', HTTP, [
        hinted('10.244.1.2', 'node-a', 'zone-a', 'forNodes: [{name: node-a}]'),
        hinted('10.244.1.3', 'node-a', 'zone-a', 'forZones: [{name: zone-a}]'),
      ]);
    const data = ClusterState.fromObjects(parseManifestText(yaml, 't.yaml').objects).data;
    const [svc] = [...data.services()];
    expect(svc!.ports[0]!.endpoints.map((e) => [e.ip, e.hintNodes, 'hintNodes' in e])).toEqual([
      ['10.244.1.2', ['node-a'], true],
      ['10.244.1.3', undefined, false],
    ]);
  });
});

describe('the same ip:port in two slices (probe6 P11: kube-proxy prefers the non-terminating copy)', () => {
  it('a not-yet-ready new pod reusing a terminating pod IP wins over the old serving copy', () => {
    const yaml =
      NODES +
      service('dup', 'clusterIP: 10.96.0.30\n  ports: [{name: http, port: 80}]') +
      slice('dup', HTTP, [ep('10.244.2.30', 'node-b', '{ready: false, serving: true, terminating: true}')], {
        name: 'dup-old',
      }) +
      slice('dup', HTTP, [ep('10.244.2.30', 'node-b', '{ready: false, serving: false, terminating: false}')], {
        name: 'dup-new',
      });
    expect(planFor(yaml).ipvsadm.filter((l) => l.startsWith('-a '))).toEqual([]);
  });

  it('between two non-terminating copies the ready one still wins', () => {
    const yaml =
      NODES +
      service('dup', 'clusterIP: 10.96.0.30\n  ports: [{name: http, port: 80}]') +
      slice('dup', HTTP, [ep('10.244.2.30', 'node-b', '{ready: false}')], { name: 'dup-a' }) +
      slice('dup', HTTP, [ep('10.244.2.30', 'node-b', '{ready: true}')], { name: 'dup-b' });
    expect(planFor(yaml).ipvsadm).toContain('-a -t 10.96.0.30:80 -r 10.244.2.30:8080 -m -w 1');
  });
});

describe('an endpoint without conditions.serving (probe6 P9: kube-proxy reads a nil serving as true)', () => {
  it('a terminating endpoint with serving omitted is the fallback when none is ready (reading revision 2)', () => {
    const yaml =
      NODES +
      service('t3', 'clusterIP: 10.96.0.43\n  ports: [{name: http, port: 80}]') +
      slice('t3', HTTP, [ep('10.244.2.43', 'node-b', '{ready: false, terminating: true}')]);
    expect(planFor(yaml).ipvsadm).toContain('-a -t 10.96.0.43:80 -r 10.244.2.43:8080 -m -w 1');
  });

  it('a not-ready endpoint that is not terminating stays unused (serving counts only when terminating)', () => {
    const yaml =
      NODES +
      service('t4', 'clusterIP: 10.96.0.44\n  ports: [{name: http, port: 80}]') +
      slice('t4', HTTP, [ep('10.244.2.44', 'node-b', '{ready: false}')]);
    expect(planFor(yaml).ipvsadm.filter((l) => l.startsWith('-a '))).toEqual([]);
  });
});

describe('EndpointSlice ports without a number or a name (probe6 P10: kube-proxy skips only those ports)', () => {
  it('a port without a number is skipped; the slice and its other ports stay', () => {
    const yaml =
      NODES +
      service('np', 'clusterIP: 10.96.0.50\n  ports: [{name: a, port: 80}, {name: b, port: 81}]') +
      slice('np', '[{name: a, port: 8080}, {name: b}]', [ep('10.50.1.73', 'node-b')]);
    const plan = planFor(yaml);
    expect(plan.rejected).toEqual([]);
    expect(plan.ipvsadm).toContain('-a -t 10.96.0.50:80 -r 10.50.1.73:8080 -m -w 1');
    expect(plan.ipvsadm.filter((l) => l.startsWith('-a -t 10.96.0.50:81 '))).toEqual([]);
  });

  it('a port whose name is omitted is not matched to the unnamed Service port', () => {
    const yaml =
      NODES +
      service('un', 'clusterIP: 10.96.0.51\n  ports: [{port: 80}]') +
      slice('un', '[{port: 8080}]', [ep('10.50.1.72', 'node-b')]) +
      slice('un', '[{name: "", port: 8081}]', [ep('10.50.1.74', 'node-b')], { name: 'un-2' });
    const plan = planFor(yaml);
    expect(plan.rejected).toEqual([]);
    expect(plan.ipvsadm.filter((l) => l.startsWith('-a '))).toEqual(['-a -t 10.96.0.51:80 -r 10.50.1.74:8081 -m -w 1']);
  });
});
