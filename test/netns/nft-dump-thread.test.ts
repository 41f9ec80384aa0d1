// A whole-table nftables read with a share of its element dumps on a worker thread
// (nft-dump-thread.ts) reads exactly what a read with every dump in the calling thread reads, in a
// netns this test creates; a worker that fails leaves its share to the calling thread, and the read
// is the same again.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { readPastWorkerHeap, readThreeWays } from './support/nft-dump-thread-scenarios.ts';

const SCENARIOS = fileURLToPath(new URL('./support/nft-dump-thread-scenarios.ts', import.meta.url));
let netns: TestNetns;
beforeAll(async () => {
  netns = await TestNetns.create('dumpthread');
});
afterAll(async () => {
  await netns?.destroy();
});

describe('whole-table read with the dump thread', () => {
  it('reads what an in-thread read reads; a failed worker hands its share back', async () => {
    const r = await netns.run<Awaited<ReturnType<typeof readThreeWays>>>(SCENARIOS, 'readThreeWays', [600], {
      timeoutMs: 60_000,
    });
    expect(r.inThread.text).not.toBe('absent');
    expect(r.inThread.stats.threadDumps).toBe(0);
    // the dump thread read about half the sets, and the read is the same
    expect(r.shared.stats.threadError).toBeUndefined();
    expect(r.shared.stats.threadDumps).toBeGreaterThan(0);
    expect(r.shared.stats.threadDumps).toBeLessThanOrEqual(Math.ceil(r.shared.stats.dumps / 2));
    expect(r.shared.stats.dumps).toBe(r.inThread.stats.dumps);
    expect(r.shared.text).toBe(r.inThread.text);
    // the worker that throws at start: its share dumped in-thread, the same read again
    expect(r.failing.stats.threadError).toMatch(/no dumps today/);
    expect(r.failing.stats.threadDumps).toBe(0);
    expect(r.failing.text).toBe(r.inThread.text);
    // the worker that dies mid-read (its first chunk handed over, dumps in flight): the process
    // lives on, what the worker handed over stands, the rest is dumped in-thread, the same read
    expect(r.dying.stats.threadError).toMatch(/worker died mid-read/);
    expect(r.dying.stats.threadDumps).toBeGreaterThan(0);
    expect(r.dying.stats.threadDumps).toBeLessThan(r.shared.stats.threadDumps);
    expect(r.dying.text).toBe(r.inThread.text);
    // and the same runner's next whole read starts another worker, which reads its share again
    expect(r.workersStarted).toBe(2);
    expect(r.next.stats.threadError).toBeUndefined();
    expect(r.next.stats.threadDumps).toBe(r.shared.stats.threadDumps);
    expect(r.next.text).toBe(r.inThread.text);
  }, 90_000);

  it('a worker that runs out of heap mid-read costs that worker: the read is whole, no socket is left open, the process lives on', async () => {
    const r = await netns.run<Awaited<ReturnType<typeof readPastWorkerHeap>>>(SCENARIOS, 'readPastWorkerHeap', [4], {
      timeoutMs: 90_000,
    });
    expect(r.inThread).not.toBe('absent');
    expect(r.reads).toHaveLength(4);
    for (const read of r.reads) {
      expect(read.stats.threadError).toMatch(/memory limit/);
      expect(read.text).toBe(r.inThread);
    }
    // each whole read started a worker of its own (the one before had ended)
    expect(r.workersStarted).toBe(4);
    // the ended workers' sockets went with them: the count after the first read holds
    expect(new Set(r.reads.map((read) => read.fds)).size).toBe(1);
  }, 120_000);
});
