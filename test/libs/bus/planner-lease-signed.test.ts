import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { LeaderLease, leaseBucket, signerFromKey, type Signer } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

/**
 * probe10 H4: the lease record was unsigned, so anyone with the planner's NATS user wrote one that
 * deposed the leader and named its own API as where writes go. A record that is not signed by the
 * group's key names no leader: the leader takes the key back, followers neither name it nor claim it.
 */
describe('LeaderLease: only records signed by the group key name a leader', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const leases: LeaderLease[] = [];
  const groupKey = signerFromKey(generateKeyPairSync('ed25519').privateKey);
  const otherKey = signerFromKey(generateKeyPairSync('ed25519').privateKey);
  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    for (const l of leases) await l.close();
    await nc?.close();
    await nats?.stop();
  });

  const open = async (group: string, id: string, ttlMs: number, signer: Signer = groupKey) => {
    const said: string[] = [];
    const deposed: string[] = [];
    const l = await LeaderLease.open({
      nc,
      group,
      id,
      ttlMs,
      signer,
      api: `http://127.0.0.1:1/${id}`,
      onTrouble: (line) => said.push(line),
      onDeposed: (why) => deposed.push(why),
    });
    leases.push(l);
    return { l, said, deposed };
  };
  const forge = async (group: string, sign?: Signer) => {
    const now = new Date().toISOString();
    const r = {
      id: 'evil',
      host: 'evil',
      pid: 1,
      since: now,
      api: 'http://127.0.0.1:18999',
      term: 1000,
      renewedAt: now,
    };
    const sig = sign?.sign(
      `sb-lease\n${group}\n${r.id}\n${r.host}\n${r.pid}\n${r.term}\n${r.since}\n${r.renewedAt}\n${r.api}`,
    );
    const kv = await new Kvm(nc).open(leaseBucket(group));
    await kv.put('leader', JSON.stringify(sig ? { ...r, sig } : r));
  };
  const holderId = async (group: string) => {
    const e = await (await new Kvm(nc).open(leaseBucket(group))).get('leader');
    return e ? (JSON.parse(e.string()) as { id: string; sig?: string }) : undefined;
  };

  for (const [what, key] of [
    ['unsigned', undefined],
    ['signed with another key', otherKey],
  ] as const) {
    it(`a leader is not deposed by a record ${what}: it takes the key back, said once`, async () => {
      const group = `h4lead${key ? 'k' : 'u'}`;
      const a = await open(group, 'a', 1200); // renews every 300 ms
      await a.l.start();
      expect(a.l.isLeader()).toBe(true);
      const term = a.l.term();
      await forge(group, key);
      await expect.poll(() => a.said.length, { timeout: 10_000, interval: 50 }).toBeGreaterThan(0);
      await expect.poll(async () => (await holderId(group))?.id, { timeout: 10_000, interval: 50 }).toBe('a');
      expect(a.said).toEqual(["lease record of 'evil' is not signed by the group's key; ignored"]);
      expect(a.deposed).toEqual([]);
      expect(a.l.isLeader()).toBe(true);
      expect(a.l.term()).toBe(term);
      expect(a.l.leader()?.id).toBe('a');
      expect((await holderId(group))?.sig).toEqual(expect.any(String));
    });

    it(`a follower neither names nor claims a record ${what}`, async () => {
      const group = `h4follow${key ? 'k' : 'u'}`;
      const b = await open(group, 'b', 60_000); // one look (start), then none for 15 s
      await forge(group, key);
      await b.l.start();
      expect(b.said).toEqual(["lease record of 'evil' is not signed by the group's key; ignored"]);
      expect(b.l.isLeader()).toBe(false);
      expect(b.l.leader()).toBeUndefined();
      expect(b.l.lastLeader()).toBeUndefined();
      // says why (probe15 U5: it said "the lease is free" while a planner of the release before led)
      expect(b.l.noLeader()?.cause).toBe(
        "the lease key holds a record this planner does not follow (lease record of 'evil' is not signed by the group's key; ignored): a planner of a release before signed leases, or with another --signing-key, may lead; it is claimed once that record expires",
      );
      expect((await holderId(group))?.id).toBe('evil'); // not claimed: the bucket's TTL frees it
    });
  }

  it('a leader is not deposed by a replayed signed record of an earlier term', async () => {
    const group = 'h4replay';
    const a = await open(group, 'a', 1200);
    await a.l.start();
    const term = a.l.term();
    const now = new Date().toISOString();
    const r = { id: 'old', host: 'old', pid: 1, since: now, term: 1, renewedAt: now, api: 'http://127.0.0.1:18999' };
    const sig = groupKey.sign(`sb-lease\n${group}\nold\nold\n1\n1\n${now}\n${now}\n${r.api}`);
    await (await new Kvm(nc).open(leaseBucket(group))).put('leader', JSON.stringify({ ...r, sig }));
    await expect.poll(async () => (await holderId(group))?.id, { timeout: 10_000, interval: 50 }).toBe('a');
    expect(a.deposed).toEqual([]);
    expect(a.l.isLeader()).toBe(true);
    expect(a.l.term()).toBe(term);
  });

  it('planners sharing the group key follow each other; one with another key ignores them', async () => {
    const a = await open('h4share', 'a', 60_000);
    await a.l.start();
    const b = await open('h4share', 'b', 60_000);
    await b.l.start();
    expect(b.l.leader()).toMatchObject({ id: 'a', term: a.l.term(), api: 'http://127.0.0.1:1/a' });
    expect(b.said).toEqual([]);
    const c = await open('h4share', 'c', 60_000, otherKey);
    await c.l.start();
    expect(c.l.leader()).toBeUndefined();
    expect(c.l.isLeader()).toBe(false);
    expect(c.said).toEqual(["lease record of 'a' is not signed by the group's key; ignored"]);
  });
});
