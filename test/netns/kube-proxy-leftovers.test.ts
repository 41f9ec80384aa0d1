// kube-proxy's leftovers of every mode on a real kernel, in a namespace this test makes (probe7
// C4, C6): its nftables-mode tables, its iptables-mode chains in iptables-nft (with a stale "has no
// endpoints" REJECT hooked into filter INPUT/OUTPUT/FORWARD) and in iptables-legacy, next to the
// kubelet's, docker's and a CNI portmap chain that jumps to KUBE-MARK-MASQ, and a foreign nft table.
//  1. the leftover check names them all, fails the resync with the flag that removes them, and
//     only notes them on the first apply (the apply itself stands);
//  2. `--take-over-kube-proxy` (withKubeProxyTakeOver) removes exactly kube-proxy's objects: every
//     foreign table, chain and rule is still there, KUBE-MARK-MASQ is kept because the CNI chain
//     jumps to it; afterwards the check lets the resync pass.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  findKubeProxyLeftovers,
  withKubeProxyLeftoverCheck,
  withKubeProxyTakeOver,
} from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';
import { fakeDataplane, saveLines } from './support/fake-dataplane.ts';
import { inNs, sh } from './support/netns-lab.ts';
import { FOREIGN_IPTABLES, KUBE_PROXY_IPTABLES_MODE } from './support/kube-proxy-iptables.ts';
import { kubeProxyNftRuleset } from './support/kube-proxy-nft.ts';

const NS = `sbkpl${process.pid % 100000}`;
const FOREIGN_NFT =
  'table inet foreign-fw {\n\tchain forwarded {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tcounter\n\t}\n}\n';
// kube-proxy (iptables mode) on a legacy node before it moved to nft: a stale REJECT in filter INPUT
const KUBE_PROXY_LEGACY = `*filter
:KUBE-SERVICES - [0:0]
:KUBE-PROXY-CANARY - [0:0]
-A INPUT -m conntrack --ctstate NEW -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
COMMIT
`;
const isRoot = process.getuid?.() === 0;
const STATE = {} as NodeState; // unused by the fake and by the nftables take-over
const exec = (cmd: string, args: readonly string[], input?: string) => inNs(NS, cmd, args, input);

// Skipped unless root: `ip netns add` and nft/iptables inside a namespace need CAP_SYS_ADMIN and
// CAP_NET_ADMIN (CI runs as root, so it runs there).
describe.skipIf(!isRoot)('kube-proxy leftovers in a netns (needs root for ip netns)', () => {
  const before: Record<string, string> = {};
  beforeAll(async () => {
    await sh('ip', ['netns', 'add', NS]);
    await inNs(
      NS,
      'nft',
      ['-f', '-'],
      kubeProxyNftRuleset([
        {
          namespace: 'default',
          name: 'web',
          portName: 'http',
          clusterIP: '10.96.0.10',
          port: 80,
          nodePort: 30080,
          endpoints: [{ ip: '10.50.9.9', port: 8080 }],
        },
      ]) + FOREIGN_NFT,
    );
    await inNs(NS, 'iptables-nft-restore', ['--noflush'], KUBE_PROXY_IPTABLES_MODE);
    await inNs(NS, 'iptables-nft-restore', ['--noflush'], FOREIGN_IPTABLES);
    await inNs(NS, 'iptables-legacy-restore', ['--noflush'], KUBE_PROXY_LEGACY);
    before.nft = await inNs(NS, 'iptables-nft-save', []);
    before.legacy = await inNs(NS, 'iptables-legacy-save', []);
    before.foreignTable = await inNs(NS, 'nft', ['list', 'table', 'inet', 'foreign-fw']);
  });
  afterAll(async () => {
    await sh('ip', ['netns', 'del', NS]).catch(() => undefined);
  });

  it('the check names every leftover and fails the resync with the flag; the first apply only notes them', async () => {
    const found = await findKubeProxyLeftovers('nftables', exec);
    expect(found.nftTables).toEqual(['ip kube-proxy', 'ip6 kube-proxy']);
    const byTool = Object.fromEntries(found.iptables.map((x) => [x.tool.save, x.tables]));
    const filterNft = byTool['iptables-nft-save']!.find((t) => t.table === 'filter')!;
    expect(filterNft.hooked).toEqual(
      expect.arrayContaining(['filter/KUBE-SERVICES', 'filter/KUBE-FORWARD', 'filter/KUBE-PROXY-FIREWALL']),
    );
    const natNft = byTool['iptables-nft-save']!.find((t) => t.table === 'nat')!;
    expect(natNft.kept).toEqual(['nat/KUBE-MARK-MASQ (jumped to from CNI-DN-1)']);
    expect(natNft.removed).not.toContain('nat/KUBE-MARK-MASQ');
    expect(byTool['iptables-legacy-save']!.map((t) => t.hooked)).toEqual([['filter/KUBE-SERVICES']]);
    // nothing of the kubelet's, docker's or the CNI's is counted
    const named = found.iptables.flatMap((x) => x.tables.flatMap((t) => [...t.removed, ...t.kept]));
    expect(named.filter((c) => /KUBELET|HINT|DOCKER|CNI|filter\/KUBE-FIREWALL/.test(c.split(' ')[0]!))).toEqual([]);

    const logs: string[] = [];
    const dp = withKubeProxyLeftoverCheck(fakeDataplane('nftables'), { exec, log: (l) => logs.push(l) });
    const applied = await dp.apply(STATE);
    expect(applied.verified).toBe(true);
    expect(applied.notes.join('\n')).toMatch(/kube-proxy's rules compete .*table ip kube-proxy/);
    await expect(dp.resync()).rejects.toThrow(
      /compete .*table ip kube-proxy.*found: .*iptables-nft filter chains .*iptables-legacy filter chains KUBE-PROXY-CANARY, KUBE-SERVICES; .*--take-over-kube-proxy/,
    );
    expect(logs).toHaveLength(1); // said once, not at every resync
  });

  it("--take-over-kube-proxy removes exactly kube-proxy's objects; the check then passes", async () => {
    const logs: string[] = [];
    const dp = withKubeProxyLeftoverCheck(withKubeProxyTakeOver(fakeDataplane('nftables'), { netns: NS }), {
      exec,
      takeOver: true,
      log: (l) => logs.push(l),
    });
    const r = await dp.apply(STATE);
    expect(r.verified).toBe(true);
    expect(r.notes).toContain("take-over: removed kube-proxy's tables ip kube-proxy, ip6 kube-proxy");
    expect(r.notes.join('\n')).toMatch(/take-over: removed kube-proxy's 1[0-9] iptables chains/);
    expect(r.notes.join('\n')).toContain(
      "take-over: kept kube-proxy's chains a foreign chain jumps to: iptables-nft nat/KUBE-MARK-MASQ",
    );

    const tables = await inNs(NS, 'nft', ['list', 'tables']);
    expect(tables).not.toMatch(/kube-proxy/);
    expect(await inNs(NS, 'nft', ['list', 'table', 'inet', 'foreign-fw'])).toBe(before.foreignTable);
    // iptables-nft: what is left is exactly the foreign state plus the kept KUBE-MARK-MASQ
    const afterNft = saveLines(await inNs(NS, 'iptables-nft-save', []));
    const expected = saveLines(before.nft!).filter((l) => {
      if (/KUBE-MARK-MASQ|^\*/.test(l) && !/KUBE-(EXT|SEP)-/.test(l)) return true;
      return !/KUBE-(SERVICES|NODEPORTS|POSTROUTING|PROXY-CANARY|SEP-|SVC-|EXT-|EXTERNAL-SERVICES|FORWARD|PROXY-FIREWALL)/.test(
        l,
      );
    });
    expect(afterNft).toEqual(expected);
    expect(afterNft).toEqual(expect.arrayContaining(saveLines(FOREIGN_IPTABLES)));
    // legacy: kube-proxy's chains and jump gone, the built-in chains stay
    expect(await inNs(NS, 'iptables-legacy-save', [])).not.toMatch(/KUBE-/);

    // the check after the take-over: only the kept (inert) KUBE-MARK-MASQ, logged, resync passes
    const again = await dp.resync();
    expect(again.verified).toBe(true);
    expect(again.notes.join('\n')).toMatch(/inert .*iptables-nft nat chains KUBE-MARK-MASQ/);
  });
});
