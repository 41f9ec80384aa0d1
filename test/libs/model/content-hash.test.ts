import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  canonicalIp,
  canonicalJson,
  canonicalJsonOf,
  cidrContains,
  contentHash,
  parseCidr,
} from '../../../libs/model/index.ts';

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}',
    );
  });
  it('refuses values with no JSON form', () => {
    expect(() => canonicalJson({ a: NaN })).toThrow(/non-finite/);
    expect(() => canonicalJson(new Map())).toThrow(/Map/);
  });
  it('gives equal bytes for equal values whatever the key order (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        expect(canonicalJson(reversed)).toBe(canonicalJson(obj));
        expect(JSON.parse(canonicalJson(obj))).toEqual(JSON.parse(JSON.stringify(obj)));
      }),
    );
  });
  it('writes integer-like keys in code-unit order too (not the order JSON.stringify takes them in)', () => {
    expect(canonicalJson({ '10': 1, '9': 2, a: { '2': 0, '10': 0 } })).toBe('{"10":1,"9":2,"a":{"10":0,"2":0}}');
    expect(canonicalJson([1, undefined, { b: undefined, a: 1 }])).toBe('[1,null,{"a":1}]');
    expect(canonicalJson({ a: new Date(0) })).toBe('{"a":{}}'); // a class instance: its own keys, no toJSON
    expect(() => canonicalJson({ a: () => 1 })).toThrow(/unsupported function/);
    expect(() => canonicalJson({ a: [Infinity] })).toThrow(/non-finite/);
  });
  it('writes the same text by its native fast path (keys already in order) as a reference serialiser (property)', () => {
    const reference = (v: unknown): string => {
      if (v === null || typeof v !== 'object') return JSON.stringify(v);
      if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : reference(x))).join(',')}]`;
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o)
        .filter((k) => o[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(o[k])}`).join(',')}}`;
    };
    const sortDeep = (v: unknown): unknown => {
      if (v === null || typeof v !== 'object') return v;
      if (Array.isArray(v)) return v.map(sortDeep);
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .sort()
          .map((k) => [k, sortDeep(o[k])]),
      );
    };
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(canonicalJson(v)).toBe(reference(v));
        expect(canonicalJson(sortDeep(v))).toBe(reference(v));
      }),
      { numRuns: 500 },
    );
  });
  it("canonicalJsonOf says stringified only when the canonical text is JSON.stringify's (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const r = canonicalJsonOf(v);
        expect(r.text).toBe(canonicalJson(v));
        if (r.stringified) expect(r.text).toBe(JSON.stringify(v));
      }),
      { numRuns: 500 },
    );
    expect(canonicalJsonOf({ a: 1, b: [{ c: 2 }] })).toEqual({ text: '{"a":1,"b":[{"c":2}]}', stringified: true });
    expect(canonicalJsonOf({ b: 1, a: 2 })).toEqual({ text: '{"a":2,"b":1}', stringified: false });
    expect(canonicalJsonOf({ a: { '10': 0, '9': 1 } }).stringified).toBe(false); // JSON.stringify puts 9 first
  });
  it('serialises a value whose keys are in order with one native JSON.stringify', () => {
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      const value = { a: [1, { b: 'x', c: null }], d: true };
      expect(canonicalJson(value)).toBe('{"a":[1,{"b":"x","c":null}],"d":true}');
      expect(stringify.mock.calls.map(([v]) => v)).toEqual([value]);
    } finally {
      stringify.mockRestore();
    }
  });
  it('hashes with SHA-256', () => {
    expect(contentHash({})).toBe('44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a');
  });
});

describe('addresses', () => {
  it('canonicalises IPv6 like inet_ntop (RFC 5952)', () => {
    expect(canonicalIp('FD00:0000:0000:0000:0000:0000:0000:0001')).toBe('fd00::1');
    expect(canonicalIp('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalIp('::ffff:192.0.2.1')).toBe('::ffff:c000:201');
    expect(canonicalIp('10.0.0.01')).toBeUndefined();
    expect(canonicalIp('fe80::1%eth0')).toBeUndefined();
  });
  it('checks dotted quads by hand: same answers as node:net plus the leading-zero rule (property), without splitting canonical ones', () => {
    const reference = (t: string): string | undefined =>
      isIP(t) === 4 && !t.split('.').some((p) => p.length > 1 && p.startsWith('0'))
        ? t
            .split('.')
            .map((p) => String(Number(p)))
            .join('.')
        : undefined;
    const part = fc.oneof(
      fc.nat(300).map(String),
      fc.nat(99).map((n) => `0${n}`),
      fc.constantFrom('', '-1', ' 1', '1a', '+1', '0000'),
    );
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 6 }), (parts) => {
        const t = parts.join('.');
        if (!t.includes(':')) expect(canonicalIp(t)).toBe(reference(t));
      }),
      { numRuns: 2000 },
    );
    for (const t of ['0.0.0.0', '255.255.255.255', '10.96.0.1']) expect(canonicalIp(t)).toBe(t);
    for (const t of ['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4.', '1..2.3', '1.2.3.4 ', '1.2.3.1000'])
      expect(canonicalIp(t)).toBeUndefined();
    const split = vi.spyOn(String.prototype, 'split');
    try {
      expect(canonicalIp('10.96.0.1')).toBe('10.96.0.1');
      expect(split).not.toHaveBeenCalled();
    } finally {
      split.mockRestore();
    }
  });
  it('parses and matches CIDRs, masking host bits', () => {
    const c = parseCidr('10.1.2.3/8')!;
    expect(c.text).toBe('10.0.0.0/8');
    expect(cidrContains(c, '10.200.0.1')).toBe(true);
    expect(cidrContains(c, '11.0.0.1')).toBe(false);
    expect(cidrContains(parseCidr('fd00::/16')!, 'fd00:1::5')).toBe(true);
    expect(cidrContains(parseCidr('fd00::/16')!, '10.0.0.1')).toBe(false);
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
  });
});
