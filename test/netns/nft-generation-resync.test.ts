// The netlink dataplane's resync skips its read-back only while the netns' nf_tables ruleset
// generation is the one at which it last knew the table (after its own commits, or a verified
// read); a change made by the `nft` binary in the same netns, to our table or any other, moves
// the generation, and the next resync reads back what nf_tables' notifications say changed in our
// table (nothing for another table: nft-notified-resync.test.ts has the cases) and repairs it.
// Real kernel, own netns.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { ResyncStep } from './support/nft-generation-scenarios.ts';

const SCENARIOS = fileURLToPath(new URL('./support/nft-generation-scenarios.ts', import.meta.url));

let ns: TestNetns;
beforeAll(async () => {
  ns = await TestNetns.create('nftgen');
});
afterAll(async () => {
  await ns?.destroy();
});

const expected = (step: string, skippedReadBack: boolean, repaired: boolean) => ({
  step,
  skippedReadBack,
  writes: repaired ? expect.any(Number) : 0,
  verified: true,
  tableWhole: true,
});

describe.each([true, false])('netlink resync by ruleset generation (verifyAfterApply %s)', (verifyAfterApply) => {
  it('skips the read-back only while nothing committed; repairs what nft changed', async () => {
    const steps = await ns.run<ResyncStep[]>(SCENARIOS, 'resyncAcrossForeignChanges', [verifyAfterApply], {
      timeoutMs: 120_000,
    });
    expect(steps).toEqual([
      expected('resync after the initial load', true, false),
      expected('resync after an endpoint change', true, false),
      expected('resync after nft deleted a map element', false, true),
      expected('resync after the repair', true, false),
      expected('resync after nft flushed an endpoint chain', false, true),
      expected('resync after nft added another table', true, false), // notifications: none to our table
      expected('resync after that', true, false),
    ]);
    for (const s of steps.filter((x) => x.step.includes('nft deleted') || x.step.includes('nft flushed')))
      expect(s.writes, s.step).toBeGreaterThan(0);
  }, 180_000);
});
