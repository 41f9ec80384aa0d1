// AttrWriter (one buffer per message) writes exactly the bytes of the per-attribute helpers.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ipToBytes, writeIpBytes } from '../../../libs/netlink/ip-address.ts';
import {
  AttrWriter,
  be16Attr,
  nlAttr,
  nlNested,
  strAttr,
  u16Attr,
  u32Attr,
} from '../../../libs/netlink/netlink-attrs.ts';

type Item =
  | { k: 'u16' | 'u32' | 'be16'; type: number; v: number }
  | { k: 'str'; type: number; s: string }
  | { k: 'bytes'; type: number; b: Uint8Array }
  | { k: 'nest'; type: number; items: Item[] };

const type = fc.integer({ min: 1, max: 30 });
const { item } = fc.letrec<{ item: Item }>((tie) => ({
  item: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ k: fc.constant('u16' as const), type, v: fc.integer({ min: 0, max: 0xffff }) }),
    fc.record({ k: fc.constant('u32' as const), type, v: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({ k: fc.constant('be16' as const), type, v: fc.integer({ min: 0, max: 0xffff }) }),
    fc.record({ k: fc.constant('str' as const), type, s: fc.string({ maxLength: 20 }) }),
    fc.record({ k: fc.constant('bytes' as const), type, b: fc.uint8Array({ maxLength: 40 }) }),
    fc.record({ k: fc.constant('nest' as const), type, items: fc.array(tie('item'), { maxLength: 4 }) }),
  ),
}));

function helpers(i: Item): Buffer {
  switch (i.k) {
    case 'u16':
      return u16Attr(i.type, i.v);
    case 'u32':
      return u32Attr(i.type, i.v);
    case 'be16':
      return be16Attr(i.type, i.v);
    case 'str':
      return strAttr(i.type, i.s);
    case 'bytes':
      return nlAttr(i.type, i.b);
    case 'nest':
      return nlNested(i.type, i.items.map(helpers));
  }
}

function write(w: AttrWriter, i: Item): void {
  switch (i.k) {
    case 'u16':
      w.u16(i.type, i.v);
      return;
    case 'u32':
      w.u32(i.type, i.v);
      return;
    case 'be16':
      w.be16(i.type, i.v);
      return;
    case 'str':
      w.str(i.type, i.s);
      return;
    case 'bytes':
      w.bytes(i.type, i.b);
      return;
    case 'nest':
      w.begin(i.type);
      for (const c of i.items) write(w, c);
      w.end();
  }
}

describe('AttrWriter', () => {
  test('same bytes as the per-attribute helpers, whatever the nesting, growing from a tiny buffer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), fc.array(item, { maxLength: 8 }), (head, items) => {
        const w = new AttrWriter(4).raw(head);
        for (const i of items) write(w, i);
        expect(w.finish().toString('hex')).toBe(Buffer.concat([head, ...items.map(helpers)]).toString('hex'));
      }),
    );
  });

  test('refuses an unbalanced nest', () => {
    expect(() => new AttrWriter().end()).toThrow(/without begin/);
    expect(() => new AttrWriter().begin(1).finish()).toThrow(/still open/);
  });

  test('writeIpBytes writes what ipToBytes returns', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const buf = new Uint8Array(20);
        writeIpBytes(ip, buf, 2);
        const want = ipToBytes(ip);
        expect(Buffer.from(buf.subarray(2, 2 + want.length)).toString('hex')).toBe(want.toString('hex'));
      }),
    );
  });
});
