import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LeaderLease } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

/**
 * A leader whose renewals were late because its own thread was busy (a slow log write: probe8 S1)
 * says so when it steps down, instead of only "not renewed": the operator looks at the process,
 * not at NATS.
 */
describe('LeaderLease: a lease lost to a blocked event loop', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let lease: LeaderLease | undefined;
  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await lease?.close();
    await nc?.close();
    await nats?.stop();
  });

  it('the step-down line says how long the event loop was blocked', async () => {
    const deposed: string[] = [];
    lease = await LeaderLease.open({ nc, group: 's1', id: 'p1', ttlMs: 400, onDeposed: (why) => deposed.push(why) });
    await lease.start();
    expect(lease.isLeader()).toBe(true);
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      // a synchronous step holding the thread past the lease's validity (300 ms)
    }
    await expect.poll(() => deposed.length, { timeout: 5000, interval: 20 }).toBe(1);
    expect(deposed[0]).toMatch(
      /^lease not renewed for \d+ ms \(TTL 400 ms\): stopped acting before it could expire; the event loop was blocked for at least \d+ ms/,
    );
  });
});
