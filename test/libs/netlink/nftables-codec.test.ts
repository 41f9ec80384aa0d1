// nf_tables messages written in place (NlWriter) must carry exactly the bytes the attribute
// helpers of netlink-attrs.ts build, written out here attribute by attribute from nf_tables.h.
import { describe, expect, it } from 'vitest';
import { nlAttr, nlNested, strAttr, u8Attr } from '../../../libs/netlink/netlink-attrs.ts';
import {
  delChain,
  delSet,
  delTable,
  flushRules,
  newChain,
  newRule,
  newSet,
  newTable,
  nfgenmsg,
  setElems,
} from '../../../libs/netlink/index.ts';
import { NlWriter } from '../../../libs/netlink/netlink-writer.ts';

const be32 = (type: number, v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return nlAttr(type, b);
};
const payload = (...attrs: Buffer[]) => Buffer.concat([nfgenmsg(1), ...attrs]);
const t = { family: 1, table: 'sb' };
const data = (type: number, value: Buffer) => nlNested(type, [nlAttr(1, value)]);
const verdict = (type: number, code: number, chain?: string) =>
  nlNested(type, [nlNested(2, [be32(1, code), ...(chain ? [strAttr(2, chain)] : [])])]);
const expr = (name: string, ...body: Buffer[]) => nlNested(1, [strAttr(1, name), nlNested(2, body)]);

describe('nf_tables message encoding', () => {
  it('tables, chains, flushes and sets', () => {
    expect(newTable(t, 'x').payload).toEqual(payload(strAttr(1, 'sb'), be32(2, 0)));
    expect(delTable(t, 'x').payload).toEqual(payload(strAttr(1, 'sb')));
    expect(newChain(t, 'service-abc', undefined, 'x').payload).toEqual(
      payload(strAttr(1, 'sb'), strAttr(3, 'service-abc')),
    );
    expect(newChain(t, 'nat-output', { type: 'nat', hooknum: 3, priority: -100, policy: 1 }, 'x').payload).toEqual(
      payload(
        strAttr(1, 'sb'),
        strAttr(3, 'nat-output'),
        nlNested(4, [be32(1, 3), be32(2, -100)]),
        be32(5, 1),
        strAttr(7, 'nat'),
      ),
    );
    expect(delChain(t, 'c1', 'x').payload).toEqual(payload(strAttr(1, 'sb'), strAttr(3, 'c1')));
    expect(flushRules(t, 'c1', 'x').payload).toEqual(payload(strAttr(1, 'sb'), strAttr(2, 'c1')));
    expect(flushRules(t, undefined, 'x').payload).toEqual(payload(strAttr(1, 'sb')));
    const ud = Buffer.from('000402000000', 'hex');
    const ts = Buffer.alloc(8);
    ts.writeBigUInt64BE(60_000n);
    expect(
      newSet(t, { name: 'aff', flags: 0x30, keyType: 7, keyLen: 4, id: 9, timeoutMs: 60_000, userdata: ud }, 'x')
        .payload,
    ).toEqual(
      payload(
        strAttr(1, 'sb'),
        strAttr(2, 'aff'),
        be32(3, 0x30),
        be32(4, 7),
        be32(5, 4),
        be32(10, 9),
        nlAttr(11, ts),
        nlAttr(13, ud),
      ),
    );
    expect(
      newSet(
        t,
        { name: '__map%d', flags: 0xb, keyType: 4, keyLen: 4, dataType: 0xffffff00, dataLen: 0, id: 2, size: 3 },
        'x',
      ).payload,
    ).toEqual(
      payload(
        strAttr(1, 'sb'),
        strAttr(2, '__map%d'),
        be32(3, 0xb),
        be32(4, 4),
        be32(5, 4),
        be32(6, 0xffffff00),
        be32(7, 0),
        nlNested(9, [be32(1, 3)]),
        be32(10, 2),
      ),
    );
    expect(delSet(t, 'aff', 'x').payload).toEqual(payload(strAttr(1, 'sb'), strAttr(2, 'aff')));
  });

  it('set elements with values, verdicts and interval ends', () => {
    const key = Buffer.from([10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]);
    expect(
      setElems('new', t, 'service-ips', [{ key, data: { verdict: { code: 'goto', chain: 'svc' } } }], 'x', {
        excl: true,
      }).payload,
    ).toEqual(
      payload(
        strAttr(1, 'sb'),
        strAttr(2, 'service-ips'),
        nlNested(3, [nlNested(1, [data(1, key), verdict(2, -4, 'svc')])]),
      ),
    );
    const k2 = Buffer.from([0, 0, 0, 0]);
    expect(
      setElems(
        'new',
        t,
        '__set%d',
        [
          { key: k2, intervalEnd: true },
          { key: k2, data: { verdict: { code: 'drop' } } },
        ],
        'x',
        {
          setId: 5,
        },
      ).payload,
    ).toEqual(
      payload(
        strAttr(1, 'sb'),
        strAttr(2, '__set%d'),
        be32(4, 5),
        nlNested(3, [nlNested(1, [data(1, k2), be32(3, 1)]), nlNested(1, [data(1, k2), verdict(2, 0)])]),
      ),
    );
    expect(setElems('del', t, 'm', [], 'x').payload).toEqual(payload(strAttr(1, 'sb'), strAttr(2, 'm')));
  });

  it('rules: every expression kind we write', () => {
    const addr = Buffer.from([10, 1, 0, 1]);
    const msg = newRule(
      t,
      'c',
      [
        { type: 'meta', key: 15, dreg: 1 },
        { type: 'meta', key: 3, sreg: 1 },
        { type: 'cmp', sreg: 1, op: 0, data: Buffer.from([2]) },
        { type: 'payload', dreg: 1, base: 1, offset: 12, len: 4 },
        { type: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: addr, xor: Buffer.alloc(4) },
        { type: 'lookup', set: '__map%d', setId: 3, sreg: 1, dreg: 0, flags: 1 },
        { type: 'dynset', set: 'aff', op: 1, sregKey: 1 },
        { type: 'numgen', dreg: 1, modulus: 3, ngType: 1 },
        { type: 'immediate', dreg: 1, data: { value: addr } },
        { type: 'immediate', dreg: 0, data: { verdict: { code: 'jump', chain: 'mark' } } },
        { type: 'nat', natType: 1, family: 2, regAddrMin: 1, regProtoMin: 2, flags: 2 },
        { type: 'masq', flags: 0x10 },
        { type: 'reject', rejectType: 2, icmpCode: 1 },
        { type: 'ct', key: 0, dreg: 1 },
        { type: 'fib', dreg: 1, result: 3, flags: 1 },
      ],
      'x',
    );
    expect(msg.payload).toEqual(
      payload(
        strAttr(1, 'sb'),
        strAttr(2, 'c'),
        nlNested(4, [
          expr('meta', be32(2, 15), be32(1, 1)),
          expr('meta', be32(2, 3), be32(3, 1)),
          expr('cmp', be32(1, 1), be32(2, 0), data(3, Buffer.from([2]))),
          expr('payload', be32(1, 1), be32(2, 1), be32(3, 12), be32(4, 4)),
          expr('bitwise', be32(1, 1), be32(2, 1), be32(3, 4), data(4, addr), data(5, Buffer.alloc(4))),
          expr('lookup', strAttr(1, '__map%d'), be32(2, 1), be32(3, 0), be32(4, 3), be32(5, 1)),
          expr('dynset', strAttr(1, 'aff'), be32(3, 1), be32(4, 1)),
          expr('numgen', be32(1, 1), be32(2, 3), be32(3, 1), be32(4, 0)),
          expr('immediate', be32(1, 1), data(2, addr)),
          expr('immediate', be32(1, 0), verdict(2, -3, 'mark')),
          expr('nat', be32(1, 1), be32(2, 2), be32(3, 1), be32(5, 2), be32(7, 2)),
          expr('masq', be32(1, 0x10)),
          expr('reject', be32(1, 2), u8Attr(2, 1)),
          expr('ct', be32(2, 0), be32(1, 1)),
          expr('fib', be32(1, 1), be32(2, 3), be32(3, 1)),
        ]),
      ),
    );
  });

  it('the writer grows past its first buffer and keeps earlier bytes', () => {
    const w = new NlWriter(8);
    const at = w.nest(3);
    for (let i = 0; i < 100; i++) w.str(1, `name-${i}`);
    w.end(at);
    expect(w.copy()).toEqual(
      nlNested(
        3,
        Array.from({ length: 100 }, (_, i) => strAttr(1, `name-${i}`)),
      ),
    );
  });
});
