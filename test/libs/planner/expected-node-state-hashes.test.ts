import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  DEFAULT_PROXY_CONFIG,
  readProxyConfig,
  type DataDelta,
  type EndpointEntry,
  type NodeFacts,
  type ProxyConfig,
  type ServiceEntry,
} from '../../../libs/model/index.ts';
import {
  ClusterDataIndex,
  ClusterState,
  ExpectedNodeStateHashes,
  nodeStateHash,
  renderNodeState,
} from '../../../libs/planner/index.ts';
import { bucketOf } from '../../../libs/planner/bucket-hash-tree.ts';
import { objectChange } from '../../support/random-cluster.ts';
import { serviceEntry as plainService } from '../bus/fixtures.ts';

// The planner's expected node-state hashes, shared work laid over per node, must equal the full
// render + hash of every node (the hash appliers compute: its definition must not move), for
// every config, across any sequence of versions the hasher is moved through.
const CONFIGS: ProxyConfig[] = [
  DEFAULT_PROXY_CONFIG,
  readProxyConfig({
    scheduler: 'mh',
    schedulerFlags: ['mh-port'],
    strictARP: true,
    nodePortAddresses: ['192.0.2.0/28', '2001:db8::/64'],
  }),
  readProxyConfig({ mode: 'nftables', masqueradeAll: true, nodePortAddresses: ['2001:db8::/64'] }),
];
// n1..n4 come and go; n9 never has a Node object (it can still have endpoints: local ones count)
const NODES = ['n1', 'n2', 'n3', 'n4', 'n9'];

/** What each node-dependent part did in a run: a property that never met one proves nothing about it. */
const seen = { ownItems: 0, rendered: 0, laidOver: 0 };

function expectSameAsFull(hashes: ExpectedNodeStateHashes, data: ClusterDataIndex): void {
  for (const node of NODES) {
    const fast = hashes.hash(node);
    expect(fast).toBe(nodeStateHash(renderNodeState(data, node, hashes.config)));
    const s = hashes.lastStats;
    seen.ownItems += s.ownItems > 1 ? 1 : 0; // beyond the node item
    seen.rendered += s.servicesRendered;
    seen.laidOver += s.servicesLaidOver;
  }
}

describe('ExpectedNodeStateHashes equals nodeStateHash(renderNodeState(...)) for every node', () => {
  it('over random dual-stack clusters moved by deltas: NodePorts, LB ranges, externalIPs, Local policies, hints, VIP conflicts (property)', () => {
    fc.assert(
      fc.property(
        fc.array(delta, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 5 }),
        (deltas, freshAt) => {
          const data = new ClusterDataIndex();
          let hashers = CONFIGS.map((c) => new ExpectedNodeStateHashes(c));
          deltas.forEach((d, i) => {
            data.apply(d);
            if (i === freshAt) hashers = CONFIGS.map((c) => new ExpectedNodeStateHashes(c)); // built from scratch
            for (const h of hashers) {
              h.update(data);
              expectSameAsFull(h, data);
            }
          });
        },
      ),
      // 40 runs: the floors below are sums over random runs; with 20, one CI run in many laid over
      // only 45 (12 runs here: 80–201), under its floor of 50
      { numRuns: 40 },
    );
    // the generator reaches the node-dependent parts (a vacuous run would pass any fast path)
    expect(seen.ownItems).toBeGreaterThan(150); // 370–560 in runs of 20
    expect(seen.rendered).toBeGreaterThan(300); // 495–933 in runs of 20: rendered again for the node
    expect(seen.laidOver).toBeGreaterThan(50); // 80–201 in runs of 20: NodePort copies and KUBE-LOOP-BACK members laid over
  });

  it('over random Kubernetes object changes through ClusterState (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(objectChange, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 }),
        (batches) => {
          const planner = new ClusterState();
          const data = new ClusterDataIndex();
          const hashers = CONFIGS.map((c) => new ExpectedNodeStateHashes(c));
          for (const batch of batches) {
            for (const change of batch) planner.apply(change);
            const d = planner.commit();
            if (!d) continue;
            data.apply(d);
            for (const h of hashers) {
              h.update(data);
              expectSameAsFull(h, data);
            }
          }
        },
      ),
      { numRuns: 20 },
    );
  });

  it('follows each node-dependent part when it is the only one (each case fails a fast path that treats it as shared)', () => {
    const base = svc('x', { clusterIPs: ['10.96.0.1'] });
    const ep = (nodeName: string, hint: string[]): EndpointEntry => ({
      ip: `10.244.0.${hint.length + (nodeName ? 5 : 1)}`,
      port: 8080,
      nodeName,
      zone: hint[0] ?? '',
      ready: true,
      serving: true,
      terminating: false,
      hintZones: hint,
    });
    const withEndpoints = (eps: EndpointEntry[]) => [{ ...base.ports[0]!, endpoints: eps }];
    const nodePort = { ...base, nodePorts: true, ports: [{ ...base.ports[0]!, nodePort: 30001 }] };
    const dual = { ...nodePort, clusterIPs: ['10.96.0.1', 'fd00::1'] };
    const onNode = withEndpoints([ep('n1', []), ep('', [])]);
    // laid over: the node's NodePort copies and KUBE-LOOP-BACK members, no render
    const laidOver: Record<string, ServiceEntry> = {
      nodePort,
      nodePortSctp: { ...nodePort, ports: [{ ...nodePort.ports[0]!, protocol: 'SCTP' }] },
      nodePortDualStack: {
        ...dual,
        ports: [{ ...dual.ports[0]!, endpoints: [ep('', []), { ...ep('', []), ip: 'fd00:244::9' }] }],
      },
      nodePortLocalNoEndpointHere: { ...nodePort, externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 },
      endpointOnNode: { ...base, ports: onNode },
      nodePortAndEndpointOnNode: { ...nodePort, ports: [{ ...nodePort.ports[0]!, endpoints: onNode[0]!.endpoints }] },
    };
    // not reached at all: a node address listed renders alike on every node (left out: probe6 P7;
    // served, left unbound: P15 on its owner and on every other node)
    const alike: Record<string, ServiceEntry> = {
      ownExternalIP: { ...base, externalIPs: ['192.0.2.1'] },
      ownLoadBalancerIP: { ...base, loadBalancerIngress: ['192.0.2.1'] },
      otherNodesLoadBalancerIP: { ...base, loadBalancerIngress: ['192.0.2.2'] },
    };
    // rendered again: what the node changes is more than its own additions
    const rendered: Record<string, ServiceEntry> = {
      sourceRanges: { ...base, loadBalancerIngress: ['198.51.100.1'], loadBalancerSourceRanges: ['192.0.2.0/24'] },
      topologyHints: { ...base, topologyAware: true, ports: withEndpoints([ep('', ['z1']), ep('', ['z2'])]) },
      endpointOnNodeInternalLocal: { ...base, internalTrafficPolicy: 'Local', ports: onNode },
      nodePortLocalEndpointHere: {
        ...nodePort,
        externalTrafficPolicy: 'Local',
        ports: [{ ...nodePort.ports[0]!, endpoints: onNode[0]!.endpoints }],
      },
    };
    const node = facts('n1', ['192.0.2.1', '192.0.2.7', '2001:db8::1'], 'z1'); // two addresses in one family
    for (const [name, s] of [...Object.entries(laidOver), ...Object.entries(rendered), ...Object.entries(alike)]) {
      const data = ClusterDataIndex.from({ services: [s], nodes: [node, facts('n2', ['192.0.2.2'])] });
      for (const config of CONFIGS) {
        const h = new ExpectedNodeStateHashes(config);
        h.update(data);
        expect(h.hash('n1'), name).toBe(nodeStateHash(renderNodeState(data, 'n1', config)));
        const { servicesRendered, servicesLaidOver } = h.lastStats;
        expect([servicesRendered, servicesLaidOver], name).toEqual(
          name in laidOver ? [0, 1] : name in rendered ? [1, 0] : [0, 0],
        );
      }
    }
  });

  it('renders again only the services a node reaches, and no service when a version changes one other', () => {
    const services = Array.from({ length: 30 }, (_, i) => svc(`s${i}`, { clusterIPs: [`10.96.0.${i + 1}`] }));
    services[3] = svc('s3', { clusterIPs: ['10.96.0.4'], nodePorts: true, nodePort: 30003 });
    services[4] = svc('s4', { clusterIPs: ['10.96.0.5'], endpointNode: 'n2' });
    const data = ClusterDataIndex.from({ services, nodes: [facts('n1', ['192.0.2.1']), facts('n2', ['192.0.2.2'])] });
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    h.update(data);
    expect(h.hash('n1')).toBe(nodeStateHash(renderNodeState(data, 'n1', DEFAULT_PROXY_CONFIG)));
    // its node item and NodePort VS, laid over: s3 is not rendered again
    expect(h.lastStats).toMatchObject({ servicesRendered: 0, servicesLaidOver: 1, ownItems: 2, fullRender: false });
    expect(h.hash('n2')).toBe(nodeStateHash(renderNodeState(data, 'n2', DEFAULT_PROXY_CONFIG)));
    // s3's NodePort, s4's endpoint on n2 (two KUBE-LOOP-BACK members)
    expect(h.lastStats).toMatchObject({ servicesRendered: 0, servicesLaidOver: 2, ownItems: 4, fullRender: false });
    const d: DataDelta = {
      upsertServices: [svc('s7', { clusterIPs: ['10.96.0.8'], endpoints: 3 })],
      removeServices: ['ns/s9'],
      upsertNodes: [],
      removeNodes: [],
    };
    data.apply(d);
    h.update(data);
    expect(h.hash('n1')).toBe(nodeStateHash(renderNodeState(data, 'n1', DEFAULT_PROXY_CONFIG)));
  });

  it("hashes again, in a later version, only the buckets of a node's state where its own items or the shared items moved", () => {
    // n2 holds an endpoint of each of 80 services: 80 KUBE-LOOP-BACK members of its own, in most buckets
    const local = Array.from({ length: 80 }, (_, i) => {
      const s = svc(`l${i}`, { clusterIPs: [`10.96.1.${i + 1}`], endpointNode: 'n2', endpoints: 1 });
      return {
        ...s,
        ports: s.ports.map((p) => ({ ...p, endpoints: p.endpoints.map((e) => ({ ...e, ip: `10.244.1.${i + 1}` })) })),
      };
    });
    const others = Array.from({ length: 20 }, (_, i) => svc(`s${i}`, { clusterIPs: [`10.96.0.${i + 1}`] }));
    const data = ClusterDataIndex.from({
      services: [...local, ...others],
      nodes: [facts('n1', ['192.0.2.1']), facts('n2', ['192.0.2.2'])],
    });
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    h.update(data);
    const full = (node: string) => nodeStateHash(renderNodeState(data, node, DEFAULT_PROXY_CONFIG));
    expect(h.hash('n2')).toBe(full('n2'));
    const first = h.lastStats.bucketsHashed;
    expect(first).toBeGreaterThan(40); // its own items' buckets, all hashed the first time
    // a version that changes one service the node does not reach: a few buckets moved
    data.apply({
      upsertServices: [svc('s7', { clusterIPs: ['10.96.0.8'], endpoints: 3 })],
      removeServices: [],
      upsertNodes: [],
      removeNodes: [],
    });
    h.update(data);
    expect(h.hash('n2')).toBe(full('n2'));
    expect(h.lastStats.bucketsHashed).toBeLessThanOrEqual(4);
    // nothing moved: no bucket hashed again
    expect(h.hash('n2')).toBe(full('n2'));
    expect(h.lastStats.bucketsHashed).toBe(0);
    // one of its own items goes (its endpoint moves to n1): the first such version hashes every
    // bucket of its own items once more (OverlayMemo's digests are taken then), a later one only
    // its bucket and the moved shared ones
    const toN1 = (i: number) => ({
      ...local[i]!,
      ports: local[i]!.ports.map((p) => ({ ...p, endpoints: p.endpoints.map((e) => ({ ...e, nodeName: 'n1' })) })),
    });
    for (const [i, most] of [
      [5, 80],
      [6, 6],
    ] as const) {
      data.apply({ upsertServices: [toN1(i)], removeServices: [], upsertNodes: [], removeNodes: [] });
      h.update(data);
      expect(h.hash('n2')).toBe(full('n2'));
      expect(h.lastStats.bucketsHashed).toBeGreaterThan(0);
      expect(h.lastStats.bucketsHashed).toBeLessThanOrEqual(most);
    }
    expect(h.hash('n1')).toBe(full('n1'));
    // a name the data does not have gets no memo (ACKs of any name must not grow them), and is right
    expect(h.memoizedNodes).toBe(2);
    expect(h.hash('ghost')).toBe(full('ghost'));
    expect(h.lastStats.bucketsHashed).toBe(-1);
    expect(h.memoizedNodes).toBe(2);
    // a node the data no longer has loses its memo at the next update: it starts over if it comes back
    data.apply({ upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: ['n2'] });
    h.update(data);
    expect(h.memoizedNodes).toBe(1);
    data.apply({ upsertServices: [], removeServices: [], upsertNodes: [facts('n2', ['192.0.2.2'])], removeNodes: [] });
    h.update(data);
    expect(h.hash('n2')).toBe(full('n2'));
    expect(h.lastStats.bucketsHashed).toBeGreaterThan(40);
  });

  // NodePort claims are decided once per version per group of templates sharing (family, protocol,
  // port); a node merges a key itself only when more claims it there: a member rendered again for
  // the node (LB source ranges, zone hints, a Local policy with endpoints here), a NodePort without
  // a template, or a shared claim on the node's address (a cluster IP that is a node address).
  it('decides NodePort claims once per group, and merges a key itself when more claims it on the node (property)', () => {
    const seenHere = { once: 0, merged: 0 };
    const nodes = [facts('n1', ['192.0.2.1', '10.96.0.1'], 'z1'), facts('n2', ['192.0.2.2'], 'z2'), facts('n3', [])];
    fc.assert(
      fc.property(fc.array(sharedNodePort, { minLength: 2, maxLength: 8 }), fc.nat(), (list, pickOne) => {
        const services = [...new Map(list.map((s) => [s.key, s])).values()];
        const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
        let data = ClusterDataIndex.from({ services, nodes });
        for (const round of [0, 1]) {
          if (round === 1) {
            // the next version: one service loses its NodePorts (its groups settled again)
            const i = pickOne % services.length;
            services[i] = { ...services[i]!, nodePorts: false };
            data = ClusterDataIndex.from({ services, nodes });
          }
          h.update(data);
          for (const n of nodes) {
            expect(h.hash(n.name), n.name).toBe(nodeStateHash(renderNodeState(data, n.name, DEFAULT_PROXY_CONFIG)));
            seenHere.once += h.lastStats.claimsDecidedOnce;
            seenHere.merged += h.lastStats.claimsMerged;
          }
        }
      }),
      { numRuns: 60 },
    );
    expect(seenHere.once).toBeGreaterThan(100);
    expect(seenHere.merged).toBeGreaterThan(100);
  });

  // A cluster IP that is a node's address, at a NodePort's port, is a claim on that node's copy key:
  // the node must merge that key itself (the cluster IP wins) while any claim there is left. Two
  // services share the claim; as they come and go one at a time, the address stays claimed until
  // the last one goes (its count of claims must not drop while one is left).
  it('keeps a node address claimed while any of the claims on it is left', () => {
    const claim = (name: string) =>
      plainService(
        `ns/${name}`,
        ['10.96.0.1'],
        [
          {
            name: 'p',
            protocol: 'TCP',
            port: 30001,
            nodePort: 0,
            endpoints: svc('x', { clusterIPs: [] }).ports[0]!.endpoints,
          },
        ],
        false,
      );
    const nodePort = svc('np', { clusterIPs: ['10.96.0.9'], nodePorts: true, nodePort: 30001 });
    const nodes = [facts('n1', ['10.96.0.1'])];
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    const versions = [
      [claim('c1'), claim('c2'), nodePort],
      [claim('c1'), nodePort],
      [claim('c1'), claim('c2'), nodePort],
      [claim('c2'), nodePort],
      [nodePort],
      [claim('c2'), claim('c1'), nodePort],
    ];
    for (const services of versions) {
      const data = ClusterDataIndex.from({ services, nodes });
      h.update(data);
      expect(h.hash('n1')).toBe(nodeStateHash(renderNodeState(data, 'n1', DEFAULT_PROXY_CONFIG)));
    }
  });

  // A node's NodePort copies are hashed once and kept (per node address, by group): a later version
  // hashes only the copies whose group's winner changed.
  it('hashes again only the NodePort copies whose group moved', () => {
    const nodePorts = Array.from({ length: 12 }, (_, i) =>
      svc(`np${i}`, { clusterIPs: [`10.96.0.${i + 10}`], nodePorts: true, nodePort: 30000 + i }),
    );
    const plain = svc('plain', { clusterIPs: ['10.96.1.1'] });
    const data = ClusterDataIndex.from({
      services: [...nodePorts, plain],
      nodes: [facts('n1', ['192.0.2.1']), facts('n2', ['192.0.2.2', '2001:db8::2'])],
    });
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    const full = (node: string) => nodeStateHash(renderNodeState(data, node, DEFAULT_PROXY_CONFIG));
    const moved = (...upsertServices: ServiceEntry[]) => {
      data.apply({ upsertServices, removeServices: [], upsertNodes: [], removeNodes: [] });
      h.update(data);
    };
    h.update(data);
    const made = () => [h.lastStats.copiesHashed, h.lastStats.copiesMade];
    expect(h.hash('n1')).toBe(full('n1'));
    expect(made()).toEqual([12, 12]);
    // the same again: no copy hashed, nor made into an item (nothing the node has moved)
    expect(h.hash('n1')).toBe(full('n1'));
    expect(made()).toEqual([0, 0]);
    // a service without NodePorts changed: no copy hashed again, made only where its buckets are
    moved(svc('plain', { clusterIPs: ['10.96.1.1'], endpoints: 3 }));
    expect(h.hash('n1')).toBe(full('n1'));
    expect(h.lastStats.copiesHashed).toBe(0);
    expect(h.lastStats.copiesMade).toBeLessThan(12);
    // one NodePort service's endpoints changed: its copy only hashed; made, the node's own items
    // having moved for the first time since its first hash (which keeps its groups' digests only),
    // the copies of the group of buckets it moved in
    moved(svc('np3', { clusterIPs: ['10.96.0.13'], nodePorts: true, nodePort: 30003, endpoints: 5 }));
    expect(h.hash('n1')).toBe(full('n1'));
    const groupOf = (port: number) => Math.floor(bucketOf(`vs:TCP/192.0.2.1:${port}`) / 16);
    const sameGroup = nodePorts.filter((_, i) => groupOf(30000 + i) === groupOf(30003)).length;
    expect(sameGroup).toBeLessThan(12);
    expect(made()).toEqual([1, sameGroup]);
    // one goes and another comes (the new group may take the freed place): both nodes right
    data.apply({
      upsertServices: [svc('np12', { clusterIPs: ['10.96.0.30'], nodePorts: true, nodePort: 30020 })],
      removeServices: ['ns/np5'],
      upsertNodes: [],
      removeNodes: [],
    });
    h.update(data);
    expect(h.hash('n1')).toBe(full('n1'));
    expect(h.lastStats.copiesHashed).toBe(1);
    expect(h.hash('n2')).toBe(full('n2')); // first hash of n2: every copy (one address of the family)
    expect(made()).toEqual([12, 12]);
    expect(h.hash('n2')).toBe(full('n2'));
    expect(made()).toEqual([0, 0]);
    // n2's address changes: its copies are hashed on the new one
    data.apply({
      upsertServices: [],
      removeServices: [],
      upsertNodes: [facts('n2', ['192.0.2.3', '2001:db8::2'])],
      removeNodes: [],
    });
    h.update(data);
    expect(h.hash('n2')).toBe(full('n2'));
    expect(made()).toEqual([12, 12]);
  });

  // A NodePort of many endpoints: its copies' text (~25 kB at 250 endpoints) is hashed around the
  // address where it lies, not copied behind it.
  it('hashes the copies of a NodePort whose text is large (200 endpoints) as the full render', () => {
    const big = svc('big', { clusterIPs: ['10.96.0.9', 'fd00::9'], nodePorts: true, nodePort: 30009, endpoints: 200 });
    const small = svc('small', { clusterIPs: ['10.96.0.10'], nodePorts: true, nodePort: 30010 });
    const data = ClusterDataIndex.from({
      services: [big, small],
      nodes: [facts('n1', ['192.0.2.1', '2001:db8::1']), facts('n2', ['192.0.2.2'])],
    });
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    h.update(data);
    for (const node of ['n1', 'n2']) {
      const state = renderNodeState(data, node, DEFAULT_PROXY_CONFIG);
      expect(h.hash(node)).toBe(nodeStateHash(state));
      expect(h.lastStats.copiesHashed).toBeGreaterThan(1);
      // over the 8 kB past which a copy's tail is hashed where it lies (TAIL_COPY_MAX)
      const copy = state.virtualServers.find((vs) => vs.port === 30009 && vs.address === '192.0.2.1');
      if (node === 'n1') expect(canonicalJson(copy).length).toBeGreaterThan(9_000);
    }
  });

  // When only shared items move, a node's copies are made into items only in the buckets hashed
  // again: each must be found there by the bucket kept with its digest.
  it('makes the NodePort copies that fall in buckets the shared items moved in, and only those', () => {
    const nodePorts = Array.from({ length: 64 }, (_, i) =>
      svc(`np${i}`, { clusterIPs: [`10.96.0.${i + 10}`], nodePorts: true, nodePort: 30000 + i }),
    );
    const plain = (i: number, endpoints: number) => svc(`plain${i}`, { clusterIPs: [`10.96.1.${i + 1}`], endpoints });
    const data = ClusterDataIndex.from({
      services: [...nodePorts, ...Array.from({ length: 40 }, (_, i) => plain(i, 2))],
      nodes: [facts('n1', ['192.0.2.1']), facts('n2', ['192.0.2.2', '2001:db8::2'])],
    });
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    h.update(data);
    for (const n of ['n1', 'n2']) h.hash(n);
    let made = 0;
    for (let round = 0; round < 30; round++) {
      const upsertServices = [plain((round * 7) % 40, 3 + (round % 4)), plain((round * 11 + 3) % 40, 2 + (round % 3))];
      data.apply({ upsertServices, removeServices: [], upsertNodes: [], removeNodes: [] });
      h.update(data);
      for (const n of ['n1', 'n2']) {
        expect(h.hash(n), `${n} round ${round}`).toBe(nodeStateHash(renderNodeState(data, n, DEFAULT_PROXY_CONFIG)));
        expect(h.lastStats.copiesHashed).toBe(0);
        expect(h.lastStats.copiesMade).toBeLessThan(64);
        made += h.lastStats.copiesMade;
      }
    }
    expect(made).toBeGreaterThan(0); // some copies shared a bucket with what moved
  });

  // A node's KUBE-LOOP-BACK members of laid-over services are identified by their service's entry
  // and endpoint: made into items only where a bucket of theirs is hashed again (when the node's
  // own items moved: the buckets whose items moved; all of them the first time), and taken the plain way where a service rendered for the node has
  // members of the set too (traffic policy Local).
  it('makes the KUBE-LOOP-BACK members that fall in buckets hashed again, and only those', () => {
    const onNodes = (name: string, i: number, nodes: string[], local = false, v6 = false): ServiceEntry => {
      const s = svc(name, { clusterIPs: [v6 ? `fd00::2:${i + 1}` : `10.96.2.${i + 1}`], endpoints: nodes.length });
      const ports = s.ports.map((p) => ({
        ...p,
        endpoints: p.endpoints.map((e, j) => ({
          ...e,
          ip: v6 ? `fd00:244:${i}::${j + 1}` : `10.244.${i}.${j + 1}`,
          nodeName: nodes[j]!,
        })),
      }));
      return { ...s, ports, internalTrafficPolicy: local ? 'Local' : 'Cluster' };
    };
    const locals = Array.from({ length: 64 }, (_, i) => onNodes(`l${i}`, i, ['n1', 'n2', 'n1', 'x'], false, i >= 48));
    const plain = (i: number, endpoints: number) => svc(`plain${i}`, { clusterIPs: [`10.96.1.${i + 1}`], endpoints });
    const data = ClusterDataIndex.from({
      services: [...locals, ...Array.from({ length: 40 }, (_, i) => plain(i, 2))],
      nodes: [facts('n1', ['192.0.2.1']), facts('n2', ['192.0.2.2'])],
    });
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    const check = (node: string) => {
      expect(h.hash(node), node).toBe(nodeStateHash(renderNodeState(data, node, DEFAULT_PROXY_CONFIG)));
      return h.lastStats.loopBackMembersMade;
    };
    const move = (...upsertServices: ServiceEntry[]) => {
      data.apply({ upsertServices, removeServices: [], upsertNodes: [], removeNodes: [] });
      h.update(data);
    };
    h.update(data);
    expect([check('n1'), check('n2')]).toEqual([128, 64]); // a first hash makes every member (16 services IPv6)
    expect([check('n1'), check('n2')]).toEqual([0, 0]); // nothing moved
    let made = 0;
    for (let round = 0; round < 30; round++) {
      // only shared items move: members made only in the buckets hashed again
      move(plain((round * 7) % 40, 3 + (round % 4)), plain((round * 11 + 3) % 40, 2 + (round % 3)));
      const m = [check('n1'), check('n2')];
      expect(m[0]).toBeLessThan(128);
      expect(m[1]).toBeLessThan(64);
      made += m[0]! + m[1]!;
    }
    expect(made).toBeGreaterThan(0);
    // one local service's endpoints take other addresses (same places, a new entry): n1's own
    // items moved for the first time since its first hash, which kept only its groups' digests:
    // the members of the groups they moved in made again (l5's two among them), not all 128;
    // then the same again makes none
    move({ ...onNodes('l5', 55, ['n1', 'n2', 'n1', 'x']), key: 'ns/l5' });
    const afterMove = check('n1');
    expect(afterMove).toBeGreaterThanOrEqual(2);
    expect(afterMove).toBeLessThan(128);
    expect(check('n1')).toBe(0);
    // a service with traffic policy Local is rendered for the node, its members counted with the
    // rest: every member of that set (IPv4) made the plain way, each time (l7's two are the
    // rendered service's own); the IPv6 ones, still identified, made only in the buckets whose
    // changes moved (those where IPv4 members went from identified to plain), not all 32
    move(onNodes('l7', 7, ['n1', 'n2', 'n1', 'x'], true));
    const afterLocal = check('n1');
    expect(afterLocal).toBeGreaterThanOrEqual(94);
    expect(afterLocal).toBeLessThan(94 + 32);
    // again: the IPv4 members made the plain way, the IPv6 ones (no rendered member of their set) not
    expect(check('n1')).toBe(94);
  });

  // A later version takes a node's KUBE-LOOP-BACK members as its last hash found them while
  // nothing they are found from moved: its local services, which of them are rendered for it, its
  // facts. Each case below moves one of those and must be walked again (a stale member is a wrong
  // hash), and the node whose inputs did not move keeps its members.
  it("takes a node's KUBE-LOOP-BACK members as its last hash found them while nothing they are found from moved", () => {
    const onNodes = (
      name: string,
      i: number,
      nodes: string[],
      o: { local?: boolean; v6?: boolean; nodePorts?: boolean } = {},
    ) => {
      const s = svc(name, {
        clusterIPs: [o.v6 ? `fd00::2:${i + 1}` : `10.96.2.${i + 1}`],
        endpoints: nodes.length,
        nodePorts: o.nodePorts,
        nodePort: o.nodePorts ? 30000 + i : undefined,
      });
      const ports = s.ports.map((p) => ({
        ...p,
        endpoints: p.endpoints.map((e, j) => ({
          ...e,
          ip: o.v6 ? `fd00:244:${i}::${j + 1}` : `10.244.${i}.${j + 1}`,
          nodeName: nodes[j]!,
        })),
      }));
      return { ...s, ports, internalTrafficPolicy: o.local ? ('Local' as const) : ('Cluster' as const) };
    };
    // n1 and n2 share l0..l15, only n1 has o0..o3; l12.. are IPv6, l10 and l11 NodePorts
    const shared = Array.from({ length: 16 }, (_, i) =>
      onNodes(`l${i}`, i, ['n1', 'n2', 'x'], { v6: i >= 12, nodePorts: i === 10 || i === 11 }),
    );
    const own = Array.from({ length: 4 }, (_, i) => onNodes(`o${i}`, 20 + i, ['n1', 'x']));
    const plain = (i: number, endpoints: number) => svc(`plain${i}`, { clusterIPs: [`10.96.1.${i + 1}`], endpoints });
    const data = ClusterDataIndex.from({
      services: [...shared, ...own, ...Array.from({ length: 10 }, (_, i) => plain(i, 2))],
      nodes: [facts('n1', ['192.0.2.1']), facts('n2', ['192.0.2.2'])],
    });
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    /**
     * How each node's members were found: taken as kept, kept but for its moved local services
     * (walked again), or walked whole; each hash the full render's, its stats a fresh hasher's.
     */
    const kept = (...nodes: string[]) =>
      nodes.map((node) => {
        expect(h.hash(node), node).toBe(nodeStateHash(renderNodeState(data, node, DEFAULT_PROXY_CONFIG)));
        const { loopBackKept, loopBackPatched, servicesLaidOver } = h.lastStats;
        const fresh = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
        fresh.update(data);
        fresh.hash(node);
        expect(servicesLaidOver, `${node} laid over`).toBe(fresh.lastStats.servicesLaidOver);
        return loopBackKept ? 'kept' : loopBackPatched ? 'patched' : 'walked';
      });
    const move = (...upsertServices: ServiceEntry[]) => {
      data.apply({ upsertServices, removeServices: [], upsertNodes: [], removeNodes: [] });
      h.update(data);
    };
    h.update(data);
    expect(kept('n1', 'n2')).toEqual(['walked', 'walked']); // a first hash walks
    move(plain(3, 5)); // only shared items move
    expect(kept('n1', 'n2')).toEqual(['kept', 'kept']);
    // one of n1's own local services: its endpoints take other addresses (same places); n1's kept
    // walk stays, that service marked to be walked again (it held the service's Held that is gone)
    expect(h.keptLoopBackWalks).toBe(2);
    move(onNodes('o1', 30, ['n1', 'x']));
    expect(h.keptLoopBackWalks).toBe(2);
    expect(kept('n1', 'n2')).toEqual(['patched', 'kept']);
    expect(kept('n1')).toEqual(['kept']);
    // a service gains an endpoint on n2, then loses it (its endpoints on the others stay)
    move(onNodes('o2', 22, ['n1', 'x', 'n2']));
    expect(kept('n1', 'n2')).toEqual(['patched', 'patched']);
    move(onNodes('o2', 22, ['n1', 'x', 'y']));
    expect(kept('n1', 'n2')).toEqual(['patched', 'patched']);
    expect(kept('n1', 'n2')).toEqual(['kept', 'kept']);
    // a local service leaves n1 (all its endpoints go elsewhere), then one is removed
    move(onNodes('o3', 23, ['y', 'x']));
    expect(kept('n1', 'n2')).toEqual(['patched', 'kept']);
    data.apply({ upsertServices: [], removeServices: ['ns/l3'], upsertNodes: [], removeNodes: [] });
    h.update(data);
    expect(kept('n1', 'n2')).toEqual(['patched', 'patched']);
    // a shared local service takes traffic policy Local: rendered for both nodes, its members
    // counted with the rendered ones, the set's walk made whole and not kept while it is
    move(onNodes('l4', 4, ['n1', 'n2', 'x'], { local: true }));
    expect(kept('n1', 'n2')).toEqual(['walked', 'walked']);
    expect(kept('n1', 'n2')).toEqual(['walked', 'walked']);
    move(onNodes('l4', 4, ['n1', 'n2', 'x']));
    expect(kept('n1', 'n2')).toEqual(['walked', 'walked']);
    expect(kept('n1', 'n2')).toEqual(['kept', 'kept']);
    // n2's facts move: without a NodePort address its NodePort services are no longer laid over
    // there (the count the walk kept), and back
    const facts2 = (addresses: string[]) => {
      data.apply({ upsertServices: [], removeServices: [], upsertNodes: [facts('n2', addresses)], removeNodes: [] });
      h.update(data);
    };
    facts2([]);
    expect(kept('n1', 'n2')).toEqual(['kept', 'walked']);
    expect(kept('n1', 'n2')).toEqual(['kept', 'kept']);
    facts2(['192.0.2.2']);
    expect(kept('n1', 'n2')).toEqual(['kept', 'walked']);
    // more local services moved between two of n1's hashes than STALE_MAX (32): its kept walk
    // goes with the update, and the next hash walks whole
    move(...Array.from({ length: 40 }, (_, i) => onNodes(`new${i}`, 40 + i, ['n1', 'x'])));
    expect(h.keptLoopBackWalks).toBe(1);
    expect(kept('n1', 'n2')).toEqual(['walked', 'kept']);
    expect(kept('n1')).toEqual(['kept']);
    // n2 silent while two versions move a service local to both: its kept walk, holding that
    // service's replaced Held, is dropped at the end of the update after the version it missed
    // (a silent node must not keep replaced entries alive); n1, hashed at each, patches
    move({ ...onNodes('l0', 60, ['n1', 'n2', 'x']), key: 'ns/l0' });
    expect(h.keptLoopBackWalks).toBe(2);
    expect(kept('n1')).toEqual(['patched']);
    move({ ...onNodes('l0', 61, ['n1', 'n2', 'x']), key: 'ns/l0' });
    expect(h.keptLoopBackWalks).toBe(1);
    expect(kept('n1', 'n2')).toEqual(['patched', 'walked']);
  });

  // A node's KUBE-LOOP-BACK members are found through each service's endpoints sorted by node
  // number; the numbers start over when endpoint node names churn past twice those in use, and a
  // service left as it was must then be indexed again under the new numbers.
  it("finds a node's local endpoints across node numbers that start over as endpoint nodes churn", () => {
    const endpointsOn = (nodes: string[]): EndpointEntry[] =>
      nodes.map((nodeName, i) => ({
        ip: `10.244.${Math.floor(i / 200)}.${(i % 200) + 1}`,
        port: 8080,
        nodeName,
        zone: 'z1',
        ready: true,
        serving: true,
        terminating: false,
        hintZones: [],
      }));
    const service = (name: string, clusterIP: string, nodes: string[]) =>
      plainService(
        `ns/${name}`,
        [clusterIP],
        [
          { name: 'a', protocol: 'TCP', port: 80, nodePort: 0, endpoints: endpointsOn(nodes) },
          { name: 'b', protocol: 'UDP', port: 53, nodePort: 0, endpoints: endpointsOn([...nodes].reverse()) },
        ],
      );
    // left as it was throughout: indexed once, then again after each start over
    const stay = service('stay', '10.96.5.1', ['n2', 'x', 'n1', 'y', 'n1']);
    const data = ClusterDataIndex.from({
      services: [stay],
      nodes: [facts('n1', ['192.0.2.1']), facts('n2', ['192.0.2.2']), facts('n3', ['192.0.2.3'])],
    });
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    let n3Kept = 0;
    for (let v = 0; v < 60; v++) {
      // nodes that come and go, each version three new names (and n1, n2)
      const churn = service('churn', '10.96.5.2', [`gone-${v}a`, 'n1', `gone-${v}b`, 'n2', `gone-${v}c`]);
      // n3's one service moves now and then: its members kept between, across the start overs
      const mine = (v * 7) % 11 < 3 ? [service('mine', '10.96.5.3', ['n3', `far-${v}`, 'n3'])] : [];
      data.apply({ upsertServices: [churn, ...mine], removeServices: [], upsertNodes: [], removeNodes: [] });
      h.update(data);
      for (const node of ['n1', 'n2', 'n3', `gone-${v}b`]) {
        expect(h.hash(node), `${node} v${v}`).toBe(nodeStateHash(renderNodeState(data, node, DEFAULT_PROXY_CONFIG)));
        if (node === 'n3' && h.lastStats.loopBackKept) n3Kept += 1;
      }
    }
    expect(h.nodeNumberGenerations).toBeGreaterThan(1);
    expect(n3Kept).toBeGreaterThan(30); // 44 of 60: each version but the first and the 15 after 'mine' moved
    // the members are there: n1 has two endpoints of "stay" and one of "churn" in each of two ports
    const loopBack = renderNodeState(data, 'n1', DEFAULT_PROXY_CONFIG).ipsets.find((s) => s.name === 'KUBE-LOOP-BACK');
    expect(loopBack?.entries.length).toBe(6);
  });

  // probe6 P7: an externalIP that is any node's address is served nowhere, so a node's addresses
  // reach every node's state. An update left unfinished (a newer version superseded it) rendered
  // some services with its addresses: the next one must still render them again.
  // An ingress IP that is any node's address is bound on no node (P15) and follows them alike.
  it.each(['externalIPs', 'loadBalancerIngress'] as const)(
    'follows node addresses that came and went, across an update left unfinished (%s)',
    (field) => {
      const listing = (name: string, ip: string, i: number): ServiceEntry => ({
        ...svc(name, { clusterIPs: [`10.96.1.${i + 1}`] }),
        [field]: [ip],
      });
      const many = Array.from({ length: 40 }, (_, i) => listing(`e${i}`, '192.0.2.50', i));
      const before = ClusterDataIndex.from({
        services: [...many, svc('late', { clusterIPs: ['10.96.2.1'] })],
        nodes: [facts('n1', ['192.0.2.1'])],
      });
      // n3 joins with the address 40 services list, and "late" starts listing it too
      const joined = ClusterDataIndex.from({
        services: [...many, listing('late', '192.0.2.50', 99)],
        nodes: [facts('n1', ['192.0.2.1']), facts('n3', ['192.0.2.50'])],
      });
      const n3With = (...addresses: string[]) =>
        ClusterDataIndex.from({
          services: [...many, listing('late', '192.0.2.50', 99)],
          nodes: [facts('n1', ['192.0.2.1']), facts('n3', addresses)],
        });
      // before that version's hashes are done, n3's address moves elsewhere (the services rendered
      // for `joined` are wrong now), or n3 gains one more (those not rendered yet are wrong)
      for (const next of [n3With('192.0.2.60'), n3With('192.0.2.50', '192.0.2.60')]) {
        const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
        h.update(before);
        const steps = h.updateSteps(joined);
        expect(steps.next().done).toBe(false); // some of the 41 services rendered again, then left
        h.update(next);
        for (const node of ['n1', 'n3'])
          expect(h.hash(node), node).toBe(nodeStateHash(renderNodeState(next, node, DEFAULT_PROXY_CONFIG)));
        h.update(before);
        expect(h.hash('n1')).toBe(nodeStateHash(renderNodeState(before, 'n1', DEFAULT_PROXY_CONFIG)));
      }
      // what the hashes follow: served where no node has the address, nowhere where one has
      expect(renderNodeState(before, 'n1', DEFAULT_PROXY_CONFIG).boundAddresses).toContain('192.0.2.50');
      expect(renderNodeState(joined, 'n1', DEFAULT_PROXY_CONFIG).boundAddresses).not.toContain('192.0.2.50');
    },
  );
});

// The planner runs these steps in slices of ~10 ms between its other work: a step's size must follow
// what it renders, hashes and indexes. At the envelope's 250 endpoints a service, sixteen renders a
// step made 20–30 ms steps, and the first node asked about indexed every endpoint of each of its
// local services in one step (166 ms at 10k services × 5,000 nodes).
describe('ExpectedNodeStateHashes steps are bounded by the endpoints they handle, not by the count of services', () => {
  const NODE_COUNT = 256;
  /** 32 services of 256 endpoints each, one on each of 256 nodes: each node has one endpoint of each. */
  const wide = ClusterDataIndex.from({
    services: Array.from({ length: 32 }, (_, i) =>
      plainService(
        `ns/wide${i}`,
        [`10.96.1.${i + 1}`],
        [
          {
            name: 'http',
            protocol: 'TCP',
            port: 80,
            nodePort: 0,
            endpoints: Array.from({ length: NODE_COUNT }, (_, e) => ({
              ip: `10.${64 + i}.${1 + (e >> 7)}.${(e & 127) + 1}`,
              port: 8080,
              nodeName: `w${e}`,
              zone: 'z1',
              ready: true,
              serving: true,
              terminating: false,
              hintZones: [],
            })),
          },
        ],
      ),
    ),
    nodes: Array.from({ length: NODE_COUNT }, (_, e) => facts(`w${e}`, [`172.16.${e}.1`])),
  });
  const count = (steps: Iterator<unknown>) => {
    let n = 0;
    while (!steps.next().done) n += 1;
    return n;
  };

  it('updateSteps: a step renders and settles about two 256-endpoint services, not sixteen', () => {
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    // 32 renders and 32 virtual servers settled, each ~145 units of 256
    expect(count(h.updateSteps(wide))).toBeGreaterThanOrEqual(32);
    expect(h.hash('w0')).toBe(nodeStateHash(renderNodeState(wide, 'w0', DEFAULT_PROXY_CONFIG)));
  });

  it("hashSteps: the first node asked about indexes its local services' endpoints in steps; the next node finds them indexed", () => {
    const h = new ExpectedNodeStateHashes(DEFAULT_PROXY_CONFIG);
    h.update(wide);
    const results: Record<string, string> = {};
    const stepsOf = (node: string) => {
      const steps = h.hashSteps(node);
      let n = 0;
      for (let r = steps.next(); ; r = steps.next(), n += 1)
        if (r.done) {
          results[node] = r.value;
          return n;
        }
    };
    const first = stepsOf('w0');
    const next = stepsOf('w1');
    // 32 services × 256 endpoints indexed (~128 units each) by the first: 16 steps at least
    expect(first).toBeGreaterThanOrEqual(16);
    expect(next).toBeLessThan(first / 2);
    for (const node of ['w0', 'w1'])
      expect(results[node], node).toBe(nodeStateHash(renderNodeState(wide, node, DEFAULT_PROXY_CONFIG)));
  });
});

// ---- a small dual-stack universe where the node-dependent parts collide ---------------------

function facts(name: string, addresses: string[], zone = 'z1'): NodeFacts {
  return { name, addresses: [...new Set(addresses)].sort(), zone };
}

function svc(
  name: string,
  o: { clusterIPs: string[]; nodePorts?: boolean; nodePort?: number; endpointNode?: string; endpoints?: number },
): ServiceEntry {
  const eps: EndpointEntry[] = Array.from({ length: o.endpoints ?? 2 }, (_, i) => ({
    ip: `10.244.0.${i + 1}`,
    port: 8080,
    nodeName: o.endpointNode ?? '',
    zone: 'z1',
    ready: true,
    serving: true,
    terminating: false,
    hintZones: [],
  }));
  const ports = [{ name: 'http', protocol: 'TCP' as const, port: 80, nodePort: o.nodePort ?? 0, endpoints: eps }];
  return plainService(`ns/${name}`, o.clusterIPs, ports, o.nodePorts ?? false);
}

// Node addresses overlap external, LB and cluster IPs and the nodePortAddresses filters on purpose.
const NODE_ADDRS = ['192.0.2.1', '192.0.2.7', '192.0.2.40', '2001:db8::1', '2001:db8:9::1', '10.96.0.1'];
const endpoint = fc
  .record({
    ip: fc.constantFrom('10.244.0.1', '10.244.0.2', '10.244.0.3', 'fd00:244::1', 'fd00:244::2'),
    port: fc.constantFrom(8080, 8081),
    node: fc.constantFrom('', '', '', '', ...NODES), // mostly no node: other parts stay the only reason
    ready: fc.boolean(),
    serving: fc.boolean(),
    terminating: fc.boolean(),
    zone: fc.constantFrom('z1', 'z2'),
    // hints mostly present: topology applies only when every ready endpoint has them
    hint: fc.constantFrom<'none' | 'own' | 'other'>('none', 'own', 'own', 'own', 'own', 'other'),
  })
  .map(
    (e): EndpointEntry => ({
      ip: e.ip,
      port: e.port,
      nodeName: e.node,
      zone: e.zone,
      ready: e.ready,
      serving: e.serving,
      terminating: e.terminating,
      hintZones: e.hint === 'none' ? [] : e.hint === 'own' ? [e.zone] : ['z1', 'z2'],
    }),
  );
const sometimes = (xs: string[]) =>
  fc.oneof({ weight: 2, arbitrary: fc.constant<string[]>([]) }, { weight: 1, arbitrary: fc.subarray(xs) });
const serviceEntry = fc
  .record({
    name: fc.constantFrom('a', 'b', 'c', 'd'),
    v4: fc.option(fc.constantFrom<string>('10.96.0.1', '10.96.0.2')),
    v6: fc.option(fc.constantFrom<string>('fd00::1', 'fd00::2')),
    v6First: fc.boolean(),
    // externalIPs and LB addresses may be cluster IPs, each other, or a node's own address
    ext: fc.subarray(['203.0.113.1', '2001:db8:1::1', '10.96.0.1', '192.0.2.7', '2001:db8::1']),
    // mostly none, so that each node-dependent part is often the only one a service has (a fast
    // path that missed one must not be saved by another)
    lb: sometimes(['198.51.100.1', '2001:db8:2::1', '203.0.113.1', '192.0.2.1']),
    ranges: sometimes(['192.0.2.0/24', '2001:db8::/32', '198.51.100.0/24']),
    etpLocal: fc.boolean(),
    itpLocal: fc.boolean(),
    nodePorts: fc.boolean(),
    topo: fc.boolean(),
    affinity: fc.constantFrom(0, 10800),
    hc: fc.constantFrom(0, 32000),
    ports: fc.uniqueArray(
      fc.record({
        name: fc.constantFrom('a', 'b', 'c'),
        protocol: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const),
        port: fc.constantFrom(80, 81),
        nodePort: fc.constantFrom(0, 30001, 30002, 80),
        endpoints: fc.uniqueArray(endpoint, { maxLength: 5, selector: (e) => `${e.ip}:${e.port}` }),
      }),
      { maxLength: 3, selector: (p) => p.name },
    ),
  })
  .map(
    (s): ServiceEntry => ({
      key: `ns/${s.name}`,
      clusterIPs: (s.v6First ? [s.v6, s.v4] : [s.v4, s.v6]).filter((x): x is string => !!x),
      externalIPs: s.ext,
      loadBalancerIngress: s.lb,
      loadBalancerSourceRanges: s.ranges,
      affinityTimeoutSeconds: s.affinity,
      externalTrafficPolicy: s.etpLocal ? 'Local' : 'Cluster',
      internalTrafficPolicy: s.itpLocal ? 'Local' : 'Cluster',
      healthCheckNodePort: s.hc,
      topologyAware: s.topo,
      nodePorts: s.nodePorts,
      ports: s.ports
        .map((p) => ({
          ...p,
          endpoints: [...p.endpoints].sort((x, y) => (x.ip < y.ip ? -1 : x.ip > y.ip ? 1 : x.port - y.port)),
        }))
        .sort((x, y) => (x.name < y.name ? -1 : 1)),
    }),
  );
// Services sharing two NodePorts, each with one part that may make a node claim its key itself.
const sharedNodePort: fc.Arbitrary<ServiceEntry> = fc
  .record({
    i: fc.integer({ min: 1, max: 12 }),
    portName: fc.constantFrom('a', 'b'),
    protocol: fc.constantFrom('TCP' as const, 'UDP' as const),
    nodePort: fc.constantFrom(30001, 30002),
    port: fc.constantFrom(80, 30001), // 30001: its cluster IP claims a node's address at a NodePort's key
    clusterIP: fc.constantFrom('10.96.0.1', '10.96.0.2', '10.96.0.3'),
    endpointNode: fc.constantFrom('', '', 'n1', 'n2'),
    hint: fc.constantFrom<string[]>([], [], ['z1']),
    part: fc.constantFrom('none', 'none', 'ranges', 'etpLocal', 'sctp'),
  })
  .map((o): ServiceEntry => {
    const ep = (ip: string): EndpointEntry => ({
      ip,
      port: 8080,
      nodeName: o.endpointNode,
      zone: 'z1',
      ready: true,
      serving: true,
      terminating: false,
      hintZones: o.hint,
    });
    const endpoints = [ep(`10.244.0.${o.i}`), { ...ep(`10.244.1.${o.i}`), nodeName: '' }];
    const base = plainService(
      `ns/s${o.i}`,
      [o.clusterIP],
      [{ name: o.portName, protocol: o.protocol, port: o.port, nodePort: o.nodePort, endpoints }],
      true,
    );
    if (o.part === 'ranges')
      return { ...base, loadBalancerIngress: ['198.51.100.1'], loadBalancerSourceRanges: ['192.0.2.0/24'] };
    if (o.part === 'etpLocal') return { ...base, externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 };
    // an SCTP NodePort: the template names the node address in ipset members as well
    if (o.part === 'sctp') return { ...base, ports: [{ ...base.ports[0]!, protocol: 'SCTP' }] };
    return base;
  });
const nodeFacts = fc
  .record({
    name: fc.constantFrom('n1', 'n2', 'n3', 'n4'),
    addrs: fc.subarray(NODE_ADDRS, { maxLength: 3 }),
    zone: fc.constantFrom('', 'z1', 'z2'),
  })
  .map((n) => facts(n.name, n.addrs, n.zone));
const delta: fc.Arbitrary<DataDelta> = fc
  .record({
    upsertServices: fc.uniqueArray(serviceEntry, { maxLength: 3, selector: (s) => s.key }),
    removeServices: fc.subarray(['ns/a', 'ns/b', 'ns/c', 'ns/d'], { maxLength: 1 }),
    upsertNodes: fc.uniqueArray(nodeFacts, { maxLength: 2, selector: (n) => n.name }),
    removeNodes: fc.subarray(['n1', 'n2', 'n3', 'n4'], { maxLength: 1 }),
  })
  .map((d) => ({
    ...d,
    removeServices: d.removeServices.filter((k) => !d.upsertServices.some((s) => s.key === k)),
    removeNodes: d.removeNodes.filter((k) => !d.upsertNodes.some((n) => n.name === k)),
  }));
