import { describe, expect, it } from 'vitest';
import { EventBatcher } from '../../../services/planner/event-batcher.ts';

function serialQueue() {
  let chain: Promise<unknown> = Promise.resolve();
  return (fn: () => void) => {
    const run = chain.then(fn);
    chain = run.catch(() => undefined);
    return run;
  };
}

describe('EventBatcher (group commit for watch events)', () => {
  it('appends events queued together in one batch, in order', async () => {
    const batches: number[][] = [];
    const b = new EventBatcher<number>({ serial: serialQueue(), flush: (e) => void batches.push([...e]) });
    for (let i = 1; i <= 5; i++) expect(b.push(i)).toBeUndefined();
    await b.drain();
    expect(batches).toEqual([[1, 2, 3, 4, 5]]);
    expect(b.queued).toBe(0);
  });

  it('appends a full batch without making the sink wait; the sink waits once maxQueued are queued (backpressure)', async () => {
    const batches: number[][] = [];
    const b = new EventBatcher<number>({ serial: serialQueue(), flush: (e) => void batches.push([...e]), maxBatch: 3 });
    expect(b.push(1)).toBeUndefined();
    expect(b.push(2)).toBeUndefined();
    // A full batch: its append is scheduled, and the source goes on (e.g. asks for its next page).
    expect(b.push(3)).toBeUndefined();
    expect(b.push(4)).toBeUndefined();
    expect(b.push(5)).toBeUndefined();
    const wait = b.push(6); // twice maxBatch (the default maxQueued): now the sink waits
    expect(wait).toBeInstanceOf(Promise);
    expect(batches).toEqual([]); // nothing is appended inside push
    await wait;
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(b.queued).toBe(0);
    const own = new EventBatcher<number>({ serial: serialQueue(), flush: () => {}, maxBatch: 3, maxQueued: 4 });
    for (let i = 1; i <= 3; i++) expect(own.push(i)).toBeUndefined();
    expect(own.push(4)).toBeInstanceOf(Promise);
    await own.drain();
  });

  it('keeps failed events at the head of the queue and retries them before later ones', async () => {
    const written: number[] = [];
    const errors: string[] = [];
    let failures = 2;
    const b = new EventBatcher<number>({
      serial: serialQueue(),
      retryMs: 5,
      onError: (e) => errors.push((e as Error).message),
      flush: (e) => {
        if (failures-- > 0) throw new Error('disk full');
        written.push(...e);
      },
    });
    b.push(1);
    b.push(2);
    await new Promise((r) => setImmediate(r));
    b.push(3);
    for (let i = 0; i < 100 && written.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    expect(written).toEqual([1, 2, 3]);
    expect(errors).toEqual(['disk full', 'disk full']);
    b.stop();
  });

  it('while holdWhile holds (the initial list), appends only full batches; drain appends the rest; then every burst again', async () => {
    const batches: number[][] = [];
    let listing = true;
    const b = new EventBatcher<number>({
      serial: serialQueue(),
      flush: (e) => void batches.push([...e]),
      maxBatch: 3,
      holdWhile: () => listing,
    });
    b.push(1);
    b.push(2);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([]); // a page's worth is not committed on its own
    expect(b.push(3)).toBeUndefined(); // a full batch: appended at the next turn, the sink does not wait
    b.push(4);
    for (let i = 0; i < 10 && batches.length < 1; i++) await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1, 2, 3]]); // the partial batch [4] stays queued
    expect(b.queued).toBe(1);
    await b.drain(); // the list ended: everything is appended before version 1
    expect(batches).toEqual([[1, 2, 3], [4]]);
    listing = false;
    b.push(5); // after the list: each burst is appended at once, as before
    for (let i = 0; i < 10 && batches.length < 3; i++) await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1, 2, 3], [4], [5]]);
  });
});
