import { describe, expect, it } from 'vitest';
import { parseManifestText, readKubeObject, type ReadingRevision } from '../../../libs/model/index.ts';

const svc = (spec: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'prod', ...meta },
  spec: { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80 }], ...spec },
});

describe('readKubeObject rejections name the object and the reason', () => {
  const bad: [string, unknown, RegExp][] = [
    [
      'bad cluster IP',
      svc({ clusterIP: '10.96.0.300' }),
      /^spec\.clusterIPs\[0\]: invalid IP address "10\.96\.0\.300"$/,
    ],
    ['port out of range', svc({ ports: [{ name: 'http', port: 70000 }] }), /spec\.ports\[0\]: port out of range 70000/],
    [
      'nodePort out of range',
      svc({ type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: -1 }] }),
      /nodePort: port out of range -1/,
    ],
    ['unknown protocol', svc({ ports: [{ name: 'http', port: 80, protocol: 'ICMP' }] }), /unknown protocol "ICMP"/],
    ['wrong apiVersion', { ...svc({}), apiVersion: 'v2' }, /apiVersion must be v1, got "v2"/],
    ['missing name', svc({}, { name: undefined }), /missing metadata\.name/],
    ['unnamed ports when several', svc({ ports: [{ port: 80 }, { port: 81 }] }), /must be named/],
    ['bad externalIP', svc({ externalIPs: ['nope'] }), /spec\.externalIPs\[0\]: invalid IP/],
    ['bad source range', svc({ loadBalancerSourceRanges: ['10.0.0.0/33'] }), /invalid CIDR "10\.0\.0\.0\/33"/],
    [
      'bad affinity timeout',
      svc({ sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }),
      /timeoutSeconds out of range/,
    ],
    ['unknown type', svc({ type: 'Magic' }), /spec\.type: must be one of/],
    [
      'slice without service label',
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 's' },
        addressType: 'IPv4',
        endpoints: [],
      },
      /missing label kubernetes\.io\/service-name/,
    ],
    [
      'slice address of the wrong family',
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 's', labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        ports: [{ port: 80 }],
        endpoints: [{ addresses: ['fd00::1'] }],
      },
      /fd00::1 is not IPv4/,
    ],
    [
      'slice with wrong apiVersion',
      { apiVersion: 'discovery.k8s.io/v1beta1', kind: 'EndpointSlice', metadata: { name: 's' } },
      /apiVersion must be discovery\.k8s\.io\/v1/,
    ],
    [
      'node with bad address',
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'n1' },
        status: { addresses: [{ type: 'InternalIP', address: '1.2.3' }] },
      },
      /status\.addresses\[0\]: invalid IP/,
    ],
    ['unsupported kind', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } }, /unsupported kind "Pod"/],
    ['no kind', { apiVersion: 'v1', metadata: { name: 'p' } }, /^no kind \(Service, EndpointSlice or Node expected\)$/],
  ];
  it.each(bad)('%s', (_name, raw, reason) => {
    const r = readKubeObject(raw, 'f.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.rejection.reason).toMatch(reason);
    expect(r.rejection.source).toBe('f.yaml');
    expect(r.rejection.ref).toMatch(
      /^(Service prod\/web|Service prod\/<unnamed>|EndpointSlice default\/s|Node n1|Pod default\/p|object default\/p)$/,
    );
  });

  it('rejects a Service with an external or load balancer IP the node itself answers on (probe10 H5)', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ externalIPs: ['192.0.2.1', '127.0.0.1'] }, 'spec.externalIPs[1] 127.0.0.1 is loopback'],
      [{ externalIPs: ['0.0.0.0'] }, 'spec.externalIPs[0] 0.0.0.0 is unspecified'],
      [{ externalIPs: ['255.255.255.255'] }, 'spec.externalIPs[0] 255.255.255.255 is broadcast'],
      [{ externalIPs: ['169.254.169.254'] }, 'spec.externalIPs[0] 169.254.169.254 is link-local'],
      [{ externalIPs: ['239.1.1.1'] }, 'spec.externalIPs[0] 239.1.1.1 is multicast'],
      [{ externalIPs: ['::'] }, 'spec.externalIPs[0] :: is unspecified'],
      [{ externalIPs: ['::1'] }, 'spec.externalIPs[0] ::1 is loopback'],
      [{ externalIPs: ['FE80::1'] }, 'spec.externalIPs[0] fe80::1 is link-local'],
      [{ externalIPs: ['ff02::1'] }, 'spec.externalIPs[0] ff02::1 is multicast'],
      [{ externalIPs: ['::ffff:127.0.0.1'] }, 'spec.externalIPs[0] ::ffff:7f00:1 is loopback'],
    ];
    for (const [spec, reason] of cases) {
      const r = readKubeObject(svc(spec));
      expect(r.ok ? 'accepted' : `${r.rejection.ref}: ${r.rejection.reason}`).toBe(`Service prod/web: ${reason}`);
    }
    const lb = { ...svc({ type: 'LoadBalancer' }), status: { loadBalancer: { ingress: [{ ip: '127.0.0.2' }] } } };
    const r = readKubeObject(lb);
    expect(r.ok ? 'accepted' : r.rejection.reason).toBe('status.loadBalancer.ingress[0].ip 127.0.0.2 is loopback');
    // ordinary unicast addresses pass; logs made before reading revision 3 replay as they were read
    expect(readKubeObject(svc({ externalIPs: ['192.0.2.1', '2001:db8::1', '100.64.0.1'] })).ok).toBe(true);
    expect(readKubeObject(svc({ externalIPs: ['127.0.0.1'] }), 'input', 2).ok).toBe(true);
  });

  it('rejects a Service with two ports of the same port or nodePort and protocol (probe10 H6)', () => {
    const dup = svc({
      ports: [
        { name: 'a', port: 80 },
        { name: 'b', port: 80, protocol: 'TCP' },
      ],
    });
    const r = readKubeObject(dup);
    expect(r.ok ? 'accepted' : `${r.rejection.ref}: ${r.rejection.reason}`).toBe(
      'Service prod/web: spec.ports[1] duplicates port 80/TCP of spec.ports[0]',
    );
    const np = svc({
      type: 'NodePort',
      ports: [
        { name: 'a', port: 80, nodePort: 31000 },
        { name: 'b', port: 81, nodePort: 31000 },
      ],
    });
    const n = readKubeObject(np);
    expect(n.ok ? 'accepted' : n.rejection.reason).toBe('spec.ports[1] duplicates nodePort 31000/TCP of spec.ports[0]');
    const udp = svc({
      ports: [
        { name: 'a', port: 53 },
        { name: 'b', port: 53, protocol: 'UDP' },
      ],
    });
    expect(readKubeObject(udp).ok).toBe(true); // another protocol: no duplicate
    expect(readKubeObject(dup, 'input', 2).ok).toBe(true); // replay of logs read before revision 3
  });

  it('refuses an EndpointSlice over the API server limit of 1000 endpoints (probe10 H9), from reading revision 4', () => {
    const slice = (n: number) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'big', namespace: 'prod', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 80 }],
      endpoints: Array.from({ length: n }, (_, i) => ({ addresses: [`10.1.${i >> 8}.${i & 255}`] })),
    });
    expect(readKubeObject(slice(1000)).ok).toBe(true);
    const r = readKubeObject(slice(1001), 'big.yaml');
    expect(r.ok ? 'accepted' : `${r.rejection.ref}: ${r.rejection.reason}`).toBe(
      "EndpointSlice prod/big: 1001 endpoints, over 1000 (the API server's limit)",
    );
    expect(readKubeObject(slice(1001), 'input', 3).ok).toBe(true); // replay of logs read before revision 4
  });

  it('accepts a valid service and normalises it', () => {
    const r = readKubeObject(
      svc({ clusterIPs: ['10.96.0.1', 'FD00:0:0::1'], ports: [{ name: 'http', port: 80, protocol: 'UDP' }] }),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.object.kind).toBe('Service');
    if (r.object.kind !== 'Service') return;
    expect(r.object.clusterIPs).toEqual(['10.96.0.1', 'fd00::1']);
    expect(r.object.ports[0]).toEqual({ name: 'http', protocol: 'UDP', port: 80, nodePort: 0 });
    expect(r.object.sessionAffinity).toBe('None');
  });

  it('applies the API defaults of endpoint conditions (a nil serving: kube-proxy true, reading revision 1 as ready)', () => {
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 's', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 80 }],
      endpoints: [
        { addresses: ['10.0.0.1'] },
        { addresses: ['10.0.0.2'], conditions: { ready: false } },
        { addresses: ['10.0.0.3'], conditions: { ready: false, terminating: true } },
      ],
    };
    const conditions = (revision: ReadingRevision) => {
      const r = readKubeObject(slice, 'input', revision);
      if (!r.ok || r.object.kind !== 'EndpointSlice') throw new Error('expected a slice');
      return r.object.endpoints.map((e) => [e.ready, e.serving, e.terminating]);
    };
    expect(conditions(1)).toEqual([
      [true, true, false],
      [false, false, false],
      [false, false, true],
    ]);
    expect(conditions(2)).toEqual([
      [true, true, false],
      [false, true, false],
      [false, true, true],
    ]);
  });
});

describe('parseManifestText', () => {
  it('loads the good objects of a multi-document file and rejects the bad ones one by one', () => {
    const text = `
apiVersion: v1
kind: Service
metadata: {name: good}
spec: {clusterIP: 10.96.0.1, ports: [{name: a, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: bad}
spec: {clusterIP: 10.96.0.999, ports: [{name: a, port: 80}]}
---
apiVersion: v1
kind: ServiceList
items:
  - metadata: {name: in-list}
    spec: {clusterIP: 10.96.0.2, ports: [{name: a, port: 81}]}
  - metadata: {name: bad-in-list}
    spec: {clusterIP: 10.96.0.3, ports: [{name: a, port: 0}]}
---
: : not yaml [
`;
    const r = parseManifestText(text, 'mixed.yaml');
    expect(r.objects.map((o) => o.meta.name)).toEqual(['good', 'in-list']);
    expect(r.rejected.map((x) => x.ref)).toEqual(['Service default/bad', 'Service default/bad-in-list', 'document 4']);
    expect(r.rejected[2]!.reason).toMatch(/^YAML: /);
  });

  it('reads JSON as well', () => {
    const r = parseManifestText(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'n1' },
        status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] },
      }),
      'n.json',
    );
    expect(r.rejected).toEqual([]);
    expect(r.objects[0]!.kind).toBe('Node');
  });
});
