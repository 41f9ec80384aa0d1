// `applier --nft-notifications on|off` reaches the nftables dataplane through createDataplane:
// on, a listener child follows nf_tables' notifications and a resync after another table's commit
// reads nothing of ours; off, no child is started and the resync reads our table back. Real
// kernel, own netns.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { OptionOutcome } from './support/nft-notifications-option-scenario.ts';

const SCENARIO = fileURLToPath(new URL('./support/nft-notifications-option-scenario.ts', import.meta.url));

let ns: TestNetns;
beforeAll(async () => {
  ns = await TestNetns.create('nftopt');
});
afterAll(async () => {
  await ns?.destroy();
});

it('nftChangeNotifications: on starts the listener and skips the read; off starts none and reads', async () => {
  const outcomes = await ns.run<OptionOutcome[]>(SCENARIO, 'withAndWithoutNotifications', [], { timeoutMs: 60_000 });
  expect(outcomes).toEqual([
    { notifications: true, listenerChildren: 1, resync: 'none', writes: 0 },
    { notifications: false, listenerChildren: 0, resync: 'read', writes: 0 },
  ]);
}, 90_000);
