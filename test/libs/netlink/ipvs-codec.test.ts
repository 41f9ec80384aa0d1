// IPVS genl codec against byte layouts derived from linux/ip_vs.h and ip_vs_ctl.c.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  IpvsCmd,
  decodeDestMessage,
  decodeInfo,
  decodeServiceMessage,
  decodeTimeouts,
  encodeDelDest,
  encodeGetService,
  encodeNewDest,
  encodeNewService,
  encodeSetConfig,
  serviceLabel,
} from '../../../libs/netlink/ipvs-codec.ts';
import { encodeGenl } from '../../../libs/netlink/genl-family.ts';
import { nlNested, u32Attr } from '../../../libs/netlink/netlink-attrs.ts';
import type { IpvsDestination, IpvsService } from '../../../libs/netlink/ipvs-types.ts';

const svc: IpvsService = {
  protocol: 'TCP',
  address: '10.100.0.1',
  port: 80,
  scheduler: 'rr',
  flags: [],
  timeout: 0,
  netmask: 0xffffffff,
};

// IPVS_CMD_NEW_SERVICE, version 1, nested IPVS_CMD_ATTR_SERVICE holding AF, PROTOCOL,
// ADDR (16-byte union), PORT (be16), SCHED_NAME, FLAGS {flags, mask}, TIMEOUT, NETMASK (be32).
const NEW_SERVICE_FIXTURE =
  '01010000' +
  '54000180' +
  '06000100' +
  '0200' +
  '0000' +
  '06000200' +
  '0600' +
  '0000' +
  '14000300' +
  '0a640001' +
  '00'.repeat(12) +
  '06000400' +
  '0050' +
  '0000' +
  '07000600' +
  '727200' +
  '00' +
  '0c000700' +
  '00000000' +
  'ffffffff' +
  '08000800' +
  '00000000' +
  '08000900' +
  'ffffffff';

describe('IPVS codec', () => {
  test('NEW_SERVICE bytes match the kernel layout', () => {
    expect(encodeNewService(svc).toString('hex')).toBe(NEW_SERVICE_FIXTURE);
  });

  test('decodes a hand-built service reply (the same attributes plus stats)', () => {
    const reply = Buffer.from(NEW_SERVICE_FIXTURE, 'hex');
    reply.writeUInt8(IpvsCmd.NEW_SERVICE, 0);
    // Kernel-side flags: HASHED | PERSISTENT, timeout 300.
    const hex = reply
      .toString('hex')
      .replace('0c000700' + '00000000', '0c000700' + '03000000')
      .replace('08000800' + '00000000', '08000800' + '2c010000');
    expect(decodeServiceMessage(Buffer.from(hex, 'hex'))).toEqual({
      ...svc,
      flags: ['persistent', 'hashed'],
      timeout: 300,
    });
  });

  test('a listed service: stats decoded, left out when not asked for', () => {
    const inner = encodeNewService(svc).subarray(8); // after the genl header and the SERVICE nest header
    const stats = Buffer.alloc(12);
    stats.writeUInt16LE(12, 0);
    stats.writeUInt16LE(1, 2); // conns
    stats.writeBigUInt64LE(42n, 4);
    const listed = encodeGenl(IpvsCmd.NEW_SERVICE, 1, [nlNested(1, [inner, nlNested(12, [stats])])]);
    expect(decodeServiceMessage(listed).stats).toMatchObject({ conns: 42 });
    expect(decodeServiceMessage(listed, false)).toEqual(svc);
  });

  test('NEW_DEST carries the service key and the full destination', () => {
    const d: IpvsDestination = {
      address: '10.50.1.2',
      port: 9000,
      forward: 'masq',
      weight: 1,
      upperThreshold: 0,
      lowerThreshold: 0,
    };
    const hex = encodeNewDest(svc, d).toString('hex');
    expect(hex.slice(0, 8)).toBe('05010000'); // IPVS_CMD_NEW_DEST, version 1
    // DEST nest: ADDR, PORT 9000 = 0x2328 big-endian, ADDR_FAMILY 2, FWD 0, WEIGHT 1, U/L thresholds 0
    expect(hex).toContain(
      '48000280' +
        '14000100' +
        '0a320102' +
        '00'.repeat(12) +
        '06000200' +
        '2328' +
        '0000' +
        '06000b00' +
        '0200' +
        '0000' +
        '08000300' +
        '00000000' +
        '08000400' +
        '01000000',
    );
    expect(decodeDestMessage(encodeNewDest(svc, d), 'inet')).toEqual(d);
  });

  test('a listed destination: counters and stats decoded, stats left out when not asked for; malformed ones refused', () => {
    const d: IpvsDestination = {
      address: '10.50.1.2',
      port: 9000,
      forward: 'masq',
      weight: 3,
      upperThreshold: 0,
      lowerThreshold: 0,
    };
    const u64 = (type: number, v: number) => {
      const b = Buffer.alloc(12);
      b.writeUInt16LE(12, 0);
      b.writeUInt16LE(type, 2);
      b.writeBigUInt64LE(BigInt(v), 4);
      return b;
    };
    // The kernel's listing: the NEW_DEST attributes plus ACTIVE (7), INACT (8), PERSIST (9)
    // conns and STATS64 (12, nested u64 counters: conns 1, in-packets 2 ...).
    const request = encodeNewDest(svc, d);
    const destStart = request.indexOf(Buffer.from('48000280', 'hex'));
    const destAttrs = request.subarray(destStart + 4);
    const listed = encodeGenl(IpvsCmd.NEW_DEST, 1, [
      nlNested(2, [
        destAttrs,
        u32Attr(7, 5),
        u32Attr(8, 6),
        u32Attr(9, 7),
        nlNested(12, [u64(1, 11), u64(2, 12), u64(3, 13), u64(4, 14), u64(5, 15)]),
      ]),
    ]);
    const full = decodeDestMessage(listed, 'inet');
    expect(full).toMatchObject({ ...d, activeConns: 5, inactiveConns: 6, persistConns: 7 });
    expect(full.stats).toMatchObject({ conns: 11, inPkts: 12, outPkts: 13, inBytes: 14, outBytes: 15 });
    const lean = decodeDestMessage(listed, 'inet', false);
    expect(lean).toEqual({ ...d, activeConns: 5, inactiveConns: 6, persistConns: 7 });
    // A destination attribute cut short, a missing port, no destination at all.
    const cut = Buffer.from(listed);
    cut.writeUInt16LE(200, 8); // first inner attribute claims more bytes than there are
    expect(() => decodeDestMessage(cut, 'inet')).toThrow(/malformed netlink attribute/);
    const noPort = encodeGenl(IpvsCmd.NEW_DEST, 1, [nlNested(2, [destAttrs.subarray(0, 20), destAttrs.subarray(28)])]);
    expect(() => decodeDestMessage(noPort, 'inet')).toThrow(/missing attribute IPVS_DEST_ATTR_PORT/);
    expect(() => decodeDestMessage(encodeGenl(IpvsCmd.NEW_DEST, 1, []), 'inet')).toThrow(/no destination attribute/);
  });

  test('round trip: services and destinations (v4/v6, all protocols, flags)', () => {
    const v4 = fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }))
      .map(([a, b]) => `10.${a}.${b}.1`);
    const v6 = fc.integer({ min: 1, max: 0xffff }).map((n) => `fd00:${n.toString(16)}::1`);
    const service = fc
      .oneof(
        fc.record({ address: v4, netmask: fc.constant(0xffffff00) }),
        fc.record({ address: v6, netmask: fc.integer({ min: 1, max: 128 }) }),
      )
      .chain((a) =>
        fc.record({
          protocol: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const),
          address: fc.constant(a.address),
          port: fc.integer({ min: 0, max: 65535 }),
          scheduler: fc.constantFrom('rr', 'wrr', 'mh', 'sh', 'lc'),
          flags: fc.subarray(['persistent', 'one-packet', 'sched-flag-1', 'sched-flag-2'] as const).map((f) => [...f]),
          timeout: fc.nat(),
          netmask: fc.constant(a.netmask),
        }),
      );
    fc.assert(
      fc.property(service, (s) => {
        const back = decodeServiceMessage(encodeNewService(s));
        expect(back).toEqual(s);
        const d: IpvsDestination = {
          address: s.address.includes(':') ? 'fd00:50::2' : '10.50.1.2',
          port: s.port,
          forward: 'route',
          weight: 7,
          upperThreshold: 100,
          lowerThreshold: 10,
        };
        expect(decodeDestMessage(encodeNewDest(s, d), s.address.includes(':') ? 'inet6' : 'inet')).toEqual(d);
      }),
    );
  });

  test('fwmark services identify by mark only', () => {
    const buf = encodeGetService({ protocol: 'TCP', address: '0.0.0.0', port: 0, fwmark: 5, family: 'inet' });
    expect(buf.toString('hex')).toBe('04010000' + '14000180' + '06000100' + '0200' + '0000' + '08000500' + '05000000');
    expect(serviceLabel({ protocol: 'TCP', address: '::', port: 0, fwmark: 5 })).toBe('FWM 5');
  });

  test('timeouts, info and dest key', () => {
    expect(encodeSetConfig({ tcp: 900, udp: 300 }).toString('hex')).toBe(
      '0c010000' + '08000400' + '84030000' + '08000600' + '2c010000',
    );
    const cfg = encodeGenl(IpvsCmd.SET_CONFIG, 1, [u32Attr(4, 900), u32Attr(5, 120), u32Attr(6, 300)]);
    expect(decodeTimeouts(cfg)).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    const info = encodeGenl(IpvsCmd.SET_INFO, 1, [u32Attr(1, 0x010201), u32Attr(2, 4096)]);
    expect(decodeInfo(info)).toEqual({ version: '1.2.1', versionCode: 0x010201, connTableSize: 4096 });
    expect(encodeDelDest(svc, { address: 'fd00::2', port: 1 }).toString('hex')).toContain('06000b00' + '0a00'); // AF_INET6
  });

  test('bad input is refused before it reaches the kernel', () => {
    expect(() => encodeNewService({ ...svc, port: 70000 })).toThrow('invalid service port 70000');
    expect(() => encodeNewService({ ...svc, address: 'x' })).toThrow('invalid IPVS service address "x"');
    expect(() => encodeNewService({ ...svc, scheduler: '' })).toThrow(/invalid IPVS scheduler/);
    expect(() => encodeNewService({ ...svc, protocol: 'ICMP' as never })).toThrow(/invalid IPVS protocol "ICMP"/);
    expect(() => encodeNewService({ ...svc, flags: ['sticky' as never] })).toThrow(
      'unknown IPVS service flag "sticky"',
    );
    expect(() => encodeNewService({ ...svc, address: 'fd00::1', netmask: 0xffffffff })).toThrow(
      /IPv6 persistence prefix/,
    );
    expect(() =>
      encodeNewDest(svc, {
        address: '10.0.0.1',
        port: 1,
        forward: 'masq',
        weight: -1,
        upperThreshold: 0,
        lowerThreshold: 0,
      }),
    ).toThrow(/invalid IPVS weight -1/);
    expect(() => decodeServiceMessage(encodeGenl(1, 1, [nlNested(1, [])]))).toThrow(
      /missing attribute IPVS_SVC_ATTR_AF/,
    );
    expect(() => decodeServiceMessage(encodeGenl(1, 1, []))).toThrow('IPVS reply has no service attribute');
  });
});
