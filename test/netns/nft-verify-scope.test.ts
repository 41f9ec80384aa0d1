// verify-after-apply reads back only what the apply's transaction touched (chains, per-group
// sets and maps, single skeleton elements), yet still catches damage to any of those made
// between the commit and the read; damage elsewhere is left to resync, which the ruleset
// generation sends to a full read. Real kernel, netlink backend, own netns.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { VerifyStep } from './support/nft-verify-scenarios.ts';

const SCENARIOS = fileURLToPath(new URL('./support/nft-verify-scenarios.ts', import.meta.url));

let ns: TestNetns;
beforeAll(async () => {
  ns = await TestNetns.create('nftver');
});
afterAll(async () => {
  await ns?.destroy();
});

describe('verify after apply over netlink', () => {
  it('reads back only the touched objects and catches damage to them', async () => {
    const steps = await ns.run<VerifyStep[]>(SCENARIOS, 'verifyCatchesDamage', [], { timeoutMs: 120_000 });
    const by = new Map(steps.map((s) => [s.step, s]));
    const get = (name: string) => {
      const s = by.get(name);
      if (!s) throw new Error(`no step ${name}`);
      return s;
    };
    // A first apply looks for a table to adopt, then verifies the load: both whole-table reads.
    expect(get('initial load')).toMatchObject({ verified: true, read: 'whole table + whole table' });

    const slot = get('endpoint change, its map slot rewritten behind our back');
    expect(slot).toMatchObject({ verified: false, read: '0 chains, 1 sets, 2 elements' });
    expect(slot.notes.join(' ')).toMatch(/set endpoints-\S+ns\/a\/p\/tcp: elements differ/);

    const hairpin = get('endpoint change, its new hairpin entry deleted');
    expect(hairpin.verified).toBe(false);
    expect(hairpin.notes.join(' ')).toContain('element 10.1.0.7 . 10.1.0.7 of hairpin: missing');

    const chain = get('affinity endpoint change, its new endpoint chain flushed');
    expect(chain.verified).toBe(false);
    expect(chain.notes.join(' ')).toMatch(/chain endpoint-\S*10\.1\.0\.8\S*: differs/);

    // Outside the scope: the apply's verify does not see it, the next resync does (and repairs).
    expect(get('endpoint change, an untouched service-ips entry deleted')).toMatchObject({ verified: true });
    const full = get('the generation moved: resync reads all and repairs');
    expect(full.writes).toBeGreaterThan(0);
    expect(full.verified).toBe(true);
    for (const r of ['resync repairs it', 'resync repairs that', 'resync repairs the chain'])
      expect(get(r), r).toMatchObject({ verified: true, writes: expect.any(Number) });
    expect(get('resync repairs it').writes).toBeGreaterThan(0);
    expect(get('no-op apply')).toMatchObject({ verified: true, writes: 0, read: 'nothing' });
  }, 180_000);
});
