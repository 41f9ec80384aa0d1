import { describe, expect, it } from 'vitest';
import {
  chooseIptablesBackend,
  nftablesKernelProblem,
  refuseUnfitNode,
} from '../../../libs/dataplane/node-preflight.ts';

describe('nftables mode kernel floor (probe7 C8: kube-proxy refuses below 5.13)', () => {
  it('refuses kernels older than 5.13 with what to do, accepts 5.13 and later', () => {
    expect(nftablesKernelProblem('5.10.0-28-amd64')).toBe(
      "nftables mode needs kernel 5.13 or newer (as kube-proxy's nftables mode), this node runs 5.10.0-28-amd64: use --mode ipvs, or upgrade the kernel",
    );
    expect(nftablesKernelProblem('4.19.0')).toMatch(/needs kernel 5\.13/);
    for (const ok of ['5.13.0', '5.15.0-91-generic', '6.1.0-18-amd64', '6.18.44-fc-v1045', '10.0'])
      expect(nftablesKernelProblem(ok)).toBeUndefined();
  });
  it('refuseUnfitNode throws for nftables mode on an old kernel', async () => {
    await expect(refuseUnfitNode('nftables', { kernelRelease: '5.4.0-150-generic' })).rejects.toThrow(
      /needs kernel 5\.13 or newer.*5\.4\.0-150-generic/,
    );
    await expect(refuseUnfitNode('nftables', { kernelRelease: '6.1.0' })).resolves.toBeUndefined();
  });
});

describe("iptables backend (probe7 C5: iptables-wrapper's heuristic)", () => {
  const hint = '*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n';
  const rules = (n: number) => `*filter\n${'-A INPUT -j ACCEPT\n'.repeat(n)}COMMIT\n`;
  it("the kubelet's hint chain decides, nft first", () => {
    expect(chooseIptablesBackend({ nft: hint, legacy: hint }).backend).toBe('nft');
    expect(chooseIptablesBackend({ nft: rules(50), legacy: hint })).toEqual({
      backend: 'legacy',
      reason: "the kubelet's hint chain (KUBE-IPTABLES-HINT/KUBE-KUBELET-CANARY) is in iptables-legacy",
    });
    expect(chooseIptablesBackend({ nft: ':KUBE-KUBELET-CANARY - [0:0]\n', legacy: rules(9) }).backend).toBe('nft');
  });
  it('without a hint, the backend with more rules; a tie is nft', () => {
    expect(chooseIptablesBackend({ nft: rules(2), legacy: rules(3) }).backend).toBe('legacy');
    expect(chooseIptablesBackend({ nft: rules(3), legacy: rules(3) }).backend).toBe('nft');
    expect(chooseIptablesBackend({ nft: '', legacy: '' }).backend).toBe('nft');
  });
  it('ipvs mode refuses a legacy node, naming why and what to do', async () => {
    const exec = async (cmd: string) => (cmd === 'iptables-legacy-save' ? hint : cmd.endsWith('-save') ? '' : '');
    await expect(refuseUnfitNode('ipvs', { exec })).rejects.toThrow(
      /ipvs mode: this node uses iptables-legacy \(the kubelet's hint chain .* is in iptables-legacy\), but the ipvs glue writes iptables-nft.*--mode nftables/,
    );
    const nftExec = async (cmd: string) => (cmd === 'iptables-nft-save' ? hint : '');
    await expect(refuseUnfitNode('ipvs', { exec: nftExec })).resolves.toBeUndefined();
  });
});

describe('createDataplane runs the preflight before it makes a dataplane', () => {
  it('a refusing preflight refuses nftables mode, asked with that mode', async () => {
    const { createDataplane } = await import('../../../libs/dataplane/create-dataplane.ts');
    const asked: string[] = [];
    await expect(
      createDataplane({
        mode: 'nftables',
        node: 'n1',
        preflight: async (mode) => {
          asked.push(mode);
          throw new Error('unfit node');
        },
      }),
    ).rejects.toThrow('unfit node');
    expect(asked).toEqual(['nftables']);
  });
});
