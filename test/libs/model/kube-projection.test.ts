import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  MANIFEST_FILE_ANNOTATION,
  projectKubeObject,
  readKubeObject,
  type ReadResult,
} from '../../../libs/model/index.ts';
import { ClusterState } from '../../../libs/planner/index.ts';
import { prng } from '../eventlog/support/random-history.ts';

// Full API objects as an apiserver serves them (every field of the three kinds set, including the
// ones the readers ignore), so a reader that starts using a field the projection drops reads a
// value here that its projection lacks.
const managedFields = [
  {
    manager: 'kubectl-client-side-apply',
    operation: 'Update',
    apiVersion: 'v1',
    time: '2026-12-01T10:00:00Z',
    fieldsType: 'FieldsV1',
    fieldsV1: { 'f:metadata': { 'f:annotations': { '.': {}, 'f:note': {} } }, 'f:spec': { 'f:ports': {} } },
  },
];

const SERVICE = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: {
    name: 'web',
    namespace: 'prod',
    uid: '6f1c2d3e-0000-4000-8000-000000000001',
    resourceVersion: '4711',
    generation: 3,
    creationTimestamp: '2026-12-01T10:00:00Z',
    labels: { app: 'web', 'kubernetes.io/service-name': 'web', 'topology.kubernetes.io/zone': 'a' },
    annotations: {
      'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"v1","kind":"Service"}',
      'service.kubernetes.io/topology-mode': 'Auto',
      'service.kubernetes.io/topology-aware-hints': 'auto',
      note: 'x'.repeat(2000),
    },
    finalizers: ['service.kubernetes.io/load-balancer-cleanup'],
    ownerReferences: [{ apiVersion: 'v1', kind: 'Thing', name: 'o', uid: 'u' }],
    managedFields,
  },
  spec: {
    type: 'LoadBalancer',
    clusterIP: '10.96.0.10',
    clusterIPs: ['10.96.0.10', 'fd00::a'],
    ipFamilies: ['IPv4', 'IPv6'],
    ipFamilyPolicy: 'PreferDualStack',
    ports: [
      { name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080, appProtocol: 'http' },
      { name: 'dns', protocol: 'UDP', port: 53, targetPort: 'dns', nodePort: 30053 },
    ],
    selector: { app: 'web' },
    externalIPs: ['192.0.2.7'],
    loadBalancerIP: '198.51.100.1',
    loadBalancerClass: 'example.com/lb',
    loadBalancerSourceRanges: ['10.0.0.0/8', '2001:db8::/32'],
    allocateLoadBalancerNodePorts: true,
    sessionAffinity: 'ClientIP',
    sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
    externalTrafficPolicy: 'Local',
    internalTrafficPolicy: 'Cluster',
    healthCheckNodePort: 32000,
    publishNotReadyAddresses: true,
    trafficDistribution: 'PreferClose',
    externalName: 'web.example.com',
  },
  status: {
    loadBalancer: {
      ingress: [
        { ip: '198.51.100.1', ipMode: 'VIP', ports: [{ port: 80, protocol: 'TCP' }] },
        { hostname: 'lb.example' },
      ],
    },
    conditions: [
      { type: 'Ready', status: 'True', lastTransitionTime: '2026-12-01T10:00:00Z', reason: 'r', message: 'm' },
    ],
  },
};

const SLICE = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: {
    name: 'web-abcde',
    namespace: 'prod',
    uid: '6f1c2d3e-0000-4000-8000-000000000002',
    resourceVersion: '4712',
    generateName: 'web-',
    labels: {
      'kubernetes.io/service-name': 'web',
      'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
    },
    annotations: { 'endpoints.kubernetes.io/last-change-trigger-time': '2026-12-01T10:00:00Z' },
    ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'u', controller: true }],
    managedFields,
  },
  addressType: 'IPv4',
  ports: [
    { name: 'http', protocol: 'TCP', port: 8080, appProtocol: 'http' },
    { name: 'dns', protocol: 'UDP', port: 53 },
  ],
  endpoints: [
    {
      addresses: ['10.244.1.5'],
      conditions: { ready: true, serving: true, terminating: false },
      hostname: 'web-0',
      nodeName: 'node-1',
      zone: 'a',
      hints: { forZones: [{ name: 'a' }], forNodes: [{ name: 'node-1' }] },
      targetRef: { kind: 'Pod', namespace: 'prod', name: 'web-0', uid: 'p0' },
      deprecatedTopology: { 'kubernetes.io/hostname': 'node-1' },
    },
    {
      addresses: ['10.244.2.6'],
      conditions: { ready: false, serving: true, terminating: true },
      nodeName: 'node-2',
      zone: 'b',
      hints: { forZones: [{ name: 'b' }] },
      targetRef: { kind: 'Pod', namespace: 'prod', name: 'web-1', uid: 'p1' },
    },
  ],
};

const NODE = {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: {
    name: 'node-1',
    uid: '6f1c2d3e-0000-4000-8000-000000000003',
    resourceVersion: '4713',
    deletionTimestamp: '2026-12-01T11:00:00Z',
    labels: {
      'kubernetes.io/hostname': 'node-1',
      'topology.kubernetes.io/zone': 'a',
      'node.kubernetes.io/instance-type': 'm5.large',
    },
    annotations: { 'node.alpha.kubernetes.io/ttl': '0', [MANIFEST_FILE_ANNOTATION]: 'nodes/node-1.yaml' },
    managedFields,
  },
  spec: {
    podCIDR: '10.244.1.0/24',
    podCIDRs: ['10.244.1.0/24'],
    // the readers look for the cluster autoscaler's taint (a Node on its way out)
    taints: [
      { key: 'k', effect: 'NoSchedule' },
      { key: 'ToBeDeletedByClusterAutoscaler', value: '1796200000', effect: 'NoSchedule' },
    ],
  },
  status: {
    addresses: [
      { type: 'InternalIP', address: '192.168.0.1' },
      { type: 'ExternalIP', address: '203.0.113.1' },
      { type: 'Hostname', address: 'node-1' },
    ],
    capacity: { cpu: '4', memory: '16Gi', pods: '110' },
    conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2026-12-01T10:00:00Z' }],
    nodeInfo: { kubeletVersion: 'v1.32.0', osImage: 'Debian' },
    images: [{ names: ['registry.example/app@sha256:abc', 'registry.example/app:1'], sizeBytes: 123456 }],
  },
};

const FULL = [SERVICE, SLICE, NODE] as const;

/** The model object without labels and annotations (the projection keeps only the ones read), or the rejection. */
function comparable(r: ReadResult): unknown {
  if (!r.ok) return r;
  const { labels: _l, annotations: _a, ...meta } = r.object.meta;
  return { ...r.object, meta };
}

/** Every path in a JSON value (containers included), as key lists. */
function paths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (at.length > 0) out.push(at);
  if (Array.isArray(v)) for (const [i, x] of v.entries()) paths(x, [...at, i], out);
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

const VALUES: unknown[] = [
  ...['', 'Auto', 'auto', 'None', 'ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName', 'Local', 'Cluster'],
  ...['ClientIP', 'PreferClose', 'TCP', 'UDP', 'SCTP', 'IPv4', 'IPv6', 'FQDN', 'InternalIP', 'Hostname'],
  ...['10.96.0.9', 'fd00::9', '10.0.0.0/16', 'not-an-ip', 'web', 'Bad_Name', 'v1', 'x'.repeat(40)],
  ...[
    0,
    1,
    53,
    80,
    65535,
    65536,
    -1,
    3.5,
    86400,
    86401,
    true,
    false,
    null,
    [],
    {},
    ['10.1.2.3'],
    [{}],
    [{ ip: '10.9.9.9' }],
  ],
  { name: 'a' },
  { clientIP: { timeoutSeconds: 5 } },
];

function mutate(o: unknown, rnd: () => number): unknown {
  const copy = structuredClone(o) as Record<string, unknown>;
  const all = paths(copy);
  for (let n = 1 + Math.floor(rnd() * 3); n > 0; n--) {
    const path = all[Math.floor(rnd() * all.length)]!;
    let parent: unknown = copy;
    for (const k of path.slice(0, -1)) parent = (parent as Record<string | number, unknown> | undefined)?.[k];
    const last = path.at(-1)!;
    // an earlier mutation replaced an ancestor: JSON has no named entries on a list
    if (parent === null || typeof parent !== 'object' || Array.isArray(parent) !== (typeof last === 'number')) continue;
    const p = parent as Record<string | number, unknown>;
    const r = rnd();
    if (r < 0.15 && !Array.isArray(p)) delete p[last];
    else if (r < 0.25 && !Array.isArray(p)) p[`k${Math.floor(rnd() * 3)}`] = VALUES[Math.floor(rnd() * VALUES.length)];
    else p[last] = structuredClone(VALUES[Math.floor(rnd() * VALUES.length)]);
  }
  return copy;
}

describe('projectKubeObject keeps what the readers read', () => {
  it('the readers read the same from a full object and from its projection, over 2 000 random mutations', () => {
    const rnd = prng(15);
    let rejected = 0;
    for (const full of FULL)
      expect(comparable(readKubeObject(projectKubeObject(full)))).toEqual(comparable(readKubeObject(full)));
    for (let i = 0; i < 2000; i++) {
      const o = mutate(FULL[i % FULL.length], rnd);
      const whole = readKubeObject(o);
      if (!whole.ok) rejected++;
      const p = projectKubeObject(o);
      const [a, b] = [comparable(readKubeObject(p)), comparable(whole)];
      if (!isDeepStrictEqual(a, b)) expect(a, JSON.stringify(o)).toEqual(b);
      const again = projectKubeObject(JSON.parse(JSON.stringify(p))); // a logged projection projects to itself
      if (!isDeepStrictEqual(again, p)) expect(again).toEqual(p);
    }
    // both outcomes are exercised
    expect(rejected).toBeGreaterThan(200);
    expect(rejected).toBeLessThan(1800);
  });

  it('the same cluster snapshot from full objects and from their projections', () => {
    const build = (objects: readonly unknown[]) => {
      const s = new ClusterState();
      for (const o of objects) {
        const r = readKubeObject(o);
        if (r.ok) s.apply({ op: 'upsert', object: r.object });
      }
      s.commit();
      return s.hash();
    };
    const rnd = prng(16);
    const clusters = [FULL, ...Array.from({ length: 30 }, () => FULL.map((o) => (rnd() < 0.5 ? mutate(o, rnd) : o)))];
    for (const objects of clusters) expect(build(objects.map(projectKubeObject))).toBe(build(objects));
  });

  it('drops what no reader reads: managedFields, other annotations and labels, unread spec and status', () => {
    expect(projectKubeObject(SERVICE)).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'web',
        namespace: 'prod',
        uid: SERVICE.metadata.uid,
        resourceVersion: '4711',
        labels: { 'kubernetes.io/service-name': 'web', 'topology.kubernetes.io/zone': 'a' },
        annotations: {
          'service.kubernetes.io/topology-mode': 'Auto',
          'service.kubernetes.io/topology-aware-hints': 'auto',
        },
      },
      spec: {
        type: 'LoadBalancer',
        clusterIP: '10.96.0.10',
        clusterIPs: ['10.96.0.10', 'fd00::a'],
        ports: [
          { name: 'http', protocol: 'TCP', port: 80, nodePort: 30080 },
          { name: 'dns', protocol: 'UDP', port: 53, nodePort: 30053 },
        ],
        externalIPs: ['192.0.2.7'],
        loadBalancerSourceRanges: ['10.0.0.0/8', '2001:db8::/32'],
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } },
        externalTrafficPolicy: 'Local',
        internalTrafficPolicy: 'Cluster',
        healthCheckNodePort: 32000,
        trafficDistribution: 'PreferClose',
      },
      status: { loadBalancer: { ingress: [{ ip: '198.51.100.1', ipMode: 'VIP' }, {}] } },
    });
    expect((projectKubeObject(NODE) as typeof NODE).metadata.annotations).toEqual({
      [MANIFEST_FILE_ANNOTATION]: 'nodes/node-1.yaml',
    });
    // a Node keeps every label: planner --node-selector may name any of them (probe4 K8)
    expect((projectKubeObject(NODE) as typeof NODE).metadata.labels).toEqual(NODE.metadata.labels);
    const labelsRead = (o: unknown) => {
      const r = readKubeObject(o);
      return r.ok ? r.object.meta.labels : r;
    };
    expect(labelsRead(projectKubeObject(NODE))).toEqual(labelsRead(NODE));
    for (const o of FULL) {
      const p = projectKubeObject(o);
      expect(JSON.stringify(p).length).toBeLessThan(JSON.stringify(o).length / 2);
      expect(projectKubeObject(p)).toBe(p); // nothing to drop: no copy
    }
  });

  it('a tenant cannot make the kept part large: a read annotation is cut where the reader stops caring; a non-string value is kept as null', () => {
    const big = structuredClone(SERVICE);
    big.metadata.annotations['service.kubernetes.io/topology-mode'] = `Auto${'a'.repeat(200 * 1024)}`;
    (big.metadata.annotations as Record<string, unknown>).weird = { a: 'b'.repeat(1000) };
    const p = projectKubeObject(big) as typeof SERVICE;
    expect(p.metadata.annotations).toEqual({
      'service.kubernetes.io/topology-mode': `Auto${'a'.repeat(12)}`,
      'service.kubernetes.io/topology-aware-hints': 'auto',
      weird: null,
    });
    expect(comparable(readKubeObject(p))).toEqual(comparable(readKubeObject(big)));
    const proto = JSON.parse('{"apiVersion":"v1","kind":"Node","metadata":{"name":"n","labels":{"__proto__":1}}}');
    expect(readKubeObject(projectKubeObject(proto))).toEqual(readKubeObject(proto)); // refused the same way
  });
});
