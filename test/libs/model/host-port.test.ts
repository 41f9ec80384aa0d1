import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hostPort, parseHostPort } from '../../../libs/model/index.ts';

describe('parseHostPort', () => {
  it('reads back what hostPort writes, IPv4 and IPv6', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 65535 }), (address, port) => {
        expect(parseHostPort(hostPort(address, port))).toEqual({ address, port });
      }),
    );
  });

  it('refuses text of another form', () => {
    for (const bad of ['', '10.0.0.1', ':80', '10.0.0.1:http', '10.0.0.1:8.5'])
      expect(parseHostPort(bad), bad).toBeUndefined();
  });
});
