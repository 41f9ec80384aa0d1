import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { readKubeObject, type EndpointSliceObject, type KubeObject } from '../../../libs/model/index.ts';
import { ClusterState } from '../../../libs/planner/index.ts';
import { PackedSlice, unpackSlice } from '../../../libs/planner/packed-slice.ts';

function read(raw: unknown): KubeObject {
  const r = readKubeObject(raw);
  if (!r.ok) throw new Error(`generator made an invalid object: ${r.rejection.reason}`);
  return r.object;
}

/** Slices as the reader makes them, with every endpoint field varied (several addresses, hints, nil conditions). */
const rawEndpoint = (family: 'IPv4' | 'IPv6' | 'FQDN') =>
  fc.record(
    {
      addresses: fc.array(
        fc
          .integer({ min: 1, max: 250 })
          .map((n) =>
            family === 'IPv4' ? `10.0.0.${n}` : family === 'IPv6' ? `fd00::${n.toString(16)}` : `h${n}.example`,
          ),
        { minLength: 1, maxLength: 3 },
      ),
      nodeName: fc.constantFrom('n1', 'a-much-longer-node-name.example.internal', ''),
      zone: fc.constantFrom('z1', 'z2', ''),
      conditions: fc.record(
        { ready: fc.boolean(), serving: fc.boolean(), terminating: fc.boolean() },
        { requiredKeys: [] },
      ),
      hints: fc.record(
        {
          forZones: fc.array(
            fc.constantFrom('z1', 'z2').map((name) => ({ name })),
            { maxLength: 2 },
          ),
          forNodes: fc.array(
            fc.constantFrom('n1', 'n2').map((name) => ({ name })),
            { maxLength: 2 },
          ),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: ['addresses'] },
  );

const slice: fc.Arbitrary<EndpointSliceObject> = fc
  .constantFrom('IPv4' as const, 'IPv6' as const, 'FQDN' as const)
  .chain((family) =>
    fc.record({
      family: fc.constant(family),
      endpoints: fc.array(rawEndpoint(family), { maxLength: 6 }),
      n: fc.nat(9),
    }),
  )
  .map(
    (s) =>
      read({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { namespace: 'default', name: `web-${s.n}`, labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: s.family,
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: s.endpoints,
      }) as EndpointSliceObject,
  );

describe('PackedSlice', () => {
  it('unpacks to the slice it packed: the same value and the same JSON text (property)', () => {
    fc.assert(
      fc.property(slice, (s) => {
        const before = JSON.stringify(s);
        const packed = PackedSlice.pack(s);
        expect(packed).toBeDefined();
        const back = packed!.unpack();
        expect(back).toEqual(s);
        expect(JSON.stringify(back)).toBe(before);
        expect(JSON.stringify(s)).toBe(before); // packing leaves the slice it read as it was
        expect(packed!.endpointCount).toBe(s.endpoints.length);
      }),
      { numRuns: 300 },
    );
  });

  it('keeps as they came the slices whose endpoints are not of the reader shape', () => {
    const s = read({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: 'default', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.2'] }],
    }) as EndpointSliceObject;
    expect(PackedSlice.pack(s)).toBeDefined();
    const [first, second] = s.endpoints as EndpointSliceObject['endpoints'][number][];
    const { hintNodes: _, ...withoutHintNodes } = second!;
    // an old checkpoint's endpoint (no hintNodes), fields in another order, one field more
    const oddShapes = [
      withoutHintNodes,
      Object.fromEntries(Object.entries(second!).reverse()),
      { ...second!, extra: 1 },
      { ...second!, addresses: [] },
      Object.assign(Object.create({ inherited: true }), second!),
    ];
    for (const odd of oddShapes) {
      const mixed = { ...s, endpoints: [first!, odd] } as EndpointSliceObject;
      expect(PackedSlice.pack(mixed)).toBeUndefined();
      expect(unpackSlice(mixed)).toBe(mixed);
    }
  });
});

describe('ClusterState keeps built services’ slices packed', () => {
  it('gives back every object as it came, and rebuilds a service from its packed slices as from the objects (property)', () => {
    fc.assert(
      fc.property(fc.array(slice, { minLength: 1, maxLength: 5 }), slice, (slices, changed) => {
        const service = read({
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { namespace: 'default', name: 'web' },
          spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
        });
        const state = new ClusterState();
        state.apply({ op: 'upsert', object: service });
        for (const s of slices) state.apply({ op: 'upsert', object: s });
        state.commit();
        // built: the slices are packed, so objects() makes new objects, equal to the latest of each name
        const latest = new Map(slices.map((s) => [s.meta.name, s]));
        const kept = state.objects().filter((o): o is EndpointSliceObject => o.kind === 'EndpointSlice');
        expect(kept.length).toBe(latest.size);
        for (const o of kept) {
          const given = latest.get(o.meta.name)!;
          expect(o).not.toBe(given);
          expect(JSON.stringify(o)).toBe(JSON.stringify(given));
        }
        // one slice changes: the service is rebuilt from the others' packed cells and the new one
        state.apply({ op: 'upsert', object: changed });
        state.commit();
        const fromObjects = ClusterState.fromObjects([service, ...latest.set(changed.meta.name, changed).values()]);
        expect(state.hash()).toBe(fromObjects.hash());
        expect(state.data.toClusterData()).toEqual(fromObjects.data.toClusterData());
      }),
      { numRuns: 200 },
    );
  });
});

describe('ClusterState.objectsInKeyOrder (what a checkpoint stores)', () => {
  it('gives every object in keyOf order, equal to objects(), unpacking each packed slice only when its turn comes', () => {
    fc.assert(
      fc.property(fc.uniqueArray(slice, { minLength: 2, maxLength: 8, selector: (s) => s.meta.name }), (slices) => {
        const service = read({
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { namespace: 'default', name: 'web' },
          spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
        });
        const state = ClusterState.fromObjects([...[...slices].reverse(), service]);
        const all = state.objects();
        const inOrder = state.objectsInKeyOrder();
        expect(inOrder.count).toBe(all.length);
        const key = (o: KubeObject) => `${o.kind} ${o.meta.namespace}/${o.meta.name}`;
        const expected = [...all].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
        const unpack = vi.spyOn(PackedSlice.prototype, 'unpack');
        try {
          const it = inOrder[Symbol.iterator]();
          it.next();
          expect(unpack.mock.calls.length).toBeLessThanOrEqual(1);
          const rest = [...{ [Symbol.iterator]: () => it }];
          expect(unpack.mock.calls.length).toBe(slices.length);
          expect(JSON.stringify(rest)).toBe(JSON.stringify(expected.slice(1)));
        } finally {
          unpack.mockRestore();
        }
        expect(JSON.stringify([...inOrder])).toBe(JSON.stringify(expected));
      }),
      { numRuns: 50 },
    );
  });
});
