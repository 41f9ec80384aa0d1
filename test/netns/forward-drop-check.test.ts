// Another program's forward-hook drop policy is named (probe7 C3), on a real kernel in a namespace
// this test makes: docker's `iptables -P FORWARD DROP` (iptables-nft), firewalld's shape (an inet
// table's filter_FORWARD at filter + 10, policy drop) and an iptables-legacy FORWARD DROP; a
// forward chain with policy accept and our own table are not named. Once they are gone, the
// next resync says so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withForwardDropCheck } from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';
import { fakeDataplane } from './support/fake-dataplane.ts';
import { inNs, sh } from './support/netns-lab.ts';

const NS = `sbfwd${process.pid % 100000}`;
const isRoot = process.getuid?.() === 0;
const RULESET = `table inet fwtest {
\tchain filter_FORWARD { type filter hook forward priority filter + 10; policy drop; ct state established,related accept; }
\tchain open { type filter hook forward priority filter + 20; policy accept; }
}
table inet switchboard {
\tchain filter-forward { type filter hook forward priority -110; policy drop; }
}
`;

// Skipped unless root: `ip netns add` and nft/iptables inside a namespace need CAP_SYS_ADMIN and
// CAP_NET_ADMIN (CI runs as root, so it runs there).
describe.skipIf(!isRoot)('forward-hook drop policies of other tables (needs root for ip netns)', () => {
  beforeAll(async () => {
    await sh('ip', ['netns', 'add', NS]);
    await inNs(NS, 'nft', ['-f', '-'], RULESET);
    await inNs(NS, 'iptables-nft', ['-P', 'FORWARD', 'DROP']);
    await inNs(NS, 'iptables-legacy', ['-P', 'FORWARD', 'DROP']);
  });
  afterAll(async () => {
    await sh('ip', ['netns', 'del', NS]).catch(() => undefined);
  });

  it('named in the first apply and the log, once; gone at a later resync', async () => {
    const logs: string[] = [];
    const dp = withForwardDropCheck(fakeDataplane('nftables'), {
      netns: NS,
      log: (l) => logs.push(l),
      minCheckIntervalMs: 0,
    });
    const r = await dp.apply({} as NodeState);
    expect(r.verified).toBe(true);
    expect(r.notes).toHaveLength(1);
    expect(r.notes[0]).toMatch(
      /^forwarded Service traffic .* may be dropped on this node by table inet fwtest chain filter_FORWARD, table ip filter chain FORWARD, iptables-legacy filter FORWARD \(forward hook, policy drop\)/,
    );
    expect((await dp.resync()).notes).toEqual(r.notes);
    expect(logs).toEqual(r.notes); // said once
    await inNs(NS, 'nft', ['delete', 'table', 'inet', 'fwtest']);
    await inNs(NS, 'iptables-nft', ['-P', 'FORWARD', 'ACCEPT']);
    await inNs(NS, 'iptables-legacy', ['-P', 'FORWARD', 'ACCEPT']);
    expect((await dp.resync()).notes).toEqual([]);
    expect(logs.at(-1)).toBe('the forward-hook drop policies named before are gone');
  });

  // ipvs mode (node10 part 3): docker's FORWARD DROP is harmless once our glue's jump to
  // KUBE-FORWARD is in that chain; named while nothing of ours accepts there, and for a native
  // table's drop chain and the other iptables variant's FORWARD DROP, which our rules cannot answer.
  it('ipvs mode: names a FORWARD DROP without our KUBE-FORWARD jump, and other tables; not once our jump is in it', async () => {
    await inNs(NS, 'nft', ['-f', '-'], RULESET.split('table inet switchboard')[0]!); // fwtest again
    await inNs(NS, 'iptables-nft', ['-P', 'FORWARD', 'DROP']);
    await inNs(NS, 'iptables-legacy', ['-P', 'FORWARD', 'DROP']);
    const reports: (string | undefined)[] = [];
    const dp = withForwardDropCheck(fakeDataplane('ipvs'), {
      netns: NS,
      minCheckIntervalMs: 0,
      onReport: (r) => reports.push(r),
    });
    const r = await dp.apply({} as NodeState);
    expect(r.notes).toHaveLength(1);
    expect(r.notes[0]).toMatch(
      /^forwarded Service traffic .* may be dropped on this node by table inet fwtest chain filter_FORWARD, iptables-nft filter FORWARD \(no jump to KUBE-FORWARD\), iptables-legacy filter FORWARD \(no jump to KUBE-FORWARD\) \(forward hook, policy drop\) and nothing of ours accepts it there/,
    );
    expect(reports).toEqual([r.notes[0]]);
    // our glue's accept chain and jump, as the ipvs dataplane programs them (netfilter-glue.ts)
    await inNs(NS, 'iptables-nft', ['-N', 'KUBE-FORWARD']);
    await inNs(NS, 'iptables-nft', ['-A', 'KUBE-FORWARD', '-m', 'mark', '--mark', '0x4000/0x4000', '-j', 'ACCEPT']);
    await inNs(NS, 'iptables-nft', [
      '-I',
      'FORWARD',
      '-m',
      'comment',
      '--comment',
      'kubernetes forwarding rules',
      '-j',
      'KUBE-FORWARD',
    ]);
    await inNs(NS, 'nft', ['delete', 'table', 'inet', 'fwtest']);
    const second = (await dp.resync()).notes;
    expect(second).toEqual([
      expect.stringMatching(/by iptables-legacy filter FORWARD \(no jump to KUBE-FORWARD\) \(forward hook/),
    ]);
    await inNs(NS, 'iptables-legacy', ['-P', 'FORWARD', 'ACCEPT']);
    expect((await dp.resync()).notes).toEqual([]); // iptables-nft's FORWARD still DROP: our jump accepts
    expect(reports).toEqual([r.notes[0], second[0], undefined]);
  });
});
