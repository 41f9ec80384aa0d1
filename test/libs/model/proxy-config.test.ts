import { describe, expect, it } from 'vitest';
import { readProxyConfig } from '../../../libs/model/index.ts';

describe('readProxyConfig', () => {
  it('refuses a CIDR that parses only after trimming (it would be used with the whitespace)', () => {
    expect(() => readProxyConfig({ clusterCIDR: '10.244.0.0/16\r' })).toThrow(
      /^proxy config: clusterCIDR: "10.244.0.0\/16\\r" has leading or trailing whitespace$/,
    );
    expect(() => readProxyConfig({ excludeCIDRs: [' 10.0.0.0/8'] })).toThrow(
      /excludeCIDRs: " 10.0.0.0\/8" has leading or trailing whitespace/,
    );
    expect(() => readProxyConfig({ clusterCIDR: 7 })).toThrow(/clusterCIDR must be a string/);
    expect(readProxyConfig({ clusterCIDR: '10.244.0.0/16' }).clusterCIDR).toBe('10.244.0.0/16');
  });
});
