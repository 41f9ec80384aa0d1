// The forward drop check's pure parts and its ipvs-mode reading (node10 part 3), over a scripted
// `exec`: what counts as a drop nothing of ours accepts. On a real kernel: test/netns/forward-drop-check.test.ts.
import { describe, expect, it } from 'vitest';
import { findForwardDrops, forwardDropsWithoutOurAccept } from '../../../libs/dataplane/index.ts';

const save = (policy: string, rules: string[] = []) =>
  ['*filter', ':INPUT ACCEPT [0:0]', `:FORWARD ${policy} [0:0]`, ':OUTPUT ACCEPT [0:0]', ...rules, 'COMMIT', ''].join(
    '\n',
  );
const OUR_JUMP = '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD';
const CHAINS = `table ip filter {
\tchain FORWARD {
\t\ttype filter hook forward priority filter; policy drop;
\t}
}
table inet firewalld {
\tchain filter_FORWARD {
\t\ttype filter hook forward priority filter + 10; policy drop;
\t}
}
`;

describe('forward drops in ipvs mode', () => {
  it('a FORWARD DROP counts only without our jump to KUBE-FORWARD; ACCEPT never', () => {
    expect(forwardDropsWithoutOurAccept(save('DROP'))).toBe(true);
    expect(forwardDropsWithoutOurAccept(save('DROP', ['-A FORWARD -j DOCKER-USER']))).toBe(true);
    expect(forwardDropsWithoutOurAccept(save('DROP', ['-A FORWARD -j DOCKER-USER', OUR_JUMP]))).toBe(false);
    expect(forwardDropsWithoutOurAccept(save('ACCEPT'))).toBe(false);
    expect(forwardDropsWithoutOurAccept('')).toBe(false); // a missing tool
    // a jump to KUBE-FORWARD from another chain is not in FORWARD: still counted
    expect(forwardDropsWithoutOurAccept(save('DROP', ['-A DOCKER-USER -j KUBE-FORWARD']))).toBe(true);
  });

  it("names other tables' drop chains and each save tool's FORWARD without our jump, not iptables-nft's own chain twice", async () => {
    const saves: Record<string, string> = {
      'iptables-nft-save': save('DROP', [OUR_JUMP]), // docker's DROP, our glue in it: fine
      'ip6tables-nft-save': save('DROP'),
      'iptables-legacy-save': save('DROP'),
    };
    const exec = async (cmd: string) => {
      if (cmd === 'nft') return CHAINS;
      if (cmd in saves) return saves[cmd]!;
      throw new Error(`${cmd}: not found`);
    };
    expect(await findForwardDrops(exec, 'ipvs')).toEqual([
      'table inet firewalld chain filter_FORWARD',
      'ip6tables-nft filter FORWARD (no jump to KUBE-FORWARD)',
      'iptables-legacy filter FORWARD (no jump to KUBE-FORWARD)',
    ]);
    // nftables mode is unchanged: any forward drop chain but ours, and legacy's FORWARD DROP
    expect(await findForwardDrops(exec, 'nftables')).toEqual([
      'table ip filter chain FORWARD',
      'table inet firewalld chain filter_FORWARD',
      'iptables-legacy filter FORWARD',
    ]);
  });
});
