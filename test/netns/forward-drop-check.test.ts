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
});
