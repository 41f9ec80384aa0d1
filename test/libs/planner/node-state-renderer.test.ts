import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PROXY_CONFIG,
  readProxyConfig,
  type DataDelta,
  type EndpointEntry,
  type NodeFacts,
  type ProxyConfig,
  type NodeState,
  type ServiceEntry,
  virtualServerKey,
} from '../../../libs/model/index.ts';
import {
  ClusterDataIndex,
  ClusterState,
  NodeStateRenderer,
  neutralContext,
  nodeStateHash,
  renderContext,
  renderNodeState,
  renderServiceForNode,
  serviceClaims,
} from '../../../libs/planner/index.ts';
import { objectChange } from '../../support/random-cluster.ts';

const CONFIGS: ProxyConfig[] = [
  DEFAULT_PROXY_CONFIG,
  readProxyConfig({
    scheduler: 'mh',
    schedulerFlags: ['mh-port'],
    strictARP: true,
    nodePortAddresses: ['192.0.2.1/32', '2001:db8::/64'],
  }),
];
// n1..n3 come and go in the random cluster; "n9" never exists (rendering must still agree)
const NODE_NAMES = ['n1', 'n2', 'n3', 'n9'];

function renderers(): NodeStateRenderer[] {
  return NODE_NAMES.flatMap((n) => CONFIGS.map((c) => new NodeStateRenderer(n, c)));
}

function expectSameAsFull(r: NodeStateRenderer, data: ClusterDataIndex): void {
  const full = renderNodeState(data, r.nodeName, r.config);
  expect(r.state()).toEqual(full);
  expect(r.hash()).toBe(nodeStateHash(full));
}

describe('NodeStateRenderer: incremental rendering equals the full render', () => {
  it('for random event batches from ClusterState, every node and config (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(objectChange, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 }),
        (batches) => {
          const planner = new ClusterState();
          const data = new ClusterDataIndex();
          const rs = renderers();
          for (const r of rs) r.reset(data);
          for (const batch of batches) {
            for (const change of batch) planner.apply(change);
            const delta = planner.commit();
            if (!delta) continue;
            data.apply(delta);
            for (const r of rs) {
              r.update(data, delta);
              expectSameAsFull(r, data);
            }
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('for random dual-stack deltas, with sets of a family appearing and vanishing (property)', () => {
    fc.assert(
      fc.property(
        fc.array(delta, { minLength: 1, maxLength: 15 }),
        fc.integer({ min: 0, max: 14 }),
        (deltas, resetAt) => {
          const data = new ClusterDataIndex();
          const rs = NODE_NAMES.slice(0, 2).flatMap((n) => CONFIGS.map((c) => new NodeStateRenderer(n, c)));
          deltas.forEach((d, i) => {
            data.apply(d);
            for (const r of rs) {
              if (i === resetAt) r.reset(data);
              else r.update(data, d);
              expectSameAsFull(r, data);
            }
          });
        },
      ),
      { numRuns: 120 },
    );
  });

  it('keeps states it handed out unchanged', () => {
    const data = ClusterDataIndex.from({
      services: [svc('a', ['10.96.0.1', 'fd00::1'], 2)],
      nodes: [facts('n1', ['192.0.2.1'])],
    });
    const r = new NodeStateRenderer('n1', DEFAULT_PROXY_CONFIG);
    r.reset(data);
    const before = r.state();
    const snapshot = structuredClone(before);
    const d = upserts([svc('b', ['10.96.0.2'], 1), svc('a', ['fd00::1'], 3)]);
    data.apply(d);
    r.update(data, d);
    expect(r.state()).not.toEqual(before);
    expect(before).toEqual(snapshot);
    expect(r.state()).toBe(r.state()); // cached until the next change
  });
});

describe('serviceClaims: the virtual servers rendering makes, without their endpoints', () => {
  it('for random services and nodes, every node, no node in particular and every config (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(serviceEntry, { maxLength: 3, selector: (s) => s.key }),
        fc.uniqueArray(nodeFacts, { maxLength: 2, selector: (n) => n.name }),
        (services, nodes) => {
          const data = ClusterDataIndex.from({ services, nodes });
          const contexts = CONFIGS.flatMap((c) => [
            neutralContext(c, data.nodeAddressOwners()),
            ...NODE_NAMES.map((n) => renderContext(data, n, c)),
          ]);
          for (const ctx of contexts)
            for (const s of services)
              expect([...serviceClaims(s, ctx)]).toEqual(
                renderServiceForNode(s, ctx).virtualServers.map((v) => ({
                  address: v.address,
                  port: v.port,
                  protocol: v.protocol,
                  role: v.role,
                  servicePort: v.servicePort,
                })),
              );
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** How `next` differs from `prev` in its services, by identity: what changeOf must say. */
function identityChange(prev: NodeState, next: NodeState) {
  const before = new Map(prev.virtualServers.map((v) => [virtualServerKey(v), v]));
  const after = new Set(next.virtualServers.map((v) => virtualServerKey(v)));
  return {
    virtualServers: next.virtualServers
      .filter((v) => before.get(virtualServerKey(v)) !== v)
      .map(virtualServerKey)
      .sort(),
    removedVirtualServers: [...before.keys()].filter((k) => !after.has(k)).sort(),
  };
}

describe('NodeStateRenderer: changeOf', () => {
  it('names exactly the services added, replaced or removed since the previous state (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(delta, fc.boolean()), { minLength: 1, maxLength: 15 }),
        fc.integer({ min: 0, max: 14 }),
        (steps, resetAt) => {
          const data = new ClusterDataIndex();
          const r = new NodeStateRenderer('n1', CONFIGS[0]!);
          r.reset(data);
          let prev = r.state();
          expect(r.changeOf(prev)).toBeUndefined(); // the first state: everything is new
          // a reset since the previous state (asked for, or update's own when n1's facts change)
          let reset = false;
          steps.forEach(([d, look], i) => {
            data.apply(d);
            if (i === resetAt) r.reset(data);
            else r.update(data, d);
            reset ||= i === resetAt || d.removeNodes.includes('n1') || d.upsertNodes.some((n) => n.name === 'n1');
            if (!look) return; // several deltas between two states
            const next = r.state();
            const change = r.changeOf(next);
            if (next === prev) expect(change?.previous).not.toBe(next);
            else if (!(reset && change === undefined)) {
              expect(change?.previous).toBe(prev);
              expect({
                virtualServers: change!.virtualServers.map(virtualServerKey).sort(),
                removedVirtualServers: [...change!.removedVirtualServers].sort(),
              }).toEqual(identityChange(prev, next));
              for (const v of change!.virtualServers) expect(next.virtualServers).toContain(v);
            }
            expect(r.changeOf({ ...next })).toBeUndefined(); // only for the state it handed out
            reset = false;
            prev = next;
          });
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('NodeStateRenderer: O(change)', () => {
  it('renders again only the services a delta names, and everything when its own node changes', () => {
    const services = Array.from({ length: 20 }, (_, i) => svc(`s${i}`, [`10.96.0.${i + 1}`], 2));
    const data = ClusterDataIndex.from({ services, nodes: [facts('n1', ['192.0.2.1']), facts('n2', ['192.0.2.2'])] });
    const rendered: string[] = [];
    const r = new NodeStateRenderer('n1', DEFAULT_PROXY_CONFIG, { onRenderService: (k) => rendered.push(k) });
    r.reset(data);
    expect(rendered).toHaveLength(20);

    // an endpoint change leaves the shared members (bound addresses, ipset entries) untouched
    const before = r.state();
    const d0 = upserts([svc('s1', ['10.96.0.2'], 3)]);
    data.apply(d0);
    r.update(data, d0);
    expect(r.state().virtualServers).not.toBe(before.virtualServers);
    expect(r.state().boundAddresses).toBe(before.boundAddresses);
    expect(r.state().ipsets).toBe(before.ipsets);
    expectSameAsFull(r, data);

    rendered.length = 0;
    const d1: DataDelta = {
      upsertServices: [svc('s3', ['10.96.0.4'], 5)],
      removeServices: ['ns/s7'],
      upsertNodes: [facts('n2', ['192.0.2.9'])],
      removeNodes: [],
    };
    data.apply(d1);
    r.update(data, d1);
    expect(rendered).toEqual(['ns/s3']); // s7 removed without rendering; another node's facts are not ours
    expectSameAsFull(r, data);

    rendered.length = 0;
    const d2: DataDelta = {
      upsertServices: [],
      removeServices: [],
      upsertNodes: [facts('n1', ['192.0.2.1', '192.0.2.5'])],
      removeNodes: [],
    };
    data.apply(d2);
    r.update(data, d2);
    expect(rendered).toHaveLength(19);
    expectSameAsFull(r, data);
  });

  // probe6 P7: an externalIP that is any node's address is served on no node, and an ingress IP
  // that is one is bound on no node, so another node's addresses reach this node's state; only
  // the services listing one that came or went render again
  it.each([
    ['externalIP', { externalIPs: ['192.0.2.50'] }],
    ['ingress IP', { loadBalancerIngress: ['192.0.2.50'] }],
  ])('renders again the services listing an address another node takes or gives up (%s)', (_, listed) => {
    const listing = svc('ext', ['10.96.0.30'], 2, listed);
    const services = [...Array.from({ length: 10 }, (_, i) => svc(`s${i}`, [`10.96.0.${i + 1}`], 2)), listing];
    const data = ClusterDataIndex.from({ services, nodes: [facts('n1', ['192.0.2.1'])] });
    const rendered: string[] = [];
    const r = new NodeStateRenderer('n1', DEFAULT_PROXY_CONFIG, { onRenderService: (k) => rendered.push(k) });
    r.reset(data);
    expect(r.state().boundAddresses).toContain('192.0.2.50');
    const steps: DataDelta[] = [
      { upsertServices: [], removeServices: [], upsertNodes: [facts('n3', ['192.0.2.50'])], removeNodes: [] },
      {
        upsertServices: [],
        removeServices: [],
        upsertNodes: [facts('n3', ['192.0.2.50', '192.0.2.51'])],
        removeNodes: [],
      },
      { upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: ['n3'] },
    ];
    const bound: boolean[] = [];
    for (const d of steps) {
      rendered.length = 0;
      data.apply(d);
      r.update(data, d);
      expectSameAsFull(r, data);
      bound.push(r.state().boundAddresses.includes('192.0.2.50'));
      expect(rendered).toEqual(d === steps[1] ? [] : ['ns/ext']); // 192.0.2.51 is listed by no one
    }
    expect(bound).toEqual([false, false, true]);
  });

  it('hashes only content: equal states hash equal, any item change moves the hash', () => {
    const data = ClusterDataIndex.from({ services: [svc('a', ['10.96.0.1'], 2)], nodes: [facts('n1', ['192.0.2.1'])] });
    const s = renderNodeState(data, 'n1', DEFAULT_PROXY_CONFIG);
    expect(nodeStateHash(structuredClone(s))).toBe(nodeStateHash(s));
    const vs = s.virtualServers[0]!;
    const variants = [
      { ...s, node: 'n2' },
      { ...s, settings: { ...s.settings, strictARP: true } },
      {
        ...s,
        virtualServers: [{ ...vs, realServers: vs.realServers.map((x, i) => (i === 0 ? { ...x, weight: 2 } : x)) }],
      },
      { ...s, boundAddresses: [...s.boundAddresses, '10.96.0.99'] },
      { ...s, ipsets: s.ipsets.map((x) => (x.name === 'KUBE-CLUSTER-IP' ? { ...x, entries: [] } : x)) },
      { ...s, ipsets: s.ipsets.filter((x) => x.name !== 'KUBE-LOOP-BACK') },
    ];
    const hashes = new Set([nodeStateHash(s), ...variants.map((v) => nodeStateHash(v))]);
    expect(hashes.size).toBe(variants.length + 1);
  });
});

// ---- a small dual-stack universe of ServiceEntry / NodeFacts values -------------------------

function facts(name: string, addresses: string[], zone = 'z1'): NodeFacts {
  return { name, addresses: [...addresses].sort(), zone };
}

function svc(name: string, clusterIPs: string[], endpoints: number, extra: Partial<ServiceEntry> = {}): ServiceEntry {
  const eps: EndpointEntry[] = Array.from({ length: endpoints }, (_, i) => ({
    ip: clusterIPs[0]?.includes(':') ? `fd00:244::${i + 1}` : `10.244.0.${i + 1}`,
    port: 8080,
    nodeName: i % 2 ? 'n1' : 'n2',
    zone: 'z1',
    ready: true,
    serving: true,
    terminating: false,
    hintZones: [],
  }));
  return {
    key: `ns/${name}`,
    clusterIPs,
    externalIPs: [],
    loadBalancerIngress: [],
    loadBalancerSourceRanges: [],
    affinityTimeoutSeconds: 0,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    healthCheckNodePort: 0,
    topologyAware: false,
    nodePorts: false,
    ports: [{ name: 'http', protocol: 'TCP', port: 80, nodePort: 0, endpoints: eps }],
    ...extra,
  };
}

function upserts(services: ServiceEntry[]): DataDelta {
  return { upsertServices: services, removeServices: [], upsertNodes: [], removeNodes: [] };
}

const V4 = ['10.96.0.1', '10.96.0.2'];
const V6 = ['fd00::1', 'fd00::2'];
const endpoint = fc
  .record({
    ip: fc.constantFrom('10.244.0.1', '10.244.0.2', 'fd00:244::1', 'fd00:244::2'),
    node: fc.constantFrom('', 'n1', 'n2'),
    ready: fc.boolean(),
    serving: fc.boolean(),
    terminating: fc.boolean(),
    zone: fc.constantFrom('z1', 'z2'),
    hint: fc.boolean(),
  })
  .map(
    (e): EndpointEntry => ({
      ip: e.ip,
      port: 8080,
      nodeName: e.node,
      zone: e.zone,
      ready: e.ready,
      serving: e.serving,
      terminating: e.terminating,
      hintZones: e.hint ? [e.zone] : [],
    }),
  );
const serviceEntry = fc
  .record({
    name: fc.constantFrom('a', 'b', 'c'),
    v4: fc.option(fc.constantFrom(...V4)),
    v6: fc.option(fc.constantFrom(...V6)),
    v6First: fc.boolean(),
    // an external or LB address may equal a cluster IP or each other: one service claims a VIP:port
    // twice, or two services claim one (by role, review3 K1); 192.0.2.7 is sometimes a node's own address
    ext: fc.subarray(['203.0.113.1', '2001:db8:1::1', '10.96.0.1', '192.0.2.7']),
    lb: fc.subarray(['198.51.100.1', '2001:db8:2::1', '203.0.113.1']),
    ranges: fc.subarray(['192.0.2.0/24', '2001:db8::/32']),
    etpLocal: fc.boolean(),
    itpLocal: fc.boolean(),
    nodePorts: fc.boolean(),
    topo: fc.boolean(),
    hc: fc.constantFrom(0, 32000),
    ports: fc.uniqueArray(
      fc.record({
        name: fc.constantFrom('a', 'b'),
        protocol: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const),
        port: fc.constantFrom(80, 81),
        nodePort: fc.constantFrom(0, 30001, 30002),
        endpoints: fc.uniqueArray(endpoint, { maxLength: 4, selector: (e) => e.ip }),
      }),
      { maxLength: 2, selector: (p) => p.name },
    ),
  })
  .map(
    (s): ServiceEntry => ({
      key: `ns/${s.name}`,
      clusterIPs: (s.v6First ? [s.v6, s.v4] : [s.v4, s.v6]).filter((x): x is string => !!x),
      externalIPs: s.ext,
      loadBalancerIngress: s.lb,
      loadBalancerSourceRanges: s.ranges,
      affinityTimeoutSeconds: 0,
      externalTrafficPolicy: s.etpLocal ? 'Local' : 'Cluster',
      internalTrafficPolicy: s.itpLocal ? 'Local' : 'Cluster',
      healthCheckNodePort: s.hc,
      topologyAware: s.topo,
      nodePorts: s.nodePorts,
      ports: s.ports
        .map((p) => ({ ...p, endpoints: [...p.endpoints].sort((x, y) => (x.ip < y.ip ? -1 : 1)) }))
        .sort((x, y) => (x.name < y.name ? -1 : 1)),
    }),
  );
const nodeFacts = fc
  .record({
    name: fc.constantFrom('n1', 'n2'),
    addrs: fc.subarray(['192.0.2.1', '192.0.2.7', '2001:db8::1']),
    zone: fc.constantFrom('z1', 'z2'),
  })
  .map((n) => facts(n.name, n.addrs, n.zone));
const delta: fc.Arbitrary<DataDelta> = fc
  .record({
    upsertServices: fc.uniqueArray(serviceEntry, { maxLength: 2, selector: (s) => s.key }),
    removeServices: fc.subarray(['ns/a', 'ns/b', 'ns/c'], { maxLength: 1 }),
    upsertNodes: fc.uniqueArray(nodeFacts, { maxLength: 1, selector: (n) => n.name }),
    removeNodes: fc.subarray(['n1', 'n2'], { maxLength: 1 }),
  })
  .map((d) => ({
    ...d,
    removeServices: d.removeServices.filter((k) => !d.upsertServices.some((s) => s.key === k)),
    removeNodes: d.removeNodes.filter((k) => !d.upsertNodes.some((n) => n.name === k)),
  }));
