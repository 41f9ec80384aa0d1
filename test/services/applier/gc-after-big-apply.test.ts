import { describe, expect, it } from 'vitest';
import { GcAfterBigApply } from '../../../services/applier/gc-after-big-apply.ts';
import { fullGc } from '../../../services/cli/full-gc.ts';

const MB = 2 ** 20;

/** A heap whose size the test sets, and a collector that counts its calls and shrinks that heap to `live`. */
function fakeHeap(startBytes: number) {
  const h = {
    used: startBytes,
    live: startBytes,
    collections: 0,
    collect: () => {
      h.collections++;
      const beforeBytes = h.used;
      h.used = h.live;
      return { beforeBytes, afterBytes: h.used };
    },
  };
  return h;
}

describe('GcAfterBigApply', () => {
  it('collects once after an apply that grew the heap by the threshold, at the next turn of the loop, not during the caller', async () => {
    const h = fakeHeap(50 * MB);
    const gc = new GcAfterBigApply({ minGrowthBytes: 64 * MB, heapUsedBytes: () => h.used, collect: h.collect });
    h.used += 63 * MB; // a small change, or several: under the threshold
    expect(await gc.afterApply()).toBeUndefined();
    expect(h.collections).toBe(0);

    h.live = 150 * MB; // a full load: 150 MB kept, 300 MB more in use
    h.used = 450 * MB;
    const first = gc.afterApply();
    const second = gc.afterApply(); // a second ACK before it ran: the same collection
    expect(second).toBe(first);
    await Promise.resolve();
    expect(h.collections).toBe(0); // not in the caller's turn (its microtasks: the ACK's flush)
    const done = await first;
    expect(h.collections).toBe(1);
    expect(done).toMatchObject({ beforeBytes: 450 * MB, afterBytes: 150 * MB });
    expect(done!.ms).toBeGreaterThanOrEqual(0);

    // the next threshold counts from what the collection left, not from the start
    h.used = 150 * MB + 10 * MB;
    expect(await gc.afterApply()).toBeUndefined();
    h.used = 150 * MB + 64 * MB;
    expect(await gc.afterApply()).toMatchObject({ beforeBytes: 214 * MB });
    expect(h.collections).toBe(2);
  });

  it('with no threshold (0), collects after every apply, a heap that shrank since included (CI, 2026-12-05: sweeper threads freed pages between the two reads)', async () => {
    const h = fakeHeap(200 * MB);
    const gc = new GcAfterBigApply({ minGrowthBytes: 0, heapUsedBytes: () => h.used, collect: h.collect });
    h.used -= 5 * MB;
    h.live = 100 * MB;
    expect(await gc.afterApply()).toMatchObject({ beforeBytes: 195 * MB, afterBytes: 100 * MB });
    expect(await gc.afterApply()).toMatchObject({ beforeBytes: 100 * MB });
    expect(h.collections).toBe(2);
  });

  it('collects nothing after stop(), not even one already scheduled; gives up after a collector error', async () => {
    const h = fakeHeap(0);
    const gc = new GcAfterBigApply({ minGrowthBytes: 1, heapUsedBytes: () => h.used, collect: h.collect });
    h.used = 100;
    const scheduled = gc.afterApply();
    gc.stop();
    expect(await scheduled).toBeUndefined();
    expect(await gc.afterApply()).toBeUndefined();
    expect(h.collections).toBe(0);

    const failures: string[] = [];
    let calls = 0;
    let used = 0;
    const failing = new GcAfterBigApply({
      minGrowthBytes: 1,
      heapUsedBytes: () => used,
      collect: () => {
        calls++;
        throw new Error('no gc here');
      },
      onFailed: (e) => failures.push(e.message),
    });
    used = 100;
    expect(await failing.afterApply()).toBeUndefined();
    used = 200;
    expect(await failing.afterApply()).toBeUndefined();
    expect(calls).toBe(1);
    expect(failures).toEqual(['no gc here']);
  });

  it('by default reads V8 heap and runs a real full GC (a process-sized garbage heap is returned)', async () => {
    // a clean baseline: earlier tests' garbage in this worker, collected by V8 meanwhile, made the
    // heap's growth since the baseline fall under 8 MB once under CI load (no collection was due)
    fullGc();
    const gc = new GcAfterBigApply({ minGrowthBytes: 8 * MB });
    // 16 MB on V8's heap in two arrays of doubles (quick to allocate, unlike as many small objects)
    const doubles = () => {
      const a = new Array<number>(1_000_000);
      for (let i = 0; i < a.length; i++) a[i] = i + 0.5;
      return a;
    };
    let garbage: number[][] | undefined = [doubles(), doubles()];
    expect(garbage[1]![999_999]).toBe(999_999.5);
    // reachable when afterApply measures the growth, garbage by the time its collection runs
    const collected = gc.afterApply();
    garbage = undefined;
    const done = await collected;
    expect(done).toBeDefined();
    expect(done!.beforeBytes - done!.afterBytes).toBeGreaterThan(12 * MB);
  });
});
