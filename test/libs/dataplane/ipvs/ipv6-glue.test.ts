// probe6 P3: ipvs mode programs the netfilter glue of each family the node state has (IPv4 with
// iptables, IPv6 with ip6tables over the KUBE-6-* sets), removes it as the IPv4 half, and, where
// the node cannot have IPv6 glue, serves IPv4 alone (fail closed for IPv6, with a note).
// The states come from the real renderer; the kernel is the recording fake.
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { describeOp } from '../../../../libs/dataplane/ipvs/kernel-op.ts';
import { MemoryOwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { NODES, planFor, service, slice } from '../../../support/plan-fixture.ts';

const open: IpvsDataplane[] = [];
function setup(kernel = new FakeIpvsKernel(), store = new MemoryOwnershipStore()) {
  const dp = new IpvsDataplane({ kernel, store, kernelRelease: '6.1.0', registry: new Registry() });
  open.push(dp);
  return { kernel, store, dp };
}
afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
});

const V4 = NODES + service('web', 'clusterIP: 10.96.0.9\n  ports: [{name: http, port: 80}]');
const DUAL =
  NODES +
  service(
    'v6lb',
    'type: LoadBalancer\n  ipFamilies: [IPv4, IPv6]\n  clusterIPs: [10.96.0.9, "fd00::9"]\n  clusterIP: 10.96.0.9\n  loadBalancerSourceRanges: [198.51.100.0/24, "2001:db8:aaaa::/48"]\n  ports: [{name: http, port: 80, nodePort: 31090}]',
    'status: {loadBalancer: {ingress: [{ip: 203.0.113.19}, {ip: "2001:db8:1::19"}]}}',
  ) +
  slice('v6lb', '[{name: http, port: 8080}]', ['{addresses: ["fd50:2::13"], nodeName: node-b}'], {
    addressType: 'IPv6',
  });
const config = { clusterCIDR: 'fd00:10:244::/56' };

describe('IPv6 netfilter glue (ipvs mode)', () => {
  it('a dual-stack state gets the ip6tables half over the KUBE-6-* sets, verified; a second apply writes nothing; cleanup removes both halves', async () => {
    const { kernel, store, dp } = setup();
    const state = planFor(DUAL, 'node-a', config).state;
    const r = await dp.apply(state);
    expect(r.verified).toBe(true);
    expect(kernel.lastTransaction!.ops.map(describeOp).filter((o) => o.startsWith('restore'))).toEqual([
      expect.stringMatching(/^restore IPv4 netfilter rules/),
      expect.stringMatching(/^restore IPv6 netfilter rules/),
    ]);
    const v6 = kernel.iptablesSave('IPv6');
    expect(v6).toContain('-A KUBE-FIREWALL -m set --match-set KUBE-6-LOAD-BALANCER-SOURCE-CID dst,dst,src -j RETURN');
    expect(v6).toContain('-A KUBE-SERVICES ! -s fd00:10:244::/56 -m comment');
    expect(v6).toContain('-m set --match-set KUBE-6-LOOP-BACK dst,dst,src -j MASQUERADE');
    expect(v6).toContain('-A KUBE-NODE-PORT -p tcp -m set --match-set KUBE-6-NODE-PORT-TCP dst -j KUBE-MARK-MASQ');
    expect(v6).toContain('-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER');
    expect(v6).not.toMatch(/--match-set KUBE-(?!6-)/);
    // The IPv6 pod CIDR is not written into the IPv4 rules (iptables-restore would refuse it).
    expect(kernel.iptablesSave('IPv4')).not.toContain('! -s');
    expect(store.record.netfilterChains['ip6:nat']).toContain('KUBE-FIREWALL');
    expect(kernel.ipvsadmSave()).toContain('-A -t [2001:db8:1::19]:80 -s rr');

    expect((await dp.apply(state)).kernelWrites).toBe(0);
    expect((await dp.resync()).kernelWrites).toBe(0);

    await dp.cleanup();
    expect(kernel.iptablesSave('IPv4')).not.toContain('KUBE-');
    expect(kernel.iptablesSave('IPv6')).not.toContain('KUBE-');
    expect(store.record.netfilterChains).toEqual({});
  });

  it('comes with the first IPv6 service and goes with the last, the IPv4 half staying', async () => {
    const { kernel, dp } = setup();
    expect((await dp.apply(planFor(V4, 'node-a', config).state)).verified).toBe(true);
    expect(kernel.iptablesSave('IPv6')).not.toContain('KUBE-');
    expect((await dp.apply(planFor(DUAL, 'node-a', config).state)).verified).toBe(true);
    expect(kernel.iptablesSave('IPv6')).toContain('-A KUBE-LOAD-BALANCER');
    expect((await dp.apply(planFor(V4, 'node-a', config).state)).verified).toBe(true);
    expect(kernel.iptablesSave('IPv6')).not.toContain('KUBE-');
    expect(kernel.iptablesSave('IPv4')).toContain('-A KUBE-LOAD-BALANCER');
  });

  it('where IPv6 glue cannot be programmed, serves IPv4 alone and says why; IPv6 chains it had are left and forgotten', async () => {
    const kernel = new FakeIpvsKernel();
    const store = new MemoryOwnershipStore();
    const state = planFor(DUAL, 'node-a', config).state;
    await setup(kernel, store).dp.apply(state);
    const v6sets = () =>
      kernel
        .ipsetSave()
        .split('\n')
        .filter((l) => l.includes(' KUBE-6-'));
    const setsBefore = v6sets();
    kernel.ipv6Missing = 'ip6tables-save -t nat: spawn ip6tables-save ENOENT';
    const { dp } = setup(kernel, store);
    const r = await dp.apply(state);
    expect(r.verified).toBe(true);
    expect(r.notes).toContain(
      'IPv6 not programmed (ip6tables-save -t nat: spawn ip6tables-save ENOENT): 3 IPv6 virtual server(s) not served, IPv4 is',
    );
    expect(r.notes).toContain(
      'IPv6 netfilter chains and KUBE-6-* sets left as they are (ip6tables-save -t nat: spawn ip6tables-save ENOENT)',
    );
    expect(kernel.ipvsadmSave()).not.toContain('[');
    expect(kernel.ipvsadmSave()).toContain('-A -t 203.0.113.19:80 -s rr');
    expect(kernel.addresses().filter((a) => a.includes(':'))).toEqual([]);
    expect(v6sets()).toEqual(setsBefore); // the rules left still reference them
    expect(kernel.lastTransaction!.ops.filter((o) => o.kind === 'netfilter' && o.family === 'IPv6')).toEqual([]);
    expect(store.record.netfilterChains['ip6:nat']).toBeUndefined();
    // An endpoint change to the IPv6 service (incremental) stays out too, and so does cleanup's IPv6.
    const next = planFor(DUAL.replace('fd50:2::13', 'fd50:2::14'), 'node-a', config).state;
    expect((await dp.apply(next)).verified).toBe(true);
    expect(kernel.ipvsadmSave()).not.toContain('[');
    await dp.cleanup();
    expect(kernel.iptablesSave('IPv4')).not.toContain('KUBE-');
  });
});
