// kube-proxy's IPv6 leftovers on a real kernel, in a namespace this test makes: a dual-stack
// kube-proxy's ipvs-mode chains in ip6tables-nft (hooked into PREROUTING/OUTPUT/POSTROUTING,
// INPUT, FORWARD) and an iptables-mode "has no endpoints" REJECT in ip6tables-legacy, next to the
// kubelet's, docker's and a CNI portmap chain that jumps to KUBE-MARK-MASQ (all IPv6).
//  1. ipvs mode on a node we serve over IPv4 only (no IPv6 half of our glue): the check names the
//     ip6tables chains as competing and fails the resync with --take-over-kube-proxy; on a node
//     with IPv6 services the names our IPv6 glue declares are ours, not leftovers;
//  2. the take-over's leftover removal (ipvs mode) removes exactly kube-proxy's IPv6 chains, keeps
//     KUBE-MARK-MASQ (the CNI chain jumps to it) and every foreign rule.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  findKubeProxyLeftovers,
  ipv6GlueChains,
  takeOverLeftovers,
  withKubeProxyLeftoverCheck,
} from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';
import { fakeDataplane, saveLines } from './support/fake-dataplane.ts';
import { inNs, sh } from './support/netns-lab.ts';
import { nodeState } from './support/node-state-builder.ts';

const NS = `sbkp6${process.pid % 100000}`;
// kube-proxy ipvs mode's IPv6 proxier (pkg/proxy/ipvs/proxier.go shapes, set matches left out)
const KUBE_PROXY_IPVS_V6 = `*mangle
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-PROXY-CANARY - [0:0]
-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-IPVS-FILTER -d fd00:96::10/128 -p tcp -m tcp --dport 81 -j DROP
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-NODE-PORT -p tcp -m tcp --dport 30080 -j KUBE-MARK-MASQ
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
`;
const FOREIGN_V6 = `*mangle
:KUBE-IPTABLES-HINT - [0:0]
COMMIT
*filter
:KUBE-FIREWALL - [0:0]
:DOCKER-USER - [0:0]
-A INPUT -j KUBE-FIREWALL
-A FORWARD -j DOCKER-USER
-A KUBE-FIREWALL -d ::1/128 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
COMMIT
*nat
:DOCKER - [0:0]
:CNI-DN-1 - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -p tcp -m tcp --dport 8443 -j CNI-DN-1
-A CNI-DN-1 -s fd00:50::10/128 -p tcp -m tcp --dport 8443 -j KUBE-MARK-MASQ
-A CNI-DN-1 -p tcp -m tcp --dport 8443 -j DNAT --to-destination [fd00:50::10]:8080
COMMIT
`;
const KUBE_PROXY_IPTABLES_V6_LEGACY = `*filter
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -j KUBE-SERVICES
-A KUBE-SERVICES -d fd00:96::20/128 -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp6-port-unreachable
COMMIT
`;
const isRoot = process.getuid?.() === 0;
const V4_ONLY = nodeState([]); // no KUBE-6-* sets: our glue has no IPv6 half
const DUAL_STACK: NodeState = {
  ...V4_ONLY,
  ipsets: [{ name: 'KUBE-6-CLUSTER-IP', type: 'hash:ip,port', family: 'inet6', entries: [] }],
};
const exec = (cmd: string, args: readonly string[], input?: string) => inNs(NS, cmd, args, input);

// Skipped unless root: `ip netns add` and ip6tables inside a namespace need CAP_SYS_ADMIN and
// CAP_NET_ADMIN (CI runs as root, so it runs there).
describe.skipIf(!isRoot)("kube-proxy's IPv6 leftovers in a netns (needs root for ip netns)", () => {
  beforeAll(async () => {
    await sh('ip', ['netns', 'add', NS]);
    await inNs(NS, 'ip6tables-nft-restore', ['--noflush'], KUBE_PROXY_IPVS_V6);
    await inNs(NS, 'ip6tables-nft-restore', ['--noflush'], FOREIGN_V6);
    await inNs(NS, 'ip6tables-legacy-restore', ['--noflush'], KUBE_PROXY_IPTABLES_V6_LEGACY);
  });
  afterAll(async () => {
    await sh('ip', ['netns', 'del', NS]).catch(() => undefined);
  });

  it('ipvs mode, IPv4-only node: the check names the ip6tables chains and fails the resync; dual-stack: the glue keeps its own', async () => {
    const logs: string[] = [];
    const dp = withKubeProxyLeftoverCheck(fakeDataplane('ipvs') /* no IPVS in this kernel */, {
      exec,
      log: (l) => logs.push(l),
    });
    expect((await dp.apply(V4_ONLY)).notes.join('\n')).toMatch(
      /kube-proxy's rules compete with this node's \(ip6tables-nft filter\/KUBE-FORWARD, ip6tables-nft filter\/KUBE-IPVS-FILTER, ip6tables-nft nat\/KUBE-POSTROUTING, ip6tables-nft nat\/KUBE-SERVICES and 1 more/,
    );
    await expect(dp.resync()).rejects.toThrow(
      /found: .*ip6tables-nft nat chains .*ip6tables-legacy filter chains KUBE-SERVICES; .*--take-over-kube-proxy/,
    );
    expect(logs).toHaveLength(1);

    const dual = await findKubeProxyLeftovers('ipvs', exec, ipv6GlueChains(DUAL_STACK));
    const names = dual.iptables.flatMap((x) => x.tables.flatMap((t) => t.removed.map((c) => `${x.tool.save} ${c}`)));
    // our IPv6 glue declares these names (adopted in place), kube-proxy's canary is not among them
    expect(names.sort()).toEqual([
      'ip6tables-legacy-save filter/KUBE-SERVICES',
      'ip6tables-nft-save filter/KUBE-PROXY-CANARY',
      'ip6tables-nft-save mangle/KUBE-PROXY-CANARY',
    ]);
  });

  it("the take-over (ipvs mode, IPv4-only node) removes exactly kube-proxy's IPv6 chains", async () => {
    const before = saveLines(await inNs(NS, 'ip6tables-nft-save', []));
    const { notes } = await takeOverLeftovers('ipvs', exec, V4_ONLY);
    expect(notes.join('\n')).toMatch(
      /take-over: removed kube-proxy's 8 iptables chains: ip6tables-nft mangle\/KUBE-PROXY-CANARY, /,
    );
    expect(notes).toContain(
      "take-over: kept kube-proxy's chains a foreign chain jumps to: ip6tables-nft nat/KUBE-MARK-MASQ (jumped to from CNI-DN-1)",
    );
    const after = saveLines(await inNs(NS, 'ip6tables-nft-save', []));
    // what stays: every foreign line, the kept KUBE-MARK-MASQ, nothing else of kube-proxy's
    expect(after).toEqual(
      before.filter((l) => !/KUBE-(SERVICES|NODE-PORT|POSTROUTING|FORWARD|IPVS-FILTER|PROXY-CANARY)/.test(l)),
    );
    expect(after).toEqual(expect.arrayContaining(saveLines(FOREIGN_V6)));
    expect(await inNs(NS, 'ip6tables-legacy-save', [])).not.toMatch(/KUBE-/);
    const left = await findKubeProxyLeftovers('ipvs', exec, ipv6GlueChains(V4_ONLY));
    expect(left.iptables.flatMap((x) => x.tables.flatMap((t) => t.hooked))).toEqual([]);
  });
});
