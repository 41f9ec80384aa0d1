import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { LeaderLease } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

/**
 * Whom a planner names as its group's leader (probe5 H3: the last record read was named whatever
 * its age, so a planner cut off from NATS showed itself or a deposed planner as leading for the
 * whole partition, while a write sent to it answered "no leader is known"). A long TTL keeps the
 * lease timers out of the way (each ticks every TTL/4); the follower's monotonic clock is a
 * variable the test moves.
 */
describe('LeaderLease.leader(): only a record that is surely current', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const leases: LeaderLease[] = [];
  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    for (const l of leases) await l.close();
    await nc?.close();
    await nats?.stop();
  });

  const TTL = 60_000;
  const open = async (id: string, now?: () => number) => {
    const l = await LeaderLease.open({ nc, group: `h3${id}`, id, ttlMs: TTL, now });
    leases.push(l);
    return l;
  };

  it('a follower names the leader it read until the record has not moved for a TTL, then "no leader known (last: ...)"', async () => {
    const leader = await LeaderLease.open({ nc, group: 'h3a', id: 'pb', ttlMs: TTL });
    leases.push(leader);
    await leader.start();
    expect(leader.isLeader()).toBe(true);
    let t = 1000;
    const follower = await LeaderLease.open({ nc, group: 'h3a', id: 'pc', ttlMs: TTL, now: () => t });
    leases.push(follower);
    await follower.start();
    expect(follower.leader()).toMatchObject({ id: 'pb', term: leader.term() });
    t += TTL - 1; // read within the TTL: still current
    expect(follower.leader()?.id).toBe('pb');
    t += 2; // a TTL without the record moving (and without an answer from the bucket): not current
    expect(follower.leader()).toBeUndefined();
    const last = follower.lastLeader();
    expect(last).toMatchObject({ current: false, holder: { id: 'pb', term: leader.term() } });
    expect(last!.why).toMatch(
      new RegExp(`^no leader known \\(last: planner pb, term ${leader.term()}, renewed \\d+ s ago\\)$`),
    );
    // how long this planner has not seen it move (its clock), not the record's renewedAt against this
    // wall clock: planners an hour apart read "3600 s" or "0 s" there (probe12)
    expect(last!.renewedAgoS).toBe(Math.round((TTL + 1) / 1000));
    expect(follower.term()).toBe(leader.term()); // the newest term seen is still known
  });

  it('a leader that stepped down does not name itself; a released lease names nobody', async () => {
    const a = await open('b');
    await a.start();
    expect(a.leader()?.id).toBe('b');
    await a.stepDown('test: fenced', TTL);
    expect(a.isLeader()).toBe(false);
    expect(a.leader()).toBeUndefined(); // its own record, but it does not lead
    expect(a.lastLeader()?.why).toMatch(/^no leader known \(last: planner b, term \d+, renewed \d+ s ago\)$/);

    // a follower that read a leader, then finds the key released (short TTL: it looks every 500 ms;
    // held off so that it does not win the free lease itself): nobody. Not shorter: at 400 ms, c1
    // acts only 300 ms after a renewal and its key lives 400 ms, so a stall of this worker on a
    // loaded host could free the key before f's first look, which must find c1.
    const c = await LeaderLease.open({ nc, group: 'h3c', id: 'c1', ttlMs: 2000 });
    leases.push(c);
    await c.start();
    const f = await LeaderLease.open({ nc, group: 'h3c', id: 'c2', ttlMs: 2000 });
    leases.push(f);
    await f.stepDown('test: not contending', 60_000);
    await f.start();
    expect(f.leader()?.id).toBe('c1');
    await c.close(); // releases the key
    await expect.poll(() => f.leader(), { timeout: 10_000, interval: 50 }).toBeUndefined();
    expect(f.lastLeader()?.why).toMatch(/^no leader known \(last: planner c1, term \d+, renewed \d+ s ago\)$/);
  });
});
