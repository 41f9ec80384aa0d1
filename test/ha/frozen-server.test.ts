import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSIONS_STREAM } from '../../libs/bus/index.ts';
import { PLANNER_CRED } from '../faults/fleet.ts';
import { freezeNats } from '../libs/bus/nats-freeze.ts';
import { LEASE_TTL_MS, startHaFleet, type HaFleet } from './ha-fleet.ts';

/**
 * probe5 H1 with a frozen server instead of a killed one (failover.test.ts kills it): a SIGSTOPed
 * nats-server keeps its sockets open and answers nothing, so no client or peer is told it is gone.
 * The leader's planner is connected to it (its lease cannot be renewed: it stops acting at 3/4
 * TTL; its client moves to a live server after 4-6 s, so it may win again); the other planner,
 * connected to a live server, wins the lease and claims while the streams
 * the frozen server led have not yet elected new Raft leaders. Its claim makes no consumer and
 * retries its steps within the term (services/planner/claim-step.ts), so it must publish the next
 * change without giving a term up.
 */
let fleet: HaFleet;
let witness: NatsConnection | undefined;
/**
 * nats-server's longest Raft election timeout (server/raft.go maxElectionTimeoutDefault): a stream
 * whose leader stopped answering is unwritable this long at most (its followers hear no heartbeat).
 */
const RAFT_ELECTION_MAX_MS = 9000;
/**
 * A direct get (a KV read of the lease every TTL/4, the claim's read of the newest delta) is
 * answered by any replica: one that lands on the frozen server waits out its timeout (the
 * JetStream client's 5 s for KV reads) before it is tried again.
 */
const DIRECT_GET_TIMEOUT_MS = 5000;
/**
 * From the freeze to the next change published by the new leader: its lease is free a TTL after
 * the old leader's last renewal was stored and seen within TTL/4 (2 x TTL covers both), its claim
 * and publish wait for the streams the frozen server led to elect new leaders (at most
 * RAFT_ELECTION_MAX_MS, in parallel: one timeout for all), two reads may hang on the frozen
 * replica (2 x DIRECT_GET_TIMEOUT_MS), and 7 s for the status polls and a loaded host (measured
 * 6-29 s at a load of 18-21 on 2 cores, most under 18 s). The regression it guards against, a
 * winner giving its term up (probe5 H1), is also checked on its own: no "cannot lead term" line.
 */
/**
 * Two JetStream API requests of the claim's path that still make consumers (server-side objects a
 * frozen server delays: the replicated log's catch-up, the snapshot listing, seen as `cannot list
 * snapshots (timeout)`) wait the API's 5 s each. The lease's own requests give up after TTL/4
 * (libs/bus/planner-lease.ts requestTimeoutMs); the bound counted two 5 s lease reads for this
 * before, but is not lower: 37.9 s was measured at a load of 20 with the lease bounded.
 */
const JS_API_TIMEOUT_MS = 5000;
const BOUND_MS = 2 * LEASE_TTL_MS + RAFT_ELECTION_MAX_MS + 2 * DIRECT_GET_TIMEOUT_MS + 2 * JS_API_TIMEOUT_MS + 7000;
/** The old leader's client drops the frozen server after 2 unanswered PINGs (4-6 s) and reconnects elsewhere. */
const LEAVE_FROZEN_MS = 10_000;

beforeAll(async () => {
  fleet = await startHaFleet({ nodes: ['n1'] });
}, 90_000);
afterAll(async () => {
  await witness?.close().catch(() => undefined);
  await fleet?.close();
});

describe('planner group with one nats-server of three frozen (SIGSTOP)', () => {
  it("the leader's server frozen: a planner on a live server leads and publishes the next change, no term given up; SIGCONT after", async () => {
    const servers = fleet.cluster.servers;
    // a connects to server 0 and b to server 1 (a client moves elsewhere only when its server
    // fails); started together to save time, so either may lead: the leader's server is frozen.
    await fleet.startPlanner('a', [], servers[0]!.url);
    await fleet.startPlanner('b', [], servers[1]!.url);
    const lead = (await fleet.leader()).name;
    const follow = lead === 'a' ? 'b' : 'a';
    const frozen = servers[lead === 'a' ? 0 : 1]!;
    await expect.poll(async () => (await fleet.status(follow))?.leader?.id, { timeout: 30_000 }).toBe(lead);
    fleet.edit();
    await expect.poll(async () => (await fleet.status(lead))?.latestVersion, { timeout: 30_000 }).toBe(2);
    const before = (await fleet.status(lead))!;
    await expect.poll(async () => (await fleet.status(follow))?.latestVersion, { timeout: 30_000 }).toBe(2);
    expect(fleet.serversOf('a')).toEqual([0]);
    expect(fleet.serversOf('b')).toEqual([1]);
    const givenUp = () =>
      readdirSync(fleet.dir)
        .filter((f) => f.startsWith('planner-'))
        .flatMap((f) => readFileSync(path.join(fleet.dir, f), 'utf8').match(/cannot lead term .*/g) ?? []);

    const ice = freezeNats(frozen);
    const t0 = Date.now();
    let took: number;
    let next: { name: string; term: number };
    try {
      // the old leader's planner leaves the frozen server for a live one (libs/bus/bus-connection.ts PINGs)
      const left = expect
        .poll(() => fleet.serversOf(lead).filter((i) => servers[i] !== frozen).length > 0, {
          timeout: LEAVE_FROZEN_MS,
          interval: 200,
        })
        .toBe(true)
        .then(
          () => undefined,
          (e: Error) => e.message,
        );
      fleet.edit();
      // liveness, not speed: the time is logged here and measured in bench/ha/failover-bench.ts
      // (a 40 s bound asserted here failed at 41.8 s once on a loaded CI machine)
      await expect
        .poll(async () => (await fleet.status(follow))?.latestVersion, { timeout: 2 * BOUND_MS, interval: 100 })
        .toBe(3);
      took = Date.now() - t0;
      expect(await left).toBeUndefined();
      next = await fleet.leader(5000);
      console.log(`server of ${lead} frozen: ${next.name} published version 3 in ${took} ms (bound ${BOUND_MS} ms)`);
      // version 3 is on the stream, published in a term after the freeze, read through the live
      // servers while the frozen one is still stopped (after SIGCONT its rejoining made JetStream
      // answer 503 for over 20 s under CI load once)
      witness = await connect({
        servers: servers.filter((s) => s !== frozen).map((s) => s.url),
        user: PLANNER_CRED.user,
        pass: PLANNER_CRED.password,
      });
      const jsm = await jetstreamManager(witness, { checkAPI: false });
      await expect
        .poll(
          async () => {
            const m = await jsm.streams
              .getMessage(VERSIONS_STREAM, { last_by_subj: 'sb.v.delta.3' })
              .catch(() => undefined);
            return Number(m?.header.get('Sb-Term'));
          },
          { timeout: 30_000, interval: 250 },
        )
        .toBeGreaterThan(before.self.term);
    } finally {
      ice.thaw();
    }
    // either planner: the old leader's moves to a live server within seconds and may win the term
    // (before, its client stayed on the frozen server for minutes)
    expect(next.term).toBeGreaterThan(before.self.term);
    expect(givenUp()).toEqual([]);
    // thawed, one planner leads (the term the other shows follows once its server's JetStream has
    // caught up, which took over 30 s under CI load once: not asserted here)
    await expect
      .poll(
        async () => (await Promise.all(['a', 'b'].map((n) => fleet.status(n)))).filter((x) => x?.self.leader).length,
        {
          timeout: 30_000,
        },
      )
      .toBe(1);
  }, 240_000);
});
