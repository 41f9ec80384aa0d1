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
    await wait; // one batch appended: the queue is under maxQueued again
    expect(batches).toEqual([[1, 2, 3]]);
    for (let i = 0; i < 10 && batches.length < 2; i++) await new Promise((r) => setImmediate(r));
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

  it('ends a batch before maxBatchWeight (one heavy event alone), and makes the sink wait at twice it', async () => {
    const batches: number[][] = [];
    const b = new EventBatcher<number>({
      serial: serialQueue(),
      flush: (e) => void batches.push([...e]),
      weigh: (n) => n, // each event weighs its value
      maxBatchWeight: 10,
      holdWhile: () => true, // the initial list: whole batches only
    });
    expect(b.push(4)).toBeUndefined();
    expect(b.push(5)).toBeUndefined(); // 9: under 10, held
    expect(b.push(8)).toBeUndefined(); // 17: a batch is due, the sink goes on
    const wait = b.push(30); // 47: twice maxBatchWeight (20) queued, the sink waits
    expect(wait).toBeInstanceOf(Promise);
    await wait;
    expect(batches).toEqual([[4, 5]]); // 4 + 5 + 8 would pass 10
    for (let i = 0; i < 10 && batches.length < 3; i++) await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[4, 5], [8], [30]]); // 30 is heavier than a batch: alone
    expect(b.push(1)).toBeUndefined();
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    expect(batches).toHaveLength(3); // [1] is no whole batch: held
    await b.drain();
    expect(batches).toEqual([[4, 5], [8], [30], [1]]);
  });

  it('appends one batch a turn: work queued in the serial queue meanwhile runs between two batches', async () => {
    const order: string[] = [];
    const serial = serialQueue();
    const b = new EventBatcher<number>({
      serial,
      flush: (e) => void order.push(`batch ${e.join(',')}`),
      maxBatch: 2,
      maxQueued: 100,
    });
    for (let i = 1; i <= 6; i++) b.push(i);
    // the first batch's append is scheduled; a version (say) asks for the queue before it runs
    await new Promise((r) => setImmediate(r));
    void serial(() => void order.push('version'));
    for (let i = 0; i < 20 && order.length < 4; i++) await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['batch 1,2', 'version', 'batch 3,4', 'batch 5,6']);
    expect(b.queued).toBe(0);
  });

  it('flushSteps appends what is queued when it starts, a batch a step (a version waits for them all)', () => {
    const batches: number[][] = [];
    const b = new EventBatcher<number>({
      serial: serialQueue(),
      flush: (e) => void batches.push([...e]),
      maxBatch: 2,
      maxQueued: 100,
      holdWhile: () => true, // nothing scheduled on its own: only the steps append here
    });
    for (let i = 1; i <= 5; i++) b.push(i);
    const steps = b.flushSteps();
    expect(steps.next().done).toBe(false);
    expect(batches).toEqual([[1, 2]]);
    b.push(6); // arrives between two steps: the steps go on until what was queued at the start is in
    expect(steps.next().done).toBe(false);
    expect(batches).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(steps.next().done).toBe(true);
    expect(batches).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(b.queued).toBe(0);
  });

  it('retries a failed batch as the same batch, its weight still counted (the sink waits as before)', async () => {
    const written: number[][] = [];
    let failures = 1;
    const b = new EventBatcher<number>({
      serial: serialQueue(),
      retryMs: 5,
      flush: (e) => {
        if (failures-- > 0) throw new Error('disk full');
        written.push([...e]);
      },
      weigh: (n) => n,
      maxBatchWeight: 10,
    });
    b.push(6);
    b.push(6); // 12: the first batch is [6] alone
    for (let i = 0; i < 100 && written.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(written).toEqual([[6], [6]]);
    // nothing left counted: a heavy event alone does not make the sink wait
    expect(b.push(9)).toBeUndefined();
    await b.drain();
    expect(written).toEqual([[6], [6], [9]]);
    b.stop();
  });
});
