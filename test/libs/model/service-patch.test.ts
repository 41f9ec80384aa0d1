// A large service's entry told as its change (libs/model/service-patch.ts): rebuilding from the
// base and the patch gives the next entry exactly (same content hash), whatever changed; a patch
// that does not fit its base is refused with one line, never turned into another entry silently.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyServicePatch,
  byEndpointAddress,
  contentHash,
  diffServiceEntry,
  PATCH_MIN_ENDPOINTS,
  type EndpointEntry,
  type ServiceEntry,
  type ServicePortEntry,
} from '../../../libs/model/index.ts';
import { decodePatchedDelta, patchNotice } from '../../../libs/bus/index.ts';
import { sortedLargeService, VersionMaker } from '../bus/fixtures.ts';

const big = (n: number, shift = 0) => sortedLargeService('ns/big', n, shift);

const ipOf = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

const endpointArb = (ip: string, port: number): fc.Arbitrary<EndpointEntry> =>
  fc
    .record({
      nodeName: fc.constantFrom('n1', 'n2', 'n3'),
      zone: fc.constantFrom('', 'z1'),
      ready: fc.boolean(),
      serving: fc.boolean(),
      terminating: fc.boolean(),
      hintZones: fc.constantFrom([], ['z1'], ['z1', 'z2']),
      hintNodes: fc.option(fc.constantFrom(['n1'], ['n1', 'n2']), { nil: undefined }),
    })
    .map(({ hintNodes, ...e }) => ({ ip, port, ...e, ...(hintNodes ? { hintNodes } : {}) }));

/** Sorted, unique endpoints on `count` of the addresses 0..span (two target ports). */
const endpointsArb = (count: number, span: number): fc.Arbitrary<EndpointEntry[]> =>
  fc
    .uniqueArray(fc.tuple(fc.integer({ min: 0, max: span }), fc.constantFrom(8080, 9090)), {
      minLength: count,
      maxLength: count,
      selector: ([i, p]) => `${i}|${p}`,
    })
    .chain((addrs) => fc.tuple(...addrs.map(([i, p]) => endpointArb(ipOf(i), p))))
    .map((eps) => [...eps].sort(byEndpointAddress));

const port = (name: string, endpoints: EndpointEntry[]): ServicePortEntry => ({
  endpoints,
  name,
  nodePort: 0,
  port: 80,
  protocol: 'TCP',
});

const entry = (ports: ServicePortEntry[], extra: Partial<ServiceEntry> = {}): ServiceEntry => ({
  ...big(0),
  ports,
  ...extra,
});

/** An edit of a sorted endpoint list: some removed, some changed, some added. */
const editArb = (eps: EndpointEntry[], span: number) =>
  fc
    .record({
      remove: fc.subarray(
        eps.map((_, i) => i),
        { maxLength: 6 },
      ),
      change: fc.subarray(
        eps.map((_, i) => i),
        { maxLength: 6 },
      ),
      add: fc.array(fc.tuple(fc.integer({ min: span + 1, max: span + 400 }), fc.constantFrom(8080, 9090)), {
        maxLength: 6,
      }),
      flip: fc.boolean(),
    })
    .map(({ remove, change, add, flip }) => {
      const gone = new Set(remove);
      const kept = eps
        .map((e, i) => (change.includes(i) ? { ...e, ready: !e.ready, hintZones: flip ? ['z9'] : [] } : e))
        .filter((_, i) => !gone.has(i));
      const seen = new Set(kept.map((e) => `${e.ip}|${e.port}`));
      for (const [i, p] of add) {
        const e = { ...eps[0]!, ip: ipOf(i), port: p };
        if (!seen.has(`${e.ip}|${p}`)) kept.push(e);
        seen.add(`${e.ip}|${p}`);
      }
      return kept.sort(byEndpointAddress);
    });

const SPAN = 5000;
const caseArb = fc
  .tuple(endpointsArb(PATCH_MIN_ENDPOINTS + 20, SPAN), endpointsArb(40, SPAN))
  .chain(([a, b]) =>
    fc.record({
      base: fc.constant(entry([port('http', a), port('metrics', b)])),
      nextA: editArb(a, SPAN),
      nextB: editArb(b, SPAN),
      shape: fc.constantFrom('same', 'port-added', 'port-dropped', 'port-renamed', 'head-changed'),
    }),
  )
  .map(({ base, nextA, nextB, shape }) => {
    let ports = [port('http', nextA), port('metrics', nextB)];
    if (shape === 'port-added') ports = [...ports, port('zz-new', nextB.slice(0, 3))];
    if (shape === 'port-dropped') ports = [ports[0]!];
    if (shape === 'port-renamed') ports = [ports[0]!, port('other', nextB)];
    const next = entry(
      ports,
      shape === 'head-changed' ? { affinityTimeoutSeconds: 30, clusterIPs: ['10.97.0.9'] } : {},
    );
    return { base, next, shape };
  });

/** No thresholds: a patch for every pair, to check rebuilding whatever changed. */
const ALWAYS = { minEndpoints: 0, maxShare: Number.POSITIVE_INFINITY };

describe('service patches', () => {
  it('apply(base, diff(base, next)) is next, bit for bit (property)', () => {
    fc.assert(
      fc.property(caseArb, ({ base, next, shape }) => {
        const patched = diffServiceEntry(base, next, contentHash(base), contentHash(next));
        // at most 18 of 130+ endpoints changed per port (a renamed port's 40 are all new: either way)
        if (shape !== 'port-renamed') expect(patched).toBeDefined();
        const p = diffServiceEntry(base, next, contentHash(base), contentHash(next), ALWAYS);
        const rebuilt = applyServicePatch(base, p!);
        expect(rebuilt).toEqual(next);
        expect(contentHash(rebuilt)).toBe(contentHash(next));
        // and the patch survives the wire: what a node decodes rebuilds the same entry
        const m = new VersionMaker();
        m.next({ upsertServices: [base] });
        const v = m.next({ upsertServices: [next] }).delta;
        const notice = patchNotice(v, [p!]);
        const decoded = decodePatchedDelta(notice!.payload);
        expect(decoded.ok).toBe(true);
        if (!decoded.ok) return;
        expect(decoded.value.delta.upsertServices).toEqual([]);
        expect(contentHash(applyServicePatch(base, decoded.value.servicePatches[0]!))).toBe(contentHash(next));
      }),
      { numRuns: 150, seed: 15 },
    );
  });

  it('a patch is a few hundred bytes where the entry is the whole service', () => {
    const base = big(5000);
    const eps = base.ports[0]!.endpoints;
    const next = entry([
      { ...base.ports[0]!, endpoints: [...eps.slice(0, 10), { ...eps[10]!, ready: false }, ...eps.slice(11)] },
    ]);
    const p = diffServiceEntry(base, next, contentHash(base), contentHash(next))!;
    expect(p.ports).toEqual([{ from: 0, remove: [], upsert: [{ ...eps[10]!, ready: false }] }]);
    const patchBytes = JSON.stringify(p).length;
    expect(patchBytes).toBeLessThan(1500);
    expect(JSON.stringify(next).length).toBeGreaterThan(500 * patchBytes);
  });

  it('is not made for a small service, nor for a change near the size of the entry', () => {
    const small = big(PATCH_MIN_ENDPOINTS - 1);
    const smallNext = big(PATCH_MIN_ENDPOINTS - 1, 1);
    expect(diffServiceEntry(small, smallNext, contentHash(small), contentHash(smallNext))).toBeUndefined();
    const wide = big(400);
    const moved = big(400, 170); // 170 added, 170 removed: 170 + 170/4 = 212.5 endpoints' worth, over 200 of 400
    expect(diffServiceEntry(wide, moved, contentHash(wide), contentHash(moved))).toBeUndefined();
    const nudged = big(400, 150); // 150 + 150/4 = 187.5, under 200
    expect(diffServiceEntry(wide, nudged, contentHash(wide), contentHash(nudged))).toBeDefined();
  });

  it('refuses, with one line each, a patch that does not fit the base it is given', () => {
    const base = big(300);
    const next = big(300, 5);
    const p = diffServiceEntry(base, next, contentHash(base), contentHash(next))!;
    const cases: [ServiceEntry | undefined, typeof p, RegExp][] = [
      [undefined, p, /patch of ns\/big: this node holds no entry to patch/],
      [big(300, 100), p, /removes 5 endpoints its base lacks/],
      [base, { ...p, ports: [{ ...p.ports[0]!, from: 3 }] }, /port 0 starts from port 3 of 1/],
      [base, { ...p, ports: [] }, /0 port patches for 1 ports/],
      [base, { ...p, head: { ...p.head, key: 'ns/other' } }, /its entry is ns\/other/],
      [
        base,
        { ...p, ports: [{ ...p.ports[0]!, upsert: [p.ports[0]!.upsert[0]!, p.ports[0]!.upsert[0]!] }] },
        /is upserted twice/,
      ],
      [base, { ...p, head: next }, /port 0 of its entry lists endpoints/],
    ];
    for (const [b, bad, message] of cases) {
      let error = '';
      try {
        applyServicePatch(b, bad);
      } catch (e) {
        error = (e as Error).message;
      }
      expect(error).toMatch(message);
      expect(error).not.toContain('\n');
    }
  });

  it('decoding refuses a malformed patch payload with one line naming the field', () => {
    const base = big(300);
    const next = big(300, 5);
    const m = new VersionMaker();
    m.next({ upsertServices: [base] });
    const v = m.next({ upsertServices: [next] }).delta;
    const p = diffServiceEntry(base, next, contentHash(base), contentHash(next))!;
    const good = JSON.parse(patchNotice(v, [p])!.payload) as Record<string, unknown> & { servicePatches: unknown[] };
    const withPatch = (q: object) => JSON.stringify({ ...good, servicePatches: [{ ...p, ...q }] });
    const bad: [string, RegExp][] = [
      ['{', /^patch: not JSON$/],
      [JSON.stringify({ ...good, servicePatches: [] }), /^patch: servicePatches: /],
      [withPatch({ base: 'nope' }), /^patch: servicePatches\.0\.base: /],
      [withPatch({ ports: [{ from: -2, remove: [], upsert: [] }] }), /^patch: servicePatches\.0\.ports\.0\.from: /],
      [withPatch({ ports: [{ from: 0, remove: [['10.0.0.1', 70000]], upsert: [] }] }), /ports\.0\.remove\.0\.1: /],
      [withPatch({ head: next }), /^patch: servicePatches\.0\.head\.ports\.0\.endpoints/],
      [
        JSON.stringify({ ...good, delta: { ...v.delta, upsertServices: [next] } }),
        /ns\/big is both upserted and patched/,
      ],
      [JSON.stringify({ ...good, servicePatches: [p, p] }), /^patch: ns\/big is patched twice$/],
    ];
    for (const [payload, message] of bad) {
      const r = decodePatchedDelta(payload);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error).toMatch(message);
        expect(r.error).not.toContain('\n');
      }
    }
    expect(decodePatchedDelta(JSON.stringify(good)).ok).toBe(true);
  });
});
