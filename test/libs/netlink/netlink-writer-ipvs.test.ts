// NlWriter's host-order and in-place attributes (what the IPVS codec writes its requests with)
// produce exactly the bytes of netlink-attrs.ts's per-attribute helpers, whatever the nesting.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ipToBytes, ipToUnion16, writeIpBytes } from '../../../libs/netlink/ip-address.ts';
import { be16Attr, nlAttr, nlNested, strAttr, u16Attr, u32Attr } from '../../../libs/netlink/netlink-attrs.ts';
import { NlWriter } from '../../../libs/netlink/netlink-writer.ts';

type Item =
  | { k: 'u16' | 'u32' | 'be16'; type: number; v: number }
  | { k: 'str'; type: number; s: string }
  | { k: 'ip'; type: number; ip: string }
  | { k: 'nest'; type: number; items: Item[] };

const type = fc.integer({ min: 1, max: 30 });
const { item } = fc.letrec<{ item: Item }>((tie) => ({
  item: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ k: fc.constant('u16' as const), type, v: fc.integer({ min: 0, max: 0xffff }) }),
    fc.record({ k: fc.constant('u32' as const), type, v: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({ k: fc.constant('be16' as const), type, v: fc.integer({ min: 0, max: 0xffff }) }),
    fc.record({ k: fc.constant('str' as const), type, s: fc.string({ maxLength: 20 }) }),
    fc.record({ k: fc.constant('ip' as const), type, ip: fc.oneof(fc.ipV4(), fc.ipV6()) }),
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
    case 'ip':
      return nlAttr(i.type, ipToUnion16(i.ip));
    case 'nest':
      return nlNested(i.type, i.items.map(helpers));
  }
}

function write(w: NlWriter, i: Item): void {
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
    case 'ip':
      w.fixed(i.type, 16, (buf, at) => writeIpBytes(i.ip, buf, at));
      return;
    case 'nest': {
      const at = w.nest(i.type);
      for (const c of i.items) write(w, c);
      w.end(at);
    }
  }
}

describe('NlWriter (IPVS attributes)', () => {
  test('same bytes as the per-attribute helpers, reusing one (dirty, growing) buffer', () => {
    const w = new NlWriter(8);
    fc.assert(
      // A fixed header of whole 4-byte words (genl's is 4 bytes): NlWriter pads from the message start.
      fc.property(
        fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { maxLength: 2 }),
        fc.array(item, { maxLength: 8 }),
        (words, items) => {
          const head = Buffer.concat(words);
          w.reset().raw(head);
          for (const i of items) write(w, i);
          expect(w.copy().toString('hex')).toBe(Buffer.concat([head, ...items.map(helpers)]).toString('hex'));
        },
      ),
    );
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
