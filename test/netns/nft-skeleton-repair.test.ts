// A table left by the previous release (or with its skeleton edited) is mended in place by the
// next apply or resync, over both backends, against the real kernel: the table keeps its handle
// (no reload: at 10k services a reload spans several netlink batches with no table in between)
// and ends exactly as a fresh load programs it.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { RepairStep } from './support/nft-skeleton-repair-scenarios.ts';

const SCENARIOS = fileURLToPath(new URL('./support/nft-skeleton-repair-scenarios.ts', import.meta.url));
const OLD = 'chain nat-postrouting has 1 rules, want 3; set hairpin missing; set hairpin6 missing';

let ns: TestNetns;
beforeAll(async () => {
  ns = await TestNetns.create('nftrep');
});
afterAll(async () => {
  await ns?.destroy();
});

describe.each(['netlink', 'nft'] as const)('skeleton repair in place (%s backend)', (backend) => {
  it('adopting and resyncing a previous-release skeleton keeps the table and ends as a fresh load', async () => {
    const steps = await ns.run<RepairStep[]>(SCENARIOS, 'repairPreviousReleaseSkeleton', [backend], {
      timeoutMs: 120_000,
    });
    const [fresh, first, adopted, resynced, after] = steps;
    expect(adopted!.notes).toEqual(['adopted existing table', `skeleton repaired in place (${OLD})`]);
    expect(resynced!.notes).toContain(`skeleton repaired in place (${OLD})`);
    for (const s of [adopted!, resynced!]) {
      expect(s.verified, s.step).toBe(true);
      expect(s.writes, s.step).toBeGreaterThan(0);
      expect(s.handle, s.step).toBe(first!.handle);
      expect(s.blocks, s.step).toEqual(fresh!.blocks);
    }
    expect(after!.writes).toBe(0);
    expect(after!.blocks).toEqual(fresh!.blocks);
  }, 180_000);
});
