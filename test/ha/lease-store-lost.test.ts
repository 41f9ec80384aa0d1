import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { LeaderLease } from '../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.ts';

/**
 * NATS restarted WITHOUT its store while a planner leads: the lease bucket and its key are gone,
 * and a bucket made again numbers its writes (the terms) from 1. In the fault suite ("two planners
 * on one NATS") the old leader went on acting in term 18 for the rest of its validity, while a
 * second planner that came along found no key and was elected in term 1: two leaders. The old
 * leader must stop acting from the moment its connection drops until a renewal is answered again,
 * which in the new store it never is: it is deposed and the lease contended afresh. Nor may its
 * renewal, conditional on the revision it last wrote, pass there: the new bucket numbers its
 * writes from 1 again, so that revision may be the newcomer's record (revision 2 here: a create
 * and the term's record, on both sides).
 */
/** Validity 15 s, looks every 5 s: nothing in the test waits for them but the old code's expiry. */
const TTL_MS = 20_000;

let nats: NatsServerHandle | undefined;
const conns: NatsConnection[] = [];
const leases: LeaderLease[] = [];
afterAll(async () => {
  for (const l of leases) await l.close(0).catch(() => undefined);
  for (const nc of conns) await nc.close().catch(() => undefined);
  await nats?.stop();
});

const open = async (id: string, group: string, onDeposed?: (why: string) => void, reconnectTimeWait = 100) => {
  const nc = await connect({ servers: nats!.url, maxReconnectAttempts: -1, reconnectTimeWait });
  conns.push(nc);
  const l = await LeaderLease.open({ nc, group, id, ttlMs: TTL_MS, onDeposed });
  leases.push(l);
  return l;
};

describe('lease after NATS lost its store', () => {
  it('the old leader stops acting before a newcomer in the re-made bucket can be elected, and its renewal there fails though the revision matches', async () => {
    nats = await startNatsServer({ jetstream: true });
    const deposed: string[] = [];
    // back 3 s after NATS: the newcomer has won by then (a create and the term's record: revision
    // 2) and renews only 5 s after, so the old leader's renewal meets that very revision
    const first = await open('first', 'newcomer', (why) => deposed.push(why), 3000);
    await first.start();
    expect(first.isLeader()).toBe(true);

    let second: LeaderLease | undefined;
    let both = 0;
    const sampler = setInterval(() => {
      if (first.isLeader() && second?.isLeader()) both++;
    }, 5);
    try {
      await nats.restartEmpty();
      // a planner that comes along at once: it makes the bucket, finds no key, and contends
      second = await open('second', 'newcomer');
      await second.start();
      await expect.poll(() => second!.isLeader(), { timeout: TTL_MS, interval: 20 }).toBe(true);
      // the old leader, back, reads the newcomer's record at its own last revision: deposed, it follows
      await expect.poll(() => first.leader()?.id, { timeout: 10_000, interval: 20 }).toBe('second');
      expect(deposed).toEqual([expect.stringMatching(/^lease taken over by planner second \(term 1,/)]);
      expect(second.isLeader()).toBe(true);
    } finally {
      clearInterval(sampler);
    }
    expect(both, 'samples (5 ms apart) where both planners were leaders').toBe(0);
  }, 60_000);

  it('alone, the old leader learns at its first renewal that its record is gone, not when its validity ends, and leads again', async () => {
    nats ??= await startNatsServer({ jetstream: true });
    const deposed: string[] = [];
    const only = await open('only', 'alone', (why) => deposed.push(why));
    await only.start();
    expect(only.isLeader()).toBe(true);
    await nats.restartEmpty();
    await expect.poll(() => deposed.length, { timeout: TTL_MS, interval: 20 }).toBe(1);
    // a renewal nobody answers (no bucket) made it again, and the next one found the record gone;
    // before, that error was not seen as a lost store: renewed in vain until the validity ran out
    expect(deposed[0]).toMatch(/^lease record gone \(revision \d+ unknown to the bucket: NATS lost its store\?\)$/);
    await expect.poll(() => only.isLeader(), { timeout: TTL_MS, interval: 20 }).toBe(true);
  }, 60_000);
});
