// decodeSetElems reads a GETSETELEM reply in place (no attribute map per element: a whole-table
// read decodes ~300k elements at 10k services). Its definition is the attribute-map reading
// below, which it replaced: for any reply, well-formed or not, both give the same elements, or
// both refuse it with the same message.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeSetElems, nfgenmsg, type DumpedElement } from '../../../libs/netlink/index.ts';
import {
  decodeAttrList,
  decodeAttrs,
  getBe32,
  getStr,
  nlAttr,
  nlNested,
  optStr,
  strAttr,
} from '../../../libs/netlink/netlink-attrs.ts';
import { decodeData, type NftData, VERDICT_CODES } from '../../../libs/netlink/nftables-expr.ts';

/** The attribute-map reading (decodeSetElems before it read in place). */
function byAttributeMaps(payload: Buffer): { set: string; elements: DumpedElement[] } {
  const m = decodeAttrs(payload.subarray(4));
  const list = m.get(3);
  const elements =
    list === undefined
      ? []
      : decodeAttrList(list).map((el) => {
          const e = decodeAttrs(el.data);
          const k = e.get(1);
          const d = e.get(2);
          const key = k ? dataByAttributeMaps(k) : { value: Buffer.alloc(0) };
          return {
            key: 'value' in key ? key.value : Buffer.alloc(0),
            ...(d ? { data: dataByAttributeMaps(d) } : {}),
            intervalEnd: e.has(3) ? (getBe32(e, 3) & 1) !== 0 : false,
          };
        });
  return { set: optStr(m, 2) ?? '', elements };
}

/** The attribute-map reading of an NFTA_DATA_* nest (decodeData before it read in place). */
function dataByAttributeMaps(buf: Buffer): NftData {
  const m = decodeAttrs(buf);
  const v = m.get(2);
  if (v) {
    const vm = decodeAttrs(v);
    const code = getBe32(vm, 1, 'NFTA_VERDICT_CODE') | 0;
    const name = (Object.keys(VERDICT_CODES) as (keyof typeof VERDICT_CODES)[]).find((k) => VERDICT_CODES[k] === code);
    if (name === 'jump' || name === 'goto')
      return { verdict: { code: name, chain: getStr(vm, 2, 'NFTA_VERDICT_CHAIN') } };
    if (name === undefined || name === 'break') throw new Error(`unknown verdict code ${code}`);
    return { verdict: { code: name } };
  }
  return { value: Buffer.from(m.get(1) ?? Buffer.alloc(0)) };
}

const be32 = (type: number, v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return nlAttr(type, b);
};
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((u) => Buffer.from(u));
const chainName = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
const codes = Object.values(VERDICT_CODES) as number[];

/** An NFTA_DATA_* nest's content: a value, a verdict (known codes mostly), both, or odd attributes. */
const dataNest: fc.Arbitrary<Buffer[]> = fc.oneof(
  bytes(20).map((v) => [nlAttr(1, v)]),
  fc
    .tuple(fc.oneof(fc.constantFrom(...codes), fc.integer({ min: -8, max: 8 })), fc.option(chainName), fc.boolean())
    .map(([code, chain, nul]) => [
      nlNested(2, [
        be32(1, code),
        ...(chain === null ? [] : [nul ? strAttr(2, chain) : nlAttr(2, Buffer.from(chain))]),
      ]),
    ]),
  fc
    .array(fc.tuple(fc.integer({ min: 0, max: 4 }), bytes(8)), { maxLength: 3 })
    .map((as) => as.map(([t, v]) => nlAttr(t, v))),
);

/** One NFTA_LIST_ELEM's attributes: key, data, flags (short ones too) and others, in any order, repeated. */
const element: fc.Arbitrary<Buffer> = fc
  .array(
    fc.oneof(
      dataNest.map((d) => nlNested(1, d)),
      dataNest.map((d) => nlNested(2, d)),
      fc.integer({ min: 0, max: 3 }).map((f) => be32(3, f)),
      bytes(3).map((b) => nlAttr(3, b)),
      fc.tuple(fc.integer({ min: 4, max: 9 }), bytes(8)).map(([t, v]) => nlAttr(t, v)),
    ),
    { maxLength: 5 },
  )
  .map((attrs) => nlNested(1, attrs));

const reply: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.option(chainName),
    fc.array(element, { maxLength: 6 }),
    fc.boolean(),
    fc.array(fc.tuple(fc.integer({ min: 4, max: 9 }), bytes(6)), { maxLength: 2 }),
  )
  .map(([set, els, withList, extra]) =>
    Buffer.concat([
      nfgenmsg(1),
      strAttr(1, 'sb'),
      ...(set === null ? [] : [strAttr(2, set)]),
      ...(withList ? [nlNested(3, els)] : []),
      ...extra.map(([t, v]) => nlAttr(t, v)),
    ]),
  );

/** The same reading, or the same refusal. */
function outcome(read: (p: Buffer) => unknown, p: Buffer): unknown {
  try {
    return { ok: read(p) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

describe('decodeSetElems (read in place)', () => {
  it('reads every reply as the attribute maps do', () => {
    fc.assert(
      fc.property(reply, (p) => {
        expect(outcome(decodeSetElems, p)).toEqual(outcome(byAttributeMaps, p));
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses a damaged reply with the attribute maps' message: cut short or a length rewritten", () => {
    fc.assert(
      fc.property(reply, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 0xffff }), (p, cut, at, len) => {
        const short = p.subarray(0, cut % (p.length + 1));
        expect(outcome(decodeSetElems, short)).toEqual(outcome(byAttributeMaps, short));
        const bent = Buffer.from(p);
        const off = 4 + (at % Math.max(1, p.length - 5));
        bent.writeUInt16LE(len, off);
        expect(outcome(decodeSetElems, bent)).toEqual(outcome(byAttributeMaps, bent));
      }),
      { numRuns: 2000 },
    );
  });

  it('reads every NFTA_DATA nest as the attribute maps do (decodeData: rules read them too)', () => {
    fc.assert(
      fc.property(dataNest, fc.nat(), (attrs, cut) => {
        const nest = Buffer.concat(attrs);
        const short = nest.subarray(0, cut % (nest.length + 1));
        expect(outcome(decodeData, nest)).toEqual(outcome(dataByAttributeMaps, nest));
        expect(outcome(decodeData, short)).toEqual(outcome(dataByAttributeMaps, short));
      }),
      { numRuns: 2000 },
    );
  });

  it('copies keys and values out of the reply', () => {
    const p = Buffer.concat([
      nfgenmsg(1),
      strAttr(2, 'm'),
      nlNested(3, [
        nlNested(1, [nlNested(1, [nlAttr(1, Buffer.from([10, 0, 0, 1]))]), nlNested(2, [nlAttr(1, Buffer.from([7]))])]),
      ]),
    ]);
    const [e] = decodeSetElems(p).elements;
    p.fill(0xff);
    expect(e).toEqual({ key: Buffer.from([10, 0, 0, 1]), data: { value: Buffer.from([7]) }, intervalEnd: false });
  });
});
