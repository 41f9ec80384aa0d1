// A whole-table read asked to give way (a periodic resync yielding to an apply that arrived) stops
// early and leaves the runner and its dump thread fit for the next read; a resync that gave way
// wrote nothing. In a netns this test creates.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { giveWayAfterTheRead, readGivingWay, resyncGivingWay } from './support/nft-give-way-scenarios.ts';

const SCENARIOS = fileURLToPath(new URL('./support/nft-give-way-scenarios.ts', import.meta.url));
let netns: TestNetns;
beforeAll(async () => {
  netns = await TestNetns.create('giveway');
});
afterAll(async () => {
  await netns?.destroy();
});

describe('a whole nftables read that gives way', () => {
  it('stops once asked, within the dumps in flight; the same runner and worker then read the whole table', async () => {
    const r = await netns.run<Awaited<ReturnType<typeof readGivingWay>>>(SCENARIOS, 'readGivingWay', [3000], {
      timeoutMs: 60_000,
    });
    expect(r.reference).not.toBe('absent');
    expect(r.warm).toBe(r.reference);
    expect(r.aborted).toBe('AbortError');
    // asked after the worker's first chunk (256 sets), it stopped well short of its share (about
    // half the table's ~3,000 sets): what it dumped after the ask is what its messages took to
    // cross, a few dozen sets
    expect(r.handedBeforeNext).toBeGreaterThanOrEqual(256);
    expect(r.handedBeforeNext).toBeLessThan((r.nextStats?.threadDumps ?? 0) / 2);
    // and the calling thread took no more dumps: it received less than half a whole read's datagrams
    expect(r.abortedDatagrams).toBeLessThan(r.wholeDatagrams / 2);
    // a signal fired before the read: nothing dumped past the listing
    expect(r.earlyOutcome).toBe('AbortError');
    expect(r.handedEarly).toBe(0);
    // the next read is whole, on the same worker
    expect(r.next).toBe(r.reference);
    expect(r.nextStats?.dumps).toBe(r.referenceDumps);
    expect(r.nextStats?.threadError).toBeUndefined();
    expect(r.handedNext).toBe(r.nextStats?.threadDumps);
    expect(r.workers).toBe(1);
  }, 90_000);

  it('a resync that gives way writes nothing; the next one repairs', async () => {
    const r = await netns.run<Awaited<ReturnType<typeof resyncGivingWay>>>(SCENARIOS, 'resyncGivingWay', [300], {
      timeoutMs: 60_000,
    });
    expect(r.gaveWay).toEqual({ outcome: 'yielded', writes: 0 });
    expect(r.afterGiveWay).toEqual({ generationMoved: false, elementBack: false });
    expect(r.repaired).toEqual({ writes: 1, verified: true, elementBack: true });
  }, 90_000);

  it('a resync asked to give way once its whole read is done still gives way, and that whole read stays owed', async () => {
    const r = await netns.run<Awaited<ReturnType<typeof giveWayAfterTheRead>>>(
      SCENARIOS,
      'giveWayAfterTheRead',
      [300],
      {
        timeoutMs: 60_000,
      },
    );
    expect(r.late).toBe('yielded');
    // the retry reads the whole table (not only what notifications named): the read that gave way counted for nothing
    expect(r.retryNotes).toContain('whole read: the table was last known whole over 1 s ago');
    expect(r).toMatchObject({ retryVerified: true, retryWrites: 0 });
  }, 90_000);
});
