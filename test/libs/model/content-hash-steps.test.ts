import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJsonHashSteps, canonicalJsonOf, runSteps, sha256Hex } from '../../../libs/model/index.ts';

/** The one-call forms: what the stepped one must give, byte for byte. */
const oneCall = (v: unknown) => {
  const r = canonicalJsonOf(v);
  return { text: r.text, stringified: r.stringified, hash: sha256Hex(r.text) };
};
const steps = (v: unknown) => {
  let n = 0;
  const it = canonicalJsonHashSteps(v);
  for (;;) {
    const r = it.next();
    if (r.done) return { ...r.value, steps: n };
    n++;
  }
};

const endpoint = (i: number) => ({
  hintZones: i % 7 === 0 ? ['z-é', 'z-😀'] : [],
  ip: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
  nodeName: i % 3 ? `node-${i % 5}` : '',
  port: 8080,
  ready: i % 2 === 0,
  serving: true,
  terminating: false,
  zone: undefined, // dropped from the text
});
const entry = (n: number) => ({
  key: 'default/big',
  ports: [
    { endpoints: Array.from({ length: n }, (_, i) => endpoint(i)), name: 'a', port: 80 },
    { endpoints: Array.from({ length: 3 }, (_, i) => endpoint(i)), name: 'b', port: 81 },
  ],
  topologyAware: false,
});

describe('canonicalJsonHashSteps (probe10 H9)', () => {
  it('gives the text, flag and hash of the one-call forms, in several steps for a large value', () => {
    const v = entry(25_000);
    const r = steps(v);
    expect({ text: r.text, stringified: r.stringified, hash: r.hash }).toEqual(oneCall(v));
    expect(r.stringified).toBe(true);
    expect(r.steps).toBeGreaterThanOrEqual(20); // ~10 units an endpoint, 10 000 units a step
  });

  it('keys out of order, undefined elements, null-prototype objects, dates: the canonical text, not stringified', () => {
    const bare = Object.assign(Object.create(null) as object, { y: 1, x: [undefined, 2] });
    const v = {
      z: Array.from({ length: 12_000 }, (_, i) => (i === 5 ? undefined : i % 2 ? { b: i, a: [i] } : `s${i}\u{1F600}`)),
      a: { when: new Date(0), bare, big: Array.from({ length: 11_000 }, (_, i) => ({ q: i })) },
    };
    const r = steps(v);
    expect({ text: r.text, stringified: r.stringified, hash: r.hash }).toEqual(oneCall(v));
    expect(r.stringified).toBe(false);
    expect(r.steps).toBeGreaterThan(1);
  });

  it('matches the one-call forms on any JSON value (property), and runSteps gives the same', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(runSteps(canonicalJsonHashSteps(v))).toEqual(oneCall(v));
      }),
    );
  });

  it('refuses what canonicalJson refuses', () => {
    expect(() =>
      runSteps(canonicalJsonHashSteps({ a: Array.from({ length: 20_000 }, (_, i) => (i === 19_999 ? NaN : i)) })),
    ).toThrow(/non-finite/);
    expect(() => runSteps(canonicalJsonHashSteps({ a: new Map() }))).toThrow(/Map/);
  });
});
