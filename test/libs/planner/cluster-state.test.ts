import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalJson,
  DEFAULT_PROXY_CONFIG,
  parseManifestText,
  type EndpointSliceObject,
  type ServiceObject,
} from '../../../libs/model/index.ts';
import {
  buildNodeFacts,
  buildServiceEntry,
  ClusterDataIndex,
  ClusterState,
  nodeStateHash,
  renderNodeState,
} from '../../../libs/planner/index.ts';
import { NODES, service, slice } from '../../support/plan-fixture.ts';
import { objectChange } from '../../support/random-cluster.ts';

describe('ClusterState: incremental planning equals a full rebuild', () => {
  it('for random event sequences, with batches committed as deltas (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(objectChange, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 }),
        (batches) => {
          const incremental = new ClusterState();
          const follower = new ClusterDataIndex(); // what an applier holds, moved only by deltas
          for (const batch of batches) {
            for (const change of batch) incremental.apply(change);
            const delta = incremental.commit();
            if (delta) follower.apply(delta);
            expect(follower.hash()).toBe(incremental.hash());
          }
          const rebuilt = ClusterState.fromObjects(incremental.objects());
          expect(rebuilt.hash()).toBe(incremental.hash());
          expect(rebuilt.data.toClusterData()).toEqual(incremental.data.toClusterData());
          expect(follower.toClusterData()).toEqual(incremental.data.toClusterData());
          for (const node of ['n1', 'n2', 'n3']) {
            expect(nodeStateHash(renderNodeState(follower, node, DEFAULT_PROXY_CONFIG))).toBe(
              nodeStateHash(renderNodeState(rebuilt.data, node, DEFAULT_PROXY_CONFIG)),
            );
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('buildReady between changes moves nothing: the same deltas and hashes as without it (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.tuple(objectChange, fc.boolean()), { minLength: 1, maxLength: 6 }), {
          minLength: 1,
          maxLength: 12,
        }),
        (batches) => {
          const plain = new ClusterState();
          const early = new ClusterState();
          for (const batch of batches) {
            for (const [change, buildNow] of batch) {
              plain.apply(change);
              early.apply(change);
              if (buildNow) early.buildReady();
            }
            expect(early.commit()).toEqual(plain.commit());
            expect(early.hash()).toBe(plain.hash());
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('gives the same hash for the same objects in any order (property)', () => {
    fc.assert(
      fc.property(fc.array(objectChange, { maxLength: 30 }), fc.integer(), (changes, seed) => {
        const a = new ClusterState();
        for (const c of changes) a.apply(c);
        const objs = a.objects();
        const shuffled = [...objs].sort(
          (x, y) => hash(x.meta.name + seed) - hash(y.meta.name + seed) || (x.kind < y.kind ? -1 : 1),
        );
        expect(ClusterState.fromObjects(shuffled).hash()).toBe(a.hash());
      }),
      { numRuns: 100 },
    );
  });
});

describe('ClusterState builds entries in canonical key order', () => {
  it('every service entry and node fact serialises by JSON.stringify to its canonical text (property)', () => {
    fc.assert(
      fc.property(fc.array(objectChange, { maxLength: 30 }), (changes) => {
        const st = new ClusterState();
        for (const c of changes) st.apply(c);
        const { services, nodes } = st.data.toClusterData();
        for (const x of [...services, ...nodes]) expect(JSON.stringify(x)).toBe(canonicalJson(x));
      }),
      { numRuns: 100 },
    );
  });
});

describe('ClusterDataIndex', () => {
  it('freezes the entries it holds at every depth, parsed JSON as an applier gets them included', () => {
    const deeplyFrozen = (v: unknown): boolean =>
      v === null || typeof v !== 'object' || (Object.isFrozen(v) && Object.values(v).every(deeplyFrozen));
    const cluster = ClusterState.fromObjects(
      parseManifestText(
        NODES +
          service('web', 'clusterIP: 10.96.0.9\n  ports: [{name: http, port: 80}]') +
          slice('web', '[{name: http, port: 8080, protocol: TCP}]', [
            '{addresses: [10.244.1.2], nodeName: node-a, conditions: {ready: true}}',
            '{addresses: [10.244.2.2], nodeName: node-b, conditions: {ready: true}}',
          ]),
        'test.yaml',
      ).objects,
    );
    const data = JSON.parse(JSON.stringify(cluster.data.toClusterData())) as ReturnType<
      ClusterDataIndex['toClusterData']
    >;
    expect(data.services[0]!.ports[0]!.endpoints.length).toBeGreaterThan(0);
    const index = ClusterDataIndex.from(data);
    const held = index.toClusterData(); // fresh arrays of the entries held
    expect([...held.services, ...held.nodes].every(deeplyFrozen)).toBe(true);
    expect(index.hash()).toBe(cluster.data.hash());
  });
});

describe('buildServiceEntry / buildNodeFacts', () => {
  it('return values frozen at every depth, as built (property)', () => {
    const deeplyFrozen = (v: unknown): boolean =>
      v === null || typeof v !== 'object' || (Object.isFrozen(v) && Object.values(v).every(deeplyFrozen));
    fc.assert(
      fc.property(fc.array(objectChange, { maxLength: 30 }), (changes) => {
        const services = new Map<string, ServiceObject>();
        const slices: EndpointSliceObject[] = [];
        for (const c of changes) {
          if (c.op !== 'upsert') continue;
          if (c.object.kind === 'Service') services.set(c.object.meta.name, c.object);
          else if (c.object.kind === 'EndpointSlice') slices.push(c.object);
          else expect(deeplyFrozen(buildNodeFacts(c.object))).toBe(true);
        }
        for (const svc of services.values()) {
          const entry = buildServiceEntry(
            svc,
            slices.filter((x) => x.serviceName === svc.meta.name && x.meta.namespace === svc.meta.namespace),
          );
          if (entry) expect(deeplyFrozen(entry)).toBe(true);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('ClusterState change tracking', () => {
  const base = parseManifestText(
    NODES +
      service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]') +
      slice('web', '[{name: http, port: 8080}]', ['{addresses: [10.244.1.2], nodeName: node-a}']),
    't',
  ).objects;

  it('makes no delta for a change that nets to nothing', () => {
    const s = ClusterState.fromObjects(base);
    const before = s.hash();
    const svc = base.find((o) => o.kind === 'Service')!;
    s.apply({ op: 'delete', kind: 'Service', namespace: 'default', name: 'web' });
    expect(s.hash()).not.toBe(before);
    s.apply({ op: 'upsert', object: svc });
    expect(s.hasChanges()).toBe(false);
    expect(s.commit()).toBeUndefined();
    expect(s.hash()).toBe(before);
  });

  it('ignores resourceVersion-only and node status churn outside the facts it uses', () => {
    const s = ClusterState.fromObjects(base);
    const node = base.find((o) => o.kind === 'Node' && o.meta.name === 'node-a')!;
    s.apply({
      op: 'upsert',
      object: { ...node, meta: { ...node.meta, resourceVersion: '999', annotations: { x: 'y' } } },
    });
    expect(s.commit()).toBeUndefined();
  });

  it('emits only the touched service in a delta', () => {
    const s = ClusterState.fromObjects(base);
    const extra = parseManifestText(service('api', 'clusterIP: 10.96.0.2\n  ports: [{name: http, port: 80}]'), 't')
      .objects[0]!;
    s.apply({ op: 'upsert', object: extra });
    const d = s.commit()!;
    expect(d.upsertServices.map((e) => e.key)).toEqual(['default/api']);
    expect(d.removeServices).toEqual([]);
    expect(d.upsertNodes).toEqual([]);
    s.apply({ op: 'delete', kind: 'Service', namespace: 'default', name: 'api' });
    expect(s.commit()!.removeServices).toEqual(['default/api']);
  });
});

function hash(s: string): number {
  let h = 7;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
  return h;
}
