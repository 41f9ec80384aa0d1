import { afterEach, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus, LeaderLease } from '../../../libs/bus/index.ts';
import { freePort, startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

/**
 * A lease JetStream refuses (probe8 J1) or does not answer while core NATS does (probe8 J2), on a
 * real nats-server: the group had no leader and nothing said why. Now each planner says the
 * cause once (not on every look, TTL/4 apart), once more when it clears, and noLeader() carries it.
 */
const TTL = 2000;
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const server = async (o: Parameters<typeof startNatsServer>[0]) => {
  const s = await startNatsServer(o);
  cleanups.push(() => s.stop());
  return s;
};
const client = async (s: NatsServerHandle, name: string) => {
  const nc = await connectBus({ servers: [s.url], name });
  cleanups.push(() => nc.close());
  return nc;
};
const lease = async (nc: NatsConnection, group: string, id: string, said: string[]) => {
  const l = await LeaderLease.open({ nc, group, id, ttlMs: TTL, onTrouble: (line) => said.push(line) });
  cleanups.push(() => l.close());
  return l;
};
const count = (lines: string[], re: RegExp) => lines.filter((l) => re.test(l)).length;

describe('a lease JetStream refuses or does not answer', () => {
  it('storage full (max_file_store used up): no leader, the cause said once by each planner, lasting; said again once when it clears', async () => {
    const s = await server({ jetstream: true, jetstreamLimits: 'max_file_store: 65536' });
    const saidA: string[] = [];
    const saidB: string[] = [];
    const a = await lease(await client(s, 'a'), 'full', 'a', saidA);
    await a.start();
    const b = await lease(await client(s, 'b'), 'full', 'b', saidB);
    await b.start();
    expect(a.isLeader()).toBe(true);
    expect(b.noLeader()).toBeUndefined();

    // Another stream uses the server's storage up: every write (a renewal, a claim) is refused.
    const nc = await client(s, 'filler');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'FILL', subjects: ['fill.>'] });
    const js = jetstream(nc);
    const refusal = await (async () => {
      for (let i = 0; i < 1000; i++) await js.publish('fill.x', new Uint8Array(4000));
    })().catch((e: Error) => e);
    expect(refusal).toMatchObject({ code: 10023 });

    const cause = /^JetStream storage is full on the server \(.*\) \(JetStream error 10023: insufficient resources\)$/;
    for (const l of [a, b])
      await expect.poll(() => l.noLeader()?.cause, { timeout: 3 * TTL, interval: 100 }).toMatch(cause);
    await expect.poll(() => b.noLeader()!.forMs, { timeout: 3 * TTL, interval: 100 }).toBeGreaterThan(TTL);
    expect(a.isLeader()).toBe(false);
    expect(b.noLeader()).toMatchObject({ lasting: true });
    await new Promise((r) => setTimeout(r, TTL)); // four more looks each: nothing more said
    for (const said of [saidA, saidB]) {
      expect(count(said, /^cannot claim the group's lease: JetStream storage is full on the server/)).toBe(1);
      expect(said.find((l) => l.startsWith('cannot claim'))).toMatch(
        /\(JetStream error 10023: insufficient resources\); no planner of the group can lead until this is fixed$/,
      );
    }

    await jsm.streams.delete('FILL'); // space again: one of them leads, both say so once
    await expect.poll(() => a.isLeader() || b.isLeader(), { timeout: 3 * TTL, interval: 100 }).toBe(true);
    for (const [l, said] of [
      [a, saidA],
      [b, saidB],
    ] as const) {
      await expect
        .poll(() => count(said, /^the group's lease answers again \(it failed: JetStream storage is full/), {
          timeout: 2 * TTL,
          interval: 100,
        })
        .toBe(1);
      // The look that said it may have found the key free just before the other's claim landed
      // (seen on a loaded host: "the lease is free and no planner of the group has claimed it"):
      // the next look, TTL/4 later, names the leader.
      await expect.poll(() => l.noLeader(), { timeout: 2 * TTL, interval: 100 }).toBeUndefined();
    }
  }, 20_000);

  it('JetStream silent while core NATS answers: "JetStream not answering on HOST:PORT while core NATS does"', async () => {
    const port = await freePort();
    const withJs = await startNatsServer({ jetstream: true, port });
    cleanups.push(() => withJs.stop());
    const said: string[] = [];
    const a = await lease(await client(withJs, 'a'), 'silent', 'a', said);
    await a.start();
    expect(a.isLeader()).toBe(true);
    // The same address, now a server whose JetStream takes requests and answers none (hung, or a
    // cluster without a meta leader), and whose core answers: a listener on the API that never replies.
    await withJs.kill();
    const core = await server({ port });
    const silent = await client(core, 'silent-jetstream');
    silent.subscribe('$JS.API.>');
    silent.subscribe('$KV.>');
    await silent.flush();

    const words = `JetStream not answering on 127.0.0.1:${port} while core NATS does`;
    await expect.poll(() => a.noLeader()?.cause, { timeout: 4 * TTL, interval: 100 }).toBe(words);
    expect(a.noLeader()?.lasting).toBe(false);
    await new Promise((r) => setTimeout(r, TTL));
    expect(count(said, new RegExp(`^cannot (read|claim) the group's lease: ${words}$`))).toBe(1);
  }, 20_000);
});
