import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { bytesToIp, familyOf, ipToBytes, ipToUnion16 } from '../../../libs/netlink/ip-address.ts';

describe('ip-address', () => {
  test.each([
    ['10.100.0.1', '0a640001'],
    ['fd00:100::1', 'fd000100000000000000000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['::ffff:1.2.3.4', '00000000000000000000ffff01020304'],
    ['2001:db8:0:0:1:0:0:1', '20010db8000000000001000000000001'],
  ])('%s → %s', (text, hex) => {
    expect(ipToBytes(text).toString('hex')).toBe(hex);
  });

  test('IPv6 text is RFC 5952 (longest zero run compressed, single zero group kept)', () => {
    expect(bytesToIp(Buffer.from('20010db8000000000001000000000001', 'hex'), 'inet6')).toBe('2001:db8::1:0:0:1');
    expect(bytesToIp(Buffer.from('20010db8000100000001000100010001', 'hex'), 'inet6')).toBe('2001:db8:1:0:1:1:1:1');
  });

  test('bytes → text → bytes is the identity (v4 and v6)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect(new Uint8Array(ipToBytes(bytesToIp(b, 'inet6')))).toEqual(b);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => {
        expect(new Uint8Array(ipToBytes(bytesToIp(b, 'inet')))).toEqual(b);
      }),
    );
  });

  test('the IPVS 16-byte union keeps IPv4 in the first 4 bytes', () => {
    expect(ipToUnion16('192.0.2.10').toString('hex')).toBe('c000020a' + '00'.repeat(12));
  });

  test('bad addresses are rejected with the text in the message', () => {
    expect(() => ipToBytes('10.0.0.256')).toThrow('invalid IP address "10.0.0.256"');
    expect(() => ipToBytes('fd00::1::2')).toThrow(/invalid IP address/);
    expect(familyOf('nonsense')).toBeUndefined();
  });
});
