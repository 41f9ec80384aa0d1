import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  canonicalIp,
  ipFamily,
  readKubeObject,
  readsServingNilAsTrue,
  type Endpoint,
  type EndpointSliceObject,
  type ReadingRevision,
} from '../../../libs/model/index.ts';
import { prng } from '../eventlog/support/random-history.ts';

// The endpoint reader is the hot path of an initial list (every endpoint of the cluster). It was
// rewritten without a closure or a message text per endpoint, and with one shared list for the
// hints an endpoint does not have (issue 15 item 4, twelfth round). `reference` below is the
// reader as it was before, verbatim but for its helpers inlined: the new one must read every
// endpoint alike, and refuse every bad one with the same reason.

class Invalid extends Error {}
const fail = (reason: string): never => {
  throw new Invalid(reason);
};
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown, what: string): unknown[] =>
  v === undefined || v === null ? [] : Array.isArray(v) ? v : fail(`${what} must be a list`);
const ip = (v: unknown, what: string): string =>
  (typeof v === 'string' ? canonicalIp(v) : undefined) ?? fail(`${what}: invalid IP address ${JSON.stringify(v)}`);

function reference(rawEndpoints: unknown[], addressType: string, revision: ReadingRevision): Endpoint[] {
  return rawEndpoints.map((e, i): Endpoint => {
    if (!isObj(e)) return fail(`endpoints[${i}] must be an object`);
    const addresses = list(e.addresses, `endpoints[${i}].addresses`);
    if (addresses.length === 0) fail(`endpoints[${i}].addresses must not be empty`);
    const canon =
      addressType === 'FQDN'
        ? addresses.map(String)
        : addresses.map((a, j) => {
            const c = ip(a, `endpoints[${i}].addresses[${j}]`);
            if (ipFamily(c) !== addressType) fail(`endpoints[${i}].addresses[${j}]: ${c} is not ${addressType}`);
            return c;
          });
    const cond = isObj(e.conditions) ? e.conditions : {};
    const ready = cond.ready === undefined || cond.ready === null ? true : cond.ready === true;
    const servingNil = cond.serving === undefined || cond.serving === null;
    const serving = servingNil ? readsServingNilAsTrue(revision) || ready : cond.serving === true;
    const hintNames = (field: 'forZones' | 'forNodes'): string[] =>
      (isObj(e.hints) ? list(e.hints[field], `endpoints[${i}].hints.${field}`) : []).map((h) =>
        isObj(h) && typeof h.name === 'string' ? h.name : fail(`endpoints[${i}].hints.${field}: bad entry`),
      );
    return {
      addresses: canon,
      ready,
      serving,
      terminating: cond.terminating === true,
      nodeName: typeof e.nodeName === 'string' ? e.nodeName : '',
      zone: typeof e.zone === 'string' ? e.zone : '',
      hintZones: hintNames('forZones'),
      hintNodes: hintNames('forNodes'),
    };
  });
}

const slice = (addressType: string, endpoints: unknown[]) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'web-abc', namespace: 'prod', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType,
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  endpoints,
});

const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const ADDRESSES: unknown[] = ['10.1.2.3', '10.01.2.3', 'fd00::1', 'FD00:0::1', 'web.example', '', 'nope', 7, null, {}];
const FLAGS: unknown[] = [undefined, null, true, false, 'true', 1];
const NAMES: unknown[] = [undefined, null, 'node-1', 'a', '', 3, {}];
const HINT_LISTS: unknown[] = [
  undefined,
  null,
  [],
  [{ name: 'a' }],
  [{ name: 'b' }, { name: 'a' }],
  [{}],
  [7],
  'a',
  {},
];

function randomEndpoint(rnd: () => number): unknown {
  if (rnd() < 0.03) return pick(rnd, [null, 'x', [], 5]);
  const e: Record<string, unknown> = {};
  const r = rnd();
  e.addresses =
    r < 0.05
      ? pick(rnd, [undefined, null, [], 'x', {}])
      : Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => (rnd() < 0.8 ? ADDRESSES[0] : pick(rnd, ADDRESSES)));
  if (rnd() < 0.9)
    e.conditions =
      rnd() < 0.05
        ? pick(rnd, [null, 'x', []])
        : { ready: pick(rnd, FLAGS), serving: pick(rnd, FLAGS), terminating: pick(rnd, FLAGS) };
  if (rnd() < 0.9) e.nodeName = pick(rnd, NAMES);
  if (rnd() < 0.9) e.zone = pick(rnd, NAMES);
  if (rnd() < 0.4)
    e.hints =
      rnd() < 0.05 ? pick(rnd, [null, 'x', []]) : { forZones: pick(rnd, HINT_LISTS), forNodes: pick(rnd, HINT_LISTS) };
  return e;
}

function referenceRead(raw: unknown[], addressType: string, revision: ReadingRevision): Endpoint[] | string {
  try {
    return reference(raw, addressType, revision);
  } catch (e) {
    if (e instanceof Invalid) return e.message;
    throw e;
  }
}

describe('the endpoint reader', () => {
  it('reads every endpoint as the reader before it did, and refuses with the same reason (2 000 random slices)', () => {
    const rnd = prng(4012);
    let refused = 0;
    for (let n = 0; n < 2000; n++) {
      const addressType = pick(rnd, ['IPv4', 'IPv4', 'IPv6', 'FQDN']);
      const revision = pick(rnd, [1, 2, 3, 4] as const);
      const raw = Array.from({ length: Math.floor(rnd() * 4) }, () => randomEndpoint(rnd));
      const want = referenceRead(raw, addressType, revision);
      const got = readKubeObject(slice(addressType, raw), 'input', revision);
      if (typeof want === 'string') {
        refused++;
        expect(got.ok ? 'read' : got.rejection.reason, JSON.stringify(raw)).toBe(want);
      } else {
        expect(got.ok, JSON.stringify(raw)).toBe(true);
        const eps = (got as { object: EndpointSliceObject }).object.endpoints;
        if (!isDeepStrictEqual(eps, want)) expect(eps, JSON.stringify(raw)).toEqual(want);
      }
    }
    // both outcomes are exercised
    expect(refused).toBeGreaterThan(200);
    expect(refused).toBeLessThan(1800);
  });

  it('an endpoint without hints holds no lists of its own: one shared, frozen empty list', () => {
    const r = readKubeObject(
      slice('IPv4', [
        { addresses: ['10.1.2.3'], nodeName: 'n1' },
        { addresses: ['10.1.2.4'], hints: {} },
        { addresses: ['10.1.2.5'], hints: { forZones: [] } },
        { addresses: ['10.1.2.6'], hints: { forZones: [{ name: 'a' }] } },
      ]),
    );
    expect(r.ok).toBe(true);
    const [a, b, c, d] = (r as { object: EndpointSliceObject }).object.endpoints;
    const empty = a!.hintZones;
    expect(empty).toEqual([]);
    expect(Object.isFrozen(empty)).toBe(true);
    for (const l of [a!.hintNodes, b!.hintZones, b!.hintNodes, c!.hintZones, c!.hintNodes, d!.hintNodes])
      expect(l).toBe(empty);
    expect(d!.hintZones).toEqual(['a']);
  });
});

describe('the metadata reader', () => {
  it('an object without labels or annotations holds no maps of its own: one shared, frozen empty map', () => {
    const projected = readKubeObject({
      ...slice('IPv4', []),
      metadata: { name: 'a', namespace: 'prod', labels: { 'kubernetes.io/service-name': 'web' }, annotations: {} },
    });
    const node = readKubeObject({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels: { zone: 'a' } } });
    expect(projected.ok && node.ok).toBe(true);
    if (!projected.ok || !node.ok) return;
    const empty = node.object.meta.annotations;
    expect(empty).toEqual({});
    expect(Object.isFrozen(empty)).toBe(true);
    expect(projected.object.meta.annotations).toBe(empty);
    expect(node.object.meta.labels).toEqual({ zone: 'a' });
  });
});
