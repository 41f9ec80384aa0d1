import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  entryFromText,
  entryToSaveLine,
  entryToText,
  headerToSaveLine,
} from '../../../libs/netlink/ipset-entry-text.ts';
import type { IpsetType } from '../../../libs/netlink/ipset-types.ts';

describe('ipset save text', () => {
  test.each<[IpsetType, string, object]>([
    ['hash:ip', '10.0.0.1', { ip: '10.0.0.1' }],
    ['hash:ip,port', '10.0.0.1,tcp:80', { ip: '10.0.0.1', proto: 'tcp', port: 80 }],
    ['hash:ip,port', 'fd00::1,udp:53', { ip: 'fd00::1', proto: 'udp', port: 53 }],
    ['hash:ip,port,ip', '10.0.0.1,tcp:80,10.0.0.2', { ip: '10.0.0.1', proto: 'tcp', port: 80, ip2: '10.0.0.2' }],
    [
      'hash:ip,port,net',
      '1.2.3.4,tcp:80,10.0.0.0/8',
      { ip: '1.2.3.4', proto: 'tcp', port: 80, ip2: '10.0.0.0', cidr2: 8 },
    ],
    [
      'hash:ip,port,net',
      '1.2.3.4,sctp:80,10.0.0.1',
      { ip: '1.2.3.4', proto: 'sctp', port: 80, ip2: '10.0.0.1', cidr2: 32 },
    ],
    ['hash:net', '10.1.0.0/16', { ip: '10.1.0.0', cidr: 16 }],
    ['hash:net', 'fd00:1::1', { ip: 'fd00:1::1', cidr: 128 }],
    ['bitmap:port', '31000', { port: 31000 }],
  ])('%s %s', (type, text, entry) => {
    expect(entryFromText(type, text)).toEqual(entry);
    expect(entryToText(type, entry)).toBe(text);
  });

  test('a bare port means tcp, as in ipset', () => {
    expect(entryFromText('hash:ip,port', '10.0.0.1,80')).toEqual({ ip: '10.0.0.1', proto: 'tcp', port: 80 });
  });

  test('text → entry → text is stable for generated elements', () => {
    const ip = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255)).map(([a, b, c]) => `10.${a}.${b}.${c}`);
    const pp = fc
      .tuple(fc.constantFrom('tcp', 'udp', 'sctp'), fc.integer({ min: 0, max: 65535 }))
      .map(([p, n]) => `${p}:${n}`);
    fc.assert(
      fc.property(ip, pp, ip, fc.integer({ min: 0, max: 31 }), (a, b, c, len) => {
        const text = `${a},${b},${c}/${len}`;
        expect(entryToText('hash:ip,port,net', entryFromText('hash:ip,port,net', text))).toBe(text);
      }),
    );
  });

  test('save lines with comment and timeout; create lines in ipset order', () => {
    expect(entryToSaveLine('S', 'bitmap:port', { port: 80, comment: 'x "y"' })).toBe('add S 80 comment "x \\"y\\""');
    expect(entryToSaveLine('S', 'hash:ip', { ip: '1.2.3.4', timeout: 99 })).toBe('add S 1.2.3.4 timeout 99');
    expect(
      headerToSaveLine({
        name: 'KUBE-CLUSTER-IP',
        type: 'hash:ip,port',
        family: 'inet',
        revision: 7,
        hashSize: 1024,
        maxElem: 65536,
        bucketSize: 12,
        initval: 0x56885ee0,
        comment: false,
      }),
    ).toBe(
      'create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x56885ee0',
    );
    expect(
      headerToSaveLine({ name: 'P', type: 'bitmap:port', revision: 3, range: { from: 0, to: 65535 }, comment: true }),
    ).toBe('create P bitmap:port range 0-65535 comment');
  });

  test('bad text gives clear errors', () => {
    expect(() => entryFromText('hash:ip,port', '10.0.0.1')).toThrow('"10.0.0.1" is not a hash:ip,port element');
    expect(() => entryFromText('hash:ip,port', '10.0.0.1,icmp:8')).toThrow('unsupported protocol "icmp"');
    expect(() => entryFromText('hash:ip,port', '10.0.0.1,tcp:99999')).toThrow('invalid port "99999"');
    expect(() => entryFromText('hash:net', '10.0.0.0/33')).toThrow('invalid prefix length in network "10.0.0.0/33"');
    expect(() => entryFromText('hash:ip,port,ip', '10.0.0.1,tcp:1,fd00::1')).toThrow(/mixed address families/);
    expect(() => entryFromText('hash:ip', 'banana')).toThrow('invalid address "banana"');
    expect(() => entryToText('hash:ip,port', { ip: '10.0.0.1' })).toThrow('hash:ip,port element needs proto');
  });
});
