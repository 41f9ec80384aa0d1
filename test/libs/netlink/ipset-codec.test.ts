// ipset nfnetlink codec against layouts derived from linux/netfilter/ipset/ip_set.h.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  IpsetCmd,
  decodeEntryData,
  decodeListMessage,
  decodeProtocolReply,
  decodeAdtErrorLine,
  encodeAdt,
  encodeAdtBatch,
  encodeCreate,
  encodeDestroy,
  encodeEntryData,
  encodeList,
  mergeListChunks,
} from '../../../libs/netlink/ipset-codec.ts';
import {
  be16Attr,
  be32Attr,
  decodeAttrList,
  decodeAttrs,
  nlNested,
  strAttr,
  u8Attr,
} from '../../../libs/netlink/netlink-attrs.ts';
import { encodeMessage, NLM_F_EXCL } from '../../../libs/netlink/netlink-message.ts';
import { describeIpsetError } from '../../../libs/netlink/ipset-errors.ts';
import type { IpsetEntry } from '../../../libs/netlink/ipset-types.ts';

// nfgenmsg {AF_INET, NFNETLINK_V0, res_id 0}; PROTOCOL 7; SETNAME "S"; DATA (nested) with
// IP (nested IPADDR_IPV4, net byte order), PORT (be16, net byte order), PROTO (u8).
const ADD_FIXTURE =
  '02000000' +
  '05000100' +
  '07000000' +
  '06000200' +
  '53000000' +
  '20000780' +
  '0c000180' +
  '08000140' +
  '0a000001' +
  '06000440' +
  '0050' +
  '0000' +
  '05000700' +
  '06000000';

describe('ipset codec', () => {
  test('ADD hash:ip,port 10.0.0.1,tcp:80: bytes, message type and EXCL', () => {
    const r = encodeAdt(7, IpsetCmd.ADD, 'S', { ip: '10.0.0.1', proto: 'tcp', port: 80 });
    expect(r.payload.toString('hex')).toBe(ADD_FIXTURE);
    expect(r.type).toBe((6 << 8) | 9);
    expect(r.flags).toBe(NLM_F_EXCL);
    expect(encodeAdt(7, IpsetCmd.ADD, 'S', { ip: '10.0.0.1' }, true).flags).toBe(0); // -exist
    expect(encodeAdt(7, IpsetCmd.TEST, 'S', { ip: '10.0.0.1' }).flags).toBe(0);
  });

  test('CREATE carries type, revision, family and net-order DATA', () => {
    const r = encodeCreate(7, 7, {
      name: 'K',
      type: 'hash:ip,port',
      family: 'inet6',
      hashSize: 1024,
      maxElem: 65536,
      comment: true,
    });
    expect(r.payload.subarray(0, 1)[0]).toBe(10); // nfgen_family AF_INET6
    const hex = r.payload.toString('hex');
    expect(hex).toContain('11000300' + Buffer.from('hash:ip,port\0').toString('hex')); // TYPENAME
    expect(hex).toContain('05000400' + '07000000'); // REVISION 7
    expect(hex).toContain('05000500' + '0a000000'); // FAMILY 10
    expect(hex).toContain('08001240' + '00000400'); // HASHSIZE be32 1024, NET_BYTEORDER
    expect(hex).toContain('08001340' + '00010000'); // MAXELEM 65536
    expect(hex).toContain('08000840' + '00000010'); // CADT_FLAGS WITH_COMMENT
    const bitmap = encodeCreate(7, 3, {
      name: 'P',
      type: 'bitmap:port',
      range: { from: 30000, to: 32767 },
    }).payload.toString('hex');
    expect(bitmap.slice(0, 2)).toBe('00'); // NFPROTO_UNSPEC
    expect(bitmap).toContain('06000440' + '7530' + '0000' + '06000540' + '7fff');
  });

  test('entry data round trip for every shape', () => {
    const v4 = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `10.${a}.${b}.1`);
    const proto = fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const);
    const port = fc.integer({ min: 0, max: 65535 });
    const entry: fc.Arbitrary<IpsetEntry> = fc.oneof(
      v4.map((ip) => ({ ip })),
      fc.record({ ip: v4, cidr: fc.integer({ min: 1, max: 32 }) }),
      fc.record({ ip: v4, proto, port }),
      fc.record({ ip: v4, proto, port, ip2: v4 }),
      fc.record({
        ip: v4,
        proto,
        port,
        ip2: v4,
        cidr2: fc.integer({ min: 1, max: 32 }),
        comment: fc.string({ maxLength: 20 }).filter((s) => !s.includes('\0')),
      }),
      fc.record({
        ip: fc.constant('fd00::1'),
        proto,
        port,
        ip2: fc.constant('fd00:1::'),
        cidr2: fc.integer({ min: 1, max: 128 }),
      }),
      port.map((p) => ({ port: p })),
    );
    fc.assert(
      fc.property(entry, (e) => {
        const data = encodeEntryData(e);
        expect(decodeEntryData(data.subarray(4))).toEqual(e);
      }),
    );
  });

  test('decodes a hand-built LIST reply: header chunk, then a continuation chunk', () => {
    const nf = Buffer.from('02000000', 'hex');
    const entry = (ip: string, port: number) =>
      nlNested(7, [nlNested(1, [Buffer.from(`08000140${ip}`, 'hex')]), be16Attr(4, port, true), u8Attr(7, 17)]);
    const first = Buffer.concat([
      nf,
      u8Attr(1, 7),
      strAttr(2, 'KUBE-CLUSTER-IP'),
      strAttr(3, 'hash:ip,port'),
      u8Attr(4, 7),
      u8Attr(5, 2),
      nlNested(7, [
        be32Attr(18, 1024, true),
        be32Attr(19, 65536, true),
        u8Attr(21, 12),
        be32Attr(17, 0x56885ee0, true),
        be32Attr(25, 0, true),
        be32Attr(26, 400, true),
        be32Attr(24, 2, true),
      ]),
      nlNested(8, [entry('0a640001', 53)]),
    ]);
    const second = Buffer.concat([
      nf,
      u8Attr(1, 7),
      strAttr(2, 'KUBE-CLUSTER-IP'),
      nlNested(8, [entry('0a640002', 53)]),
    ]);
    const chunks = [decodeListMessage(first), decodeListMessage(second)];
    expect(chunks[1]!.header).toBeUndefined();
    expect(mergeListChunks(chunks)).toEqual([
      {
        header: {
          name: 'KUBE-CLUSTER-IP',
          type: 'hash:ip,port',
          family: 'inet',
          revision: 7,
          comment: false,
          hashSize: 1024,
          maxElem: 65536,
          bucketSize: 12,
          initval: 0x56885ee0,
          references: 0,
          memSize: 400,
          elements: 2,
        },
        entries: [
          { ip: '10.100.0.1', proto: 'udp', port: 53 },
          { ip: '10.100.0.2', proto: 'udp', port: 53 },
        ],
      },
    ]);
    expect(() => mergeListChunks([chunks[1]!])).toThrow('no header received for set "KUBE-CLUSTER-IP"');
  });

  test('protocol reply, dump request, and refusal of dangerous or bad requests', () => {
    expect(decodeProtocolReply(Buffer.concat([Buffer.alloc(4), u8Attr(1, 7), u8Attr(10, 6)]))).toEqual({
      protocol: 7,
      protocolMin: 6,
    });
    expect(encodeList(7).dump).toBe(true);
    expect(() => encodeDestroy(7, '')).toThrow(/invalid ipset name ""/); // empty name would destroy every set
    expect(() => encodeAdt(7, 9, 'S', {})).toThrow('empty ipset element');
    expect(() => encodeAdt(7, 9, 'S', { ip: '10.0.0.1', proto: 'icmp' as never, port: 0 })).toThrow(
      /unsupported ipset protocol "icmp"/,
    );
    expect(() => encodeAdt(7, 9, 'S', { ip: '10.0.0.1', proto: 'tcp', port: 1, ip2: 'fd00::1' })).toThrow(
      /different families/,
    );
    expect(() => encodeCreate(7, 1, { name: 'x', type: 'hash:mac' as never })).toThrow(
      /unsupported ipset type "hash:mac"/,
    );
    expect(() => encodeCreate(7, 1, { name: 'x', type: 'bitmap:port', range: { from: 10, to: 5 } })).toThrow(
      /range end 5/,
    );
  });

  test('error codes have names and readable text', () => {
    expect(describeIpsetError(4103, 'add')).toEqual({
      code: 'IPSET_ERR_EXIST',
      detail: "element cannot be added to the set: it's already added",
    });
    expect(describeIpsetError(4102, 'swap').code).toBe('IPSET_ERR_TYPE_MISMATCH');
    expect(describeIpsetError(4352, 'add', 'hash:ip').code).toBe('IPSET_ERR_HASH_FULL');
    expect(describeIpsetError(4352, 'add', 'bitmap:port').code).toBe('IPSET_ERR_BITMAP_RANGE');
    expect(describeIpsetError(4352, 'add').code).toBe('IPSET_ERR_HASH_FULL|IPSET_ERR_BITMAP_RANGE');
    expect(describeIpsetError(2, 'add')).toEqual({
      code: 'ENOENT',
      detail: 'the set with the given name does not exist',
    });
  });

  test('ADD of several elements in one message: ADT nest of DATA nests, each with its LINENO', () => {
    const r = encodeAdtBatch(7, IpsetCmd.ADD, 'S', [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }]);
    expect(r.payload.toString('hex')).toBe(
      '02000000' + // nfgenmsg AF_INET
        '05000100' +
        '07000000' + // PROTOCOL 7
        '06000200' +
        '53000000' + // SETNAME "S"
        '08000900' +
        '00000000' + // command-level LINENO (required with ADT; the kernel writes the refused one here)
        '34000880' + // ADT, nested, 52 bytes
        '18000780' +
        '0c000180' +
        '08000140' +
        '0a000001' +
        '08000900' +
        '01000000' + // DATA: IP 10.0.0.1, LINENO 1
        '18000780' +
        '0c000180' +
        '08000140' +
        '0a000002' +
        '08000900' +
        '02000000', // DATA: IP 10.0.0.2, LINENO 2
    );
    expect(r.type).toBe((6 << 8) | 9);
    expect(r.flags).toBe(NLM_F_EXCL);
    expect(r.dump).toBe(false);
    expect(encodeAdtBatch(7, IpsetCmd.DEL, 'S', [{ ip: '10.0.0.1' }], true)).toMatchObject({
      type: (6 << 8) | 10,
      flags: 0,
    });
    expect(encodeAdtBatch(7, IpsetCmd.ADD, 'S', [{ ip: 'fd00::1' }]).payload[0]).toBe(10); // AF_INET6
    expect(() => encodeAdtBatch(7, IpsetCmd.ADD, 'S', [])).toThrow('empty ipset batch');
    expect(() => encodeAdtBatch(7, IpsetCmd.ADD, 'S', [{ ip: '10.0.0.1' }, { ip: 'fd00::1' }])).toThrow(
      /element 2 of the batch is of another address family/,
    );
    expect(() => encodeAdtBatch(7, IpsetCmd.ADD, 'x'.repeat(40), [{ ip: '10.0.0.1' }])).toThrow(/invalid ipset name/);
  });

  test('each element of a batch is the single-element DATA plus its LINENO (property)', () => {
    const v4 = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `10.${a}.${b}.1`);
    const entry: fc.Arbitrary<IpsetEntry> = fc.oneof(
      v4.map((ip) => ({ ip })),
      fc
        .tuple(v4, fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const), fc.integer({ min: 0, max: 65535 }))
        .map(([ip, proto, port]) => ({ ip, proto, port })),
      fc.tuple(v4, fc.integer({ min: 1, max: 32 })).map(([ip, cidr]) => ({ ip, cidr })),
    );
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 40 }), (entries) => {
        const payload = encodeAdtBatch(7, IpsetCmd.ADD, 'KUBE-CLUSTER-IP', entries).payload;
        const top = decodeAttrs(payload.subarray(4));
        expect(top.get(9)?.readUInt32LE(0)).toBe(0);
        const items = decodeAttrList(top.get(8)!);
        expect(items.map((x) => [x.type, x.nested])).toEqual(entries.map(() => [7, true]));
        items.forEach((item, i) => {
          const fields = decodeAttrs(item.data);
          expect(fields.get(9)?.readUInt32LE(0)).toBe(i + 1);
          expect(decodeEntryData(item.data)).toEqual(entries[i]);
          // Without its LINENO the nest is byte for byte the single-element encoding's.
          const single = encodeEntryData(entries[i]!);
          expect(item.data.subarray(0, single.length - 4).toString('hex')).toBe(single.subarray(4).toString('hex'));
        });
      }),
    );
  });

  test('the refused element of a batch is read from the echoed request; a whole-request refusal names none', () => {
    const req = encodeAdtBatch(7, IpsetCmd.ADD, 'S', [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }, { ip: '10.0.0.3' }]);
    const echoed = encodeMessage({ type: req.type, flags: req.flags | 5, seq: 77, payload: req.payload });
    // struct nlmsgerr as ip_set_core.c's call_ad builds it: errno, then the request with LINENO set.
    const err = (msg: Buffer) => {
      const b = Buffer.alloc(4 + msg.length);
      b.writeInt32LE(-4103, 0);
      msg.copy(b, 4);
      return b;
    };
    const withLine = Buffer.from(echoed);
    withLine.writeUInt32LE(2, 16 + 24); // header, nfgenmsg + PROTOCOL + SETNAME + LINENO's header
    expect(decodeAdtErrorLine(err(withLine))).toBe(2);
    expect(decodeAdtErrorLine(err(echoed))).toBeUndefined(); // LINENO 0: refused as a whole (no such set)
    expect(decodeAdtErrorLine(err(echoed.subarray(0, 16)))).toBeUndefined(); // header only (capped)
    const single = encodeAdt(7, IpsetCmd.ADD, 'S', { ip: '10.0.0.1' });
    expect(
      decodeAdtErrorLine(err(encodeMessage({ type: single.type, flags: 5, seq: 1, payload: single.payload }))),
    ).toBeUndefined();
    expect(decodeAdtErrorLine(Buffer.alloc(8))).toBeUndefined();
  });
});
