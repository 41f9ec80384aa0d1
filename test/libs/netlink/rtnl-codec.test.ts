// rtnetlink codec against struct ifinfomsg / ifaddrmsg layouts (linux/rtnetlink.h).
import { describe, expect, test } from 'vitest';
import {
  decodeAddress,
  decodeLink,
  encodeAddress,
  encodeCreateLink,
  encodeGetLink,
} from '../../../libs/netlink/rtnl-codec.ts';
import { nlNested, strAttr, u32Attr } from '../../../libs/netlink/netlink-attrs.ts';

describe('rtnetlink codec', () => {
  test('create dummy link: ifinfomsg with IFF_UP, IFLA_IFNAME, IFLA_LINKINFO{KIND}', () => {
    expect(encodeCreateLink('kube-ipvs0', 'dummy', true).toString('hex')).toBe(
      '00000000' +
        '00000000' +
        '01000000' +
        '01000000' +
        '0f000300' +
        Buffer.from('kube-ipvs0\0').toString('hex') +
        '00' +
        '10001280' +
        '0a000100' +
        Buffer.from('dummy\0').toString('hex') +
        '0000',
    );
    expect(() => encodeGetLink('a name')).toThrow(/invalid link name "a name"/);
    expect(() => encodeGetLink('x'.repeat(16))).toThrow(/invalid link name/);
  });

  test('decodes a hand-built RTM_NEWLINK payload', () => {
    const hdr = Buffer.from('00000100' + '07000000' + '43100100' + '00000000', 'hex'); // ARPHRD_ETHER, index 7, flags UP|...
    const payload = Buffer.concat([
      hdr,
      strAttr(3, 'kube-ipvs0'),
      u32Attr(4, 1500),
      nlNested(18, [strAttr(1, 'dummy')]),
    ]);
    expect(decodeLink(payload)).toEqual({
      index: 7,
      name: 'kube-ipvs0',
      flags: 0x11043,
      up: true,
      kind: 'dummy',
      mtu: 1500,
    });
  });

  test('addresses: /32 and /128 (NODAD for v6), and decode', () => {
    expect(encodeAddress(7, '10.96.0.10').toString('hex')).toBe(
      '02' + '20' + '00' + '00' + '07000000' + '08000200' + '0a60000a' + '08000100' + '0a60000a',
    );
    const v6 = encodeAddress(7, 'fd00::1');
    expect(v6.subarray(0, 4).toString('hex')).toBe('0a800200'); // AF_INET6, /128, IFA_F_NODAD
    expect(v6.toString('hex')).toContain('08000800' + '02000000'); // IFA_FLAGS NODAD
    expect(decodeAddress(v6)).toEqual({ family: 'inet6', address: 'fd00::1', prefixLength: 128, linkIndex: 7 });
    expect(() => encodeAddress(7, '10.96.0.10', 33)).toThrow('invalid prefix length 33 for 10.96.0.10');
    expect(() => encodeAddress(7, 'nope')).toThrow('invalid IP address "nope"');
  });
});
