import fc from 'fast-check';
import { readKubeObject, type KubeObject } from '../../libs/model/index.ts';
import type { ObjectChange } from '../../libs/planner/index.ts';

/**
 * Generators of random but valid cluster changes over a small universe of names, so sequences
 * hit the same objects repeatedly (updates, deletes, re-creates, slices moving between services).
 */
const NS = ['default', 'prod'];
const SVC = ['web', 'api', 'dns', 'db'];
const NODES = ['n1', 'n2', 'n3'];
const PROTOS = ['TCP', 'UDP', 'SCTP'];

function read(raw: unknown): KubeObject {
  const r = readKubeObject(raw);
  if (!r.ok) throw new Error(`generator made an invalid object: ${r.rejection.reason}`);
  return r.object;
}

const rawService = fc
  .record({
    ns: fc.constantFrom(...NS),
    name: fc.constantFrom(...SVC),
    type: fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'),
    ip: fc.integer({ min: 1, max: 250 }),
    headless: fc.boolean(),
    ports: fc.uniqueArray(
      fc.record({
        name: fc.constantFrom('a', 'b', 'c'),
        port: fc.integer({ min: 1, max: 3 }),
        proto: fc.constantFrom(...PROTOS),
      }),
      { minLength: 1, maxLength: 3, selector: (p) => p.name },
    ),
    ext: fc.boolean(),
    affinity: fc.boolean(),
    etpLocal: fc.boolean(),
    itpLocal: fc.boolean(),
    ranges: fc.boolean(),
    topo: fc.boolean(),
    rv: fc.integer({ min: 1, max: 1e6 }),
  })
  .map((s) =>
    read({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        namespace: s.ns,
        name: s.name,
        resourceVersion: String(s.rv),
        annotations: s.topo ? { 'service.kubernetes.io/topology-mode': 'Auto' } : {},
      },
      spec: {
        type: s.type,
        clusterIP: s.headless ? 'None' : `10.96.0.${s.ip}`,
        // one port per port/protocol: the readers refuse duplicates (reading revision 3, probe10 H6)
        ports: s.ports
          .filter((p, i) => s.ports.findIndex((q) => q.port === p.port && q.proto === p.proto) === i)
          .map((p, i) => ({
            name: p.name,
            port: 80 + p.port,
            protocol: p.proto,
            nodePort: s.type === 'ClusterIP' ? undefined : 30000 + i,
          })),
        externalIPs: s.ext ? ['203.0.113.1'] : [],
        sessionAffinity: s.affinity ? 'ClientIP' : 'None',
        externalTrafficPolicy: s.etpLocal ? 'Local' : 'Cluster',
        internalTrafficPolicy: s.itpLocal ? 'Local' : 'Cluster',
        loadBalancerSourceRanges: s.ranges ? ['192.0.2.0/24'] : [],
      },
      status: { loadBalancer: { ingress: s.type === 'LoadBalancer' ? [{ ip: '198.51.100.1' }] : [] } },
    }),
  );

const rawSlice = fc
  .record({
    ns: fc.constantFrom(...NS),
    svc: fc.constantFrom(...SVC),
    n: fc.integer({ min: 1, max: 2 }),
    ports: fc.uniqueArray(fc.record({ name: fc.constantFrom('a', 'b', 'c'), proto: fc.constantFrom(...PROTOS) }), {
      maxLength: 3,
      selector: (p) => p.name + p.proto,
    }),
    eps: fc.array(
      fc.record({
        ip: fc.integer({ min: 1, max: 20 }),
        node: fc.constantFrom('', ...NODES),
        ready: fc.boolean(),
        serving: fc.boolean(),
        terminating: fc.boolean(),
        zone: fc.constantFrom('z1', 'z2'),
        hint: fc.boolean(),
      }),
      { maxLength: 5 },
    ),
    owner: fc.constantFrom(...SVC),
  })
  .map((s) =>
    read({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      // Slice names are per-service but the owner label can differ: slices "move" between services.
      metadata: { namespace: s.ns, name: `${s.svc}-${s.n}`, labels: { 'kubernetes.io/service-name': s.owner } },
      addressType: 'IPv4',
      ports: s.ports.map((p) => ({ name: p.name, port: 8000 + p.name.charCodeAt(0), protocol: p.proto })),
      endpoints: s.eps.map((e) => ({
        addresses: [`10.244.0.${e.ip}`],
        nodeName: e.node || undefined,
        zone: e.zone,
        conditions: { ready: e.ready, serving: e.serving, terminating: e.terminating },
        hints: e.hint ? { forZones: [{ name: e.zone }] } : undefined,
      })),
    }),
  );

const rawNode = fc
  .record({
    name: fc.constantFrom(...NODES),
    a: fc.integer({ min: 1, max: 3 }),
    zone: fc.constantFrom('z1', 'z2'),
    hb: fc.integer(),
  })
  .map((n) =>
    read({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: n.name,
        labels: { 'topology.kubernetes.io/zone': n.zone },
        annotations: { heartbeat: String(n.hb) },
      },
      status: { addresses: [{ type: 'InternalIP', address: `192.0.2.${n.a}` }] },
    }),
  );

const deletion = fc.oneof(
  fc
    .record({ ns: fc.constantFrom(...NS), name: fc.constantFrom(...SVC) })
    .map((d): ObjectChange => ({ op: 'delete', kind: 'Service', namespace: d.ns, name: d.name })),
  fc
    .record({ ns: fc.constantFrom(...NS), svc: fc.constantFrom(...SVC), n: fc.integer({ min: 1, max: 2 }) })
    .map((d): ObjectChange => ({ op: 'delete', kind: 'EndpointSlice', namespace: d.ns, name: `${d.svc}-${d.n}` })),
  fc.constantFrom(...NODES).map((n): ObjectChange => ({ op: 'delete', kind: 'Node', namespace: '', name: n })),
);

export const objectChange: fc.Arbitrary<ObjectChange> = fc.oneof(
  { weight: 3, arbitrary: rawService.map((o): ObjectChange => ({ op: 'upsert', object: o })) },
  { weight: 4, arbitrary: rawSlice.map((o): ObjectChange => ({ op: 'upsert', object: o })) },
  { weight: 1, arbitrary: rawNode.map((o): ObjectChange => ({ op: 'upsert', object: o })) },
  { weight: 2, arbitrary: deletion },
);
