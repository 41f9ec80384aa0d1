import { describe, expect, it } from 'vitest';
import { readProxyConfig, settingsIgnoredByMode } from '../../../libs/model/index.ts';

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

describe('readProxyConfig nodePortAddresses', () => {
  // probe6 P6: kube-proxy ≥1.29 (its nftables default) spells "the node's own addresses" so
  it('reads ["primary"] as the empty list (the Node object\'s addresses), and primary only alone', () => {
    expect(readProxyConfig({ nodePortAddresses: ['primary'] })).toEqual(readProxyConfig({}));
    expect(() => readProxyConfig({ nodePortAddresses: ['primary', '10.0.0.0/8'] })).toThrow(
      /^proxy config: nodePortAddresses: "primary" must be the only entry \(or list CIDRs only\)$/,
    );
    expect(() => readProxyConfig({ nodePortAddresses: ['secondary'] })).toThrow(
      /^proxy config: nodePortAddresses: invalid CIDR "secondary"$/,
    );
    expect(readProxyConfig({ nodePortAddresses: ['10.0.0.0/8'] }).nodePortAddresses).toEqual(['10.0.0.0/8']);
  });
});

describe('settingsIgnoredByMode', () => {
  it('names the IPVS scheduler and its flags a nftables config sets (nftables balances at random)', () => {
    expect(
      settingsIgnoredByMode(readProxyConfig({ mode: 'nftables', scheduler: 'sh', schedulerFlags: ['sh-port'] })),
    ).toEqual([
      'scheduler sh has no effect in nftables mode (it balances at random)',
      'scheduler flags sh-port have no effect in nftables mode',
    ]);
  });
  it('is empty for the default scheduler in nftables mode and for anything in ipvs mode', () => {
    expect(settingsIgnoredByMode(readProxyConfig({ mode: 'nftables' }))).toEqual([]);
    expect(
      settingsIgnoredByMode(readProxyConfig({ mode: 'ipvs', scheduler: 'sh', schedulerFlags: ['sh-port'] })),
    ).toEqual([]);
  });
});
