// The netfilter glue against the real kernel: iptables-restore --noflush inside a network
// namespace this test creates (the host kernel has netfilter and ipset; IPVS is not needed).
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { glueChains, netfilterGlue, parseIptablesSave } from '../../../../libs/dataplane/ipvs/netfilter-glue.ts';
import { planNetfilter } from '../../../../libs/dataplane/ipvs/plan-netfilter.ts';
import { IPSET_TABLE } from '../../../../libs/planner/index.ts';

const ns = `sbglue${process.pid}`;
const inNs = (argv: string[], input?: string) =>
  execFileSync('ip', ['netns', 'exec', ns, ...argv], { input: input ?? '' }).toString();
const settings = { masqueradeAll: false, clusterCIDR: '10.244.0.0/16' };
const glue = netfilterGlue(settings);
const ours = glueChains(glue);
const observe = () => ({ tables: parseIptablesSave(inNs(['iptables-save']), ours) });
const FOREIGN = ['-A INPUT -s 192.0.2.99/32 -j DROP', '-A FOREIGN-CHAIN -j ACCEPT'];

beforeEach(() => {
  execFileSync('ip', ['netns', 'add', ns]);
  // Our rules reference kube-proxy's sets, which must exist for iptables to accept them.
  for (const [name, type] of IPSET_TABLE)
    inNs(['ipset', 'create', name, type, ...(type === 'bitmap:port' ? ['range', '0-65535'] : [])]);
  inNs(['iptables', '-N', 'FOREIGN-CHAIN']);
  inNs(['iptables', '-A', 'FOREIGN-CHAIN', '-j', 'ACCEPT']);
  inNs(['iptables', '-A', 'INPUT', '-s', '192.0.2.99/32', '-j', 'DROP']);
});
afterEach(() => {
  execFileSync('ip', ['netns', 'del', ns]);
});

describe('netfilter glue on a real kernel', () => {
  it('applies in one restore, reads back equal (no second write), and keeps foreign rules', () => {
    const text = planNetfilter(glue, observe(), {})!;
    inNs(['iptables-restore', '--noflush'], text);
    expect(planNetfilter(glue, observe(), ours)).toBeUndefined();
    const save = inNs(['iptables-save', '-t', 'filter']);
    for (const f of FOREIGN) expect(save).toContain(f);
    // Our jumps sit first in INPUT, the foreign rule after them.
    expect(inNs(['iptables', '-S', 'INPUT']).split('\n').filter(Boolean)).toEqual([
      '-P INPUT ACCEPT',
      '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
      '-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      '-A INPUT -s 192.0.2.99/32 -j DROP',
    ]);
  });

  it('repairs drift (a deleted rule, a deleted jump) and changes with settings', () => {
    inNs(['iptables-restore', '--noflush'], planNetfilter(glue, observe(), {})!);
    inNs(['iptables', '-t', 'nat', '-D', 'KUBE-MARK-MASQ', '-j', 'MARK', '--set-xmark', '0x4000/0x4000']);
    inNs([
      'iptables',
      '-t',
      'nat',
      '-D',
      'PREROUTING',
      '-m',
      'comment',
      '--comment',
      'kubernetes service portals',
      '-j',
      'KUBE-SERVICES',
    ]);
    const repair = planNetfilter(glue, observe(), ours)!;
    expect(repair).toContain('-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
    expect(repair).not.toContain('*filter');
    inNs(['iptables-restore', '--noflush'], repair);
    expect(planNetfilter(glue, observe(), ours)).toBeUndefined();
    const all = netfilterGlue({ masqueradeAll: true, clusterCIDR: '' });
    inNs(['iptables-restore', '--noflush'], planNetfilter(all, observe(), ours)!);
    expect(inNs(['iptables', '-t', 'nat', '-S', 'KUBE-SERVICES'])).not.toContain('10.244.0.0/16');
    expect(planNetfilter(all, observe(), ours)).toBeUndefined();
  });

  it('cleanup removes only our chains and jumps', () => {
    inNs(['iptables-restore', '--noflush'], planNetfilter(glue, observe(), {})!);
    inNs(['iptables-restore', '--noflush'], planNetfilter(undefined, observe(), ours)!);
    const save = inNs(['iptables-save']);
    expect(save).not.toContain('KUBE-');
    for (const f of FOREIGN) expect(save).toContain(f);
    expect(planNetfilter(undefined, observe(), ours)).toBeUndefined();
  });
});
