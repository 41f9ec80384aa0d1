import { describe, expect, it } from 'vitest';
import {
  competingLeftovers,
  isLeftoverChain,
  planIptablesLeftovers,
} from '../../../libs/dataplane/kube-proxy-leftovers.ts';
import { leftoverReport } from '../../../libs/dataplane/kube-proxy-leftover-check.ts';
import { FOREIGN_IPTABLES, KUBE_PROXY_IPTABLES_MODE } from '../../netns/support/kube-proxy-iptables.ts';

// iptables-save text as the node shows it: kube-proxy's iptables-mode chains merged with foreign ones
const merged = (() => {
  const tables = new Map<string, string[]>();
  for (const text of [KUBE_PROXY_IPTABLES_MODE, FOREIGN_IPTABLES])
    for (const part of text.split(/^\*/m).slice(1)) {
      const [name, ...lines] = part.split('\n');
      tables.set(name!, [...(tables.get(name!) ?? []), ...lines.filter((l) => l && l !== 'COMMIT')]);
    }
  return (
    [...tables]
      .map(([t, ls]) =>
        [`*${t}`, ...ls.filter((l) => l.startsWith(':')), ...ls.filter((l) => l.startsWith('-')), 'COMMIT'].join('\n'),
      )
      .join('\n') + '\n'
  );
})();

describe('kube-proxy leftovers: which chains, per mode and backend', () => {
  it("nftables mode: every kube-proxy chain name; never the kubelet's", () => {
    for (const [t, c] of [
      ['nat', 'KUBE-SVC-ABC'],
      ['nat', 'KUBE-MARK-MASQ'],
      ['filter', 'KUBE-SERVICES'],
      ['mangle', 'KUBE-PROXY-CANARY'],
      ['nat', 'KUBE-LOAD-BALANCER'],
    ] as const)
      expect(isLeftoverChain('nftables', 'nft', t, c)).toBe(true);
    for (const [t, c] of [
      ['filter', 'KUBE-FIREWALL'],
      ['mangle', 'KUBE-IPTABLES-HINT'],
      ['nat', 'KUBE-KUBELET-CANARY'],
      ['nat', 'KUBE-MARK-DROP'],
      ['nat', 'DOCKER'],
      ['filter', 'KUBE-SVC-ABC'],
    ] as const)
      expect(isLeftoverChain('nftables', 'nft', t, c)).toBe(false);
  });
  it("ipvs mode: iptables-nft's ipvs-mode names are the glue's; iptables-mode names and anything legacy are leftovers", () => {
    expect(isLeftoverChain('ipvs', 'nft', 'nat', 'KUBE-SERVICES')).toBe(false);
    expect(isLeftoverChain('ipvs', 'nft', 'nat', 'KUBE-MARK-MASQ')).toBe(false);
    expect(isLeftoverChain('ipvs', 'nft', 'filter', 'KUBE-FORWARD')).toBe(false);
    expect(isLeftoverChain('ipvs', 'nft', 'filter', 'KUBE-SERVICES')).toBe(true); // the stale REJECTs (C6)
    expect(isLeftoverChain('ipvs', 'nft', 'nat', 'KUBE-SVC-ABC')).toBe(true);
    expect(isLeftoverChain('ipvs', 'legacy', 'nat', 'KUBE-SERVICES')).toBe(true);
  });
  it('ipvs mode, ip6tables-nft: only the names our IPv6 glue declares are ours (none without IPv6 services; unknown: all)', () => {
    expect(isLeftoverChain('ipvs', 'nft', 'nat', 'KUBE-SERVICES', 'IPv6', {})).toBe(true);
    expect(isLeftoverChain('ipvs', 'nft', 'nat', 'KUBE-SERVICES', 'IPv6', { nat: ['KUBE-SERVICES'] })).toBe(false);
    expect(isLeftoverChain('ipvs', 'nft', 'nat', 'KUBE-SERVICES', 'IPv6')).toBe(false);
    expect(isLeftoverChain('ipvs', 'nft', 'nat', 'KUBE-SERVICES', 'IPv4', {})).toBe(false);
  });
});

describe('planIptablesLeftovers', () => {
  it('ipvs mode over iptables-mode state: removes the REJECT chain with its built-in jumps, keeps what the glue owns and every foreign rule', () => {
    // as after our first apply: the glue rewrote nat KUBE-SERVICES (its chain now), so nothing of ours jumps to kube-proxy's
    const afterGlue = merged.replace(/^-A KUBE-SERVICES -d 10\.96\.0\.10.*\n|^-A KUBE-SERVICES .*nodeports.*\n/gm, '');
    expect(afterGlue).not.toBe(merged);
    const plan = planIptablesLeftovers(afterGlue, (t, c) => isLeftoverChain('ipvs', 'nft', t, c));
    const filter = plan.find((p) => p.table === 'filter')!;
    expect(filter.removed).toEqual(['filter/KUBE-EXTERNAL-SERVICES', 'filter/KUBE-NODEPORTS', 'filter/KUBE-SERVICES']);
    expect(filter.lines).toEqual([
      '-D INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
      '-D INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
      '-D FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-D OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-F KUBE-EXTERNAL-SERVICES',
      '-F KUBE-NODEPORTS',
      '-F KUBE-SERVICES',
      '-X KUBE-EXTERNAL-SERVICES',
      '-X KUBE-NODEPORTS',
      '-X KUBE-SERVICES',
    ]);
    const nat = plan.find((p) => p.table === 'nat')!;
    // nat KUBE-SERVICES is the glue's (rewritten by its apply): what it jumps to is removed
    expect(nat.removed).toEqual([
      'nat/KUBE-NODEPORTS',
      'nat/KUBE-SEP-AAAAAAAAAAAAAAAA',
      'nat/KUBE-EXT-BBBBBBBBBBBBBBBB',
      'nat/KUBE-SVC-BBBBBBBBBBBBBBBB',
    ]);
    expect(nat.lines.filter((l) => l.startsWith('-D'))).toEqual([]);
    expect(plan.flatMap((p) => p.lines).join('\n')).not.toMatch(/DOCKER|CNI-DN|KUBE-FIREWALL|KUBELET|HINT/);
  });
  it('a leftover a foreign chain jumps to is kept, with what it reaches; its rules are never deleted', () => {
    const text = `*nat
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-X - [0:0]
:CNI-DN-1 - [0:0]
-A PREROUTING -j KUBE-SVC-X
-A CNI-DN-1 -j KUBE-SVC-X
-A KUBE-SVC-X -j KUBE-MARK-MASQ
COMMIT
`;
    const [nat] = planIptablesLeftovers(text, (t, c) => isLeftoverChain('nftables', 'nft', t, c));
    expect(nat!.removed).toEqual([]);
    expect(nat!.kept).toEqual([
      'nat/KUBE-SVC-X (jumped to from CNI-DN-1)',
      'nat/KUBE-MARK-MASQ (jumped to from KUBE-SVC-X)',
    ]);
    expect(nat!.hooked).toEqual(['nat/KUBE-SVC-X']);
    expect(nat!.lines).toEqual([]);
  });
});

describe('leftoverReport', () => {
  it('names what competes, what was found and the flag; after a take-over it asks whether kube-proxy runs', () => {
    const l = { nftTables: ['ip kube-proxy'], iptables: [] };
    expect(competingLeftovers(l)).toEqual(['table ip kube-proxy']);
    expect(leftoverReport(l, false)).toBe(
      "kube-proxy's rules compete with this node's (table ip kube-proxy: at the same hooks, whichever runs first answers); found: table ip kube-proxy; remove them: restart the applier with --take-over-kube-proxy (or run `kube-proxy --cleanup` on the node)",
    );
    expect(leftoverReport(l, true)).toMatch(/came back after the take-over: is kube-proxy still running/);
    expect(leftoverReport({ nftTables: [], iptables: [] }, false)).toBeUndefined();
  });
});
