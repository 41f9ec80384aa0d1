// Attribute and message framing (libs/netlink/netlink-attrs.ts, netlink-message.ts).
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  NLA_F_NESTED,
  be16Attr,
  decodeAttrList,
  decodeAttrs,
  getBe16,
  getStr,
  getU32,
  nlAttr,
  nlNested,
  strAttr,
  u32Attr,
} from '../../../libs/netlink/netlink-attrs.ts';
import {
  NLMSG_ERROR,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  decodeErrorPayload,
  decodeMessages,
  encodeErrorPayload,
  encodeMessage,
} from '../../../libs/netlink/netlink-message.ts';
import { errnoName } from '../../../libs/netlink/errno-name.ts';

describe('attributes', () => {
  test('layout matches struct nlattr: len, type, payload, 4-byte padding', () => {
    expect(strAttr(6, 'rr').toString('hex')).toBe('0700060072720000');
    expect(be16Attr(4, 80).toString('hex')).toBe('0600040000500000');
    expect(be16Attr(4, 80, true).toString('hex')).toBe('0600044000500000'); // NLA_F_NET_BYTEORDER
    expect(nlNested(1, [u32Attr(2, 1)]).toString('hex')).toBe('0c000180' + '0800020001000000');
  });

  test('round trip of arbitrary attribute lists', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ type: fc.integer({ min: 1, max: 0x3fff }), data: fc.uint8Array({ maxLength: 40 }) }), {
          maxLength: 10,
        }),
        (attrs) => {
          const decoded = decodeAttrList(Buffer.concat(attrs.map((a) => nlAttr(a.type, a.data))));
          expect(decoded.map((d) => ({ type: d.type, data: new Uint8Array(d.data) }))).toEqual(attrs);
        },
      ),
    );
  });

  test('nested flag is stripped from the type and reported', () => {
    const [a] = decodeAttrList(nlNested(3, [strAttr(1, 'x')]));
    expect(a).toMatchObject({ type: 3, nested: true, netByteOrder: false });
    expect(decodeAttrs(a!.data).get(1)?.toString()).toBe('x\0');
    expect(NLA_F_NESTED).toBe(0x8000);
  });

  test('malformed input and missing attributes give clear errors', () => {
    expect(() => decodeAttrList(Buffer.from('ff000100', 'hex'))).toThrow(
      /malformed netlink attribute at offset 0: length 255/,
    );
    expect(() => decodeAttrList(Buffer.from('02000100', 'hex'))).toThrow(/length 2/);
    const m = decodeAttrs(Buffer.concat([be16Attr(4, 443), strAttr(6, 'wrr')]));
    expect(getBe16(m, 4)).toBe(443);
    expect(getStr(m, 6)).toBe('wrr');
    expect(() => getU32(m, 9, 'IPVS_SVC_ATTR_NETMASK')).toThrow('missing attribute IPVS_SVC_ATTR_NETMASK');
    expect(() => getU32(m, 4, 'PORT')).toThrow('attribute PORT is 2 bytes, expected 4');
  });
});

describe('messages', () => {
  test('nlmsghdr layout and multi-message datagrams', () => {
    const one = encodeMessage({ type: 0x24, flags: 0x5, seq: 7, payload: Buffer.from([1, 2, 3]) });
    expect(one.toString('hex')).toBe('13000000' + '2400' + '0500' + '07000000' + '00000000' + '01020300');
    const two = encodeMessage({ type: 3, flags: 2, seq: 8, pid: 99, payload: Buffer.alloc(4) });
    const msgs = decodeMessages(Buffer.concat([one, two]));
    expect(msgs.map((m) => [m.type, m.flags, m.seq, m.pid, m.payload.length])).toEqual([
      [0x24, 5, 7, 0, 3],
      [3, 2, 8, 99, 4],
    ]);
    expect(() => decodeMessages(Buffer.from('40000000000000000000000000000000', 'hex'))).toThrow(
      /malformed netlink message/,
    );
  });

  test('NLMSG_ERROR: errno, echoed request, ACK (0)', () => {
    // struct nlmsgerr { int error = -17; struct nlmsghdr msg = {len 16, type 0x1c, flags 5, seq 42, pid 0} }
    const fixture = Buffer.from('efffffff' + '10000000' + '1c00' + '0500' + '2a000000' + '00000000', 'hex');
    expect(decodeErrorPayload(fixture)).toEqual({ errno: 17, requestType: 0x1c, requestSeq: 42 });
    expect(encodeErrorPayload(17, { type: 0x1c, flags: 5, seq: 42 })).toEqual(fixture);
    expect(decodeErrorPayload(encodeErrorPayload(0, { type: 1, flags: 0, seq: 1 })).errno).toBe(0);
    expect(NLMSG_ERROR).toBe(2);
  });

  test('extended ack message text is decoded', () => {
    const base = encodeErrorPayload(22, { type: 16, flags: 5, seq: 3 });
    const withTlv = Buffer.concat([base, strAttr(1, 'Unknown device type')]);
    expect(decodeErrorPayload(withTlv, NLM_F_ACK_TLVS | NLM_F_CAPPED)).toEqual({
      errno: 22,
      requestType: 16,
      requestSeq: 3,
      extMessage: 'Unknown device type',
    });
  });

  test('errno names', () => {
    expect(errnoName(17)).toBe('EEXIST');
    expect(errnoName(3)).toBe('ESRCH');
    expect(errnoName(2)).toBe('ENOENT');
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(errnoName(105)).toBe('ENOBUFS');
    expect(errnoName(9999)).toBe('E9999');
  });
});
