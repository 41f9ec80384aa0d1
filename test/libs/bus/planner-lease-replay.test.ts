import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { hostname } from 'node:os';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeaderLease, leaseBucket, signerFromKey } from '../../../libs/bus/index.ts';
import { leaseStatement } from '../../../libs/bus/planner-signature.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

/**
 * A lease record the group's key once signed, copied back into the bucket by anyone who may write
 * it: followers named its planner (and its API) as the leader until the real leader rewrote the
 * key (TTL/4 later), and a copy of a claim (term 0, read as the term of the revision it lands at)
 * deposed the leader. Planners here have a 60 s TTL (a look or renewal every 15 s) and each look
 * is made by hand, so who reads the copy first is not left to timers.
 */
describe('LeaderLease: a copy of an older signed record names no leader', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const leases: LeaderLease[] = [];
  const groupKey = signerFromKey(generateKeyPairSync('ed25519').privateKey);
  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    for (const l of leases) await l.close();
    await nc?.close();
    await nats?.stop();
  });

  const open = async (group: string, id: string, knownTerm?: number) => {
    const said: string[] = [];
    const deposed: string[] = [];
    const l = await LeaderLease.open({
      nc,
      group,
      id,
      ttlMs: 60_000,
      signer: groupKey,
      api: `http://127.0.0.1:1/${id}`,
      onTrouble: (line) => said.push(line),
      onDeposed: (why) => deposed.push(why),
      ...(knownTerm !== undefined ? { knownTerm } : {}),
    });
    leases.push(l);
    return { l, said, deposed };
  };
  /** One look (a follower) or renewal (the leader) now, as its timer would make it. */
  const look = (l: LeaderLease) => (l as unknown as { tick(): Promise<void> }).tick();
  const kv = (group: string) => new Kvm(nc).open(leaseBucket(group));
  const holder = async (group: string) => {
    const e = await (await kv(group)).get('leader');
    return e ? (JSON.parse(e.string()) as { id: string; term: number }) : undefined;
  };
  const signed = (group: string, r: { id: string; host: string; pid: number; term: number }) => {
    const now = new Date().toISOString();
    const rec = { ...r, since: now, renewedAt: now, api: 'http://127.0.0.1:18999' };
    return JSON.stringify({ ...rec, sig: groupKey.sign(leaseStatement({ group, ...rec })) });
  };

  it("a follower refuses a copy of an earlier term's record (it still names the leader); the leader rewrites its own", async () => {
    const group = 'replayold';
    const a = await open(group, 'a');
    await a.l.start();
    const old = (await (await kv(group)).get('leader'))?.string();
    const oldTerm = a.l.term();
    expect(old).toContain('"sig"');
    await a.l.close(); // released: b wins the next term
    const b = await open(group, 'b');
    await b.l.start();
    expect(b.l.isLeader()).toBe(true);
    const term = b.l.term();
    expect(term).toBeGreaterThan(oldTerm);
    const c = await open(group, 'c');
    await c.l.start();
    expect(c.l.leader()?.id).toBe('b');

    await (await kv(group)).put('leader', old ?? ''); // a's own signed record, of its earlier term
    await look(c.l);
    expect(c.l.leader()?.id).toBe('b'); // not a (before: a, term oldTerm, and its API)
    expect(c.said).toEqual([
      `lease record of 'a' names term ${oldTerm}, older than term ${term} already seen (a copy of an old record); ignored`,
    ]);
    await look(b.l);
    expect(await holder(group)).toMatchObject({ id: 'b', term });
    expect(b.deposed).toEqual([]);
    expect(b.l.isLeader()).toBe(true);
    await look(c.l);
    expect(c.l.leader()).toMatchObject({ id: 'b', term });
  });

  it('a copy of a claim (term 0) neither deposes the leader nor is named by a follower', async () => {
    const group = 'replayclaim';
    const b = await open(group, 'b');
    await b.l.start();
    const term = b.l.term();
    const c = await open(group, 'c');
    await c.l.start();
    expect(c.l.leader()?.id).toBe('b');

    await (await kv(group)).put('leader', signed(group, { id: 'a', host: 'elsewhere', pid: 1, term: 0 }));
    await look(c.l);
    expect(c.l.leader()?.id).toBe('b'); // before: a, in the term of the copy's revision
    expect(c.said).toEqual([expect.stringMatching(/^lease record of 'a' at revision \d+ is a claim without its term/)]);
    await look(b.l);
    expect(b.deposed).toEqual([]); // before: "lease taken over by planner a"
    expect(b.l.isLeader()).toBe(true);
    expect(await holder(group)).toMatchObject({ id: 'b', term });
  });

  it('after the bucket was made again (NATS lost its store: terms restart at 1), a follower names the new leader of a lower term', async () => {
    const group = 'remade';
    const a = await open(group, 'a');
    await a.l.start();
    await a.l.close(); // released: b's term is a later revision
    const b = await open(group, 'b');
    await b.l.start();
    const c = await open(group, 'c');
    await c.l.start();
    expect(c.l.leader()?.id).toBe('b');
    const term = b.l.term();
    const old = (await (await kv(group)).get('leader'))?.string();
    await b.l.close();
    await (await kv(group)).destroy(); // as after a restart without the store
    const d = await open(group, 'd'); // makes the bucket again and wins its first term
    await d.l.start();
    expect(d.l.term()).toBeLessThan(term);
    await look(c.l); // c's last read was at a later revision than d's record: a new bucket, not a copy
    expect(c.l.leader()).toMatchObject({ id: 'd', term: d.l.term() });
    expect(c.said).toEqual([]);
    // a copy of b's record from the bucket before: its term is past the revision it lands at
    await (await kv(group)).put('leader', old ?? '');
    await look(c.l);
    expect(c.l.leader()?.id).toBe('d');
    expect(c.said).toEqual([expect.stringMatching(/^lease record of 'b' names term \d+, past its revision \d+/)]);
    await look(d.l);
    expect(d.deposed).toEqual([]);
    expect(await holder(group)).toMatchObject({ id: 'd', term: d.l.term() });
  });

  it("a restarted planner does not take back at once a record of its own dead run older than its log's term", async () => {
    const dead = spawnSync(process.execPath, ['-e', '']).pid; // exited: its pid names no process
    expect(dead).toBeGreaterThan(0);
    for (const [group, knownTerm, leads] of [
      ['ownold', 1_000_000, false], // a copy of an old record of its own (term 1, lands at revision 1): left to the TTL
      ['owncurrent', 1, true], // its record as its dead run left it: taken back at once, as before
    ] as const) {
      await open(group, 'x'); // makes the bucket; never starts
      await (await kv(group)).put('leader', signed(group, { id: 'p', host: hostname(), pid: dead, term: 1 }));
      const p = await open(group, 'p', knownTerm);
      await p.l.start();
      expect(p.l.isLeader(), group).toBe(leads);
      expect((await holder(group))?.id).toBe('p');
    }
  });
});
