import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSIONS_STREAM } from '../../libs/bus/index.ts';
import { LEASE_TTL_MS, startHaFleet, type HaFleet } from './ha-fleet.ts';
import { sb } from '../services/cli/cli-support.ts';

/**
 * Failure tests of a planner group with real processes: three clustered nats-servers, planners
 * of one group (lease TTL 2 s), two dry-run appliers. Each round ends with every node SYNCED on
 * the newest version, which is a fresh plan of the manifests, numbered without gaps; the versions
 * stream is read directly to check who published what (each delta carries its leader's term).
 */
let fleet: HaFleet;
/** nats-server's longest Raft election timeout (server/raft.go maxElectionTimeoutDefault): a stream led by a dead server is unwritable this long at most. */
const RAFT_ELECTION_MAX_MS = 9000;
const alive = (name: string) => {
  const p = fleet.planners.get(name)?.proc;
  return !!p && p.exitCode === null && p.signalCode === null;
};

beforeAll(async () => {
  fleet = await startHaFleet({ nodes: ['n1', 'n2'] });
}, 90_000);
afterAll(async () => {
  await fleet?.close();
});

/** Every version on the stream has exactly one delta (none lost, none published twice). */
async function oneDeltaPerVersion(upTo: number): Promise<Map<number, { seq: number; term: number }[]>> {
  const d = await fleet.deltas();
  for (let v = 1; v <= upTo; v++) expect(d.get(v)?.length, `deltas of version ${v}`).toBe(1);
  return d;
}

describe.sequential('planner group failover (real processes, 3 nats-servers)', () => {
  it('one planner leads; a second planner with a fresh --db joins as a follower and never moves a node', async () => {
    await fleet.startPlanner('a');
    expect((await fleet.leader()).name).toBe('a');
    for (const n of fleet.nodes) fleet.startApplier(n);
    const first = await fleet.converged();
    const termA = (await fleet.status('a'))!.self.term;
    await fleet.startPlanner('b');
    await expect
      .poll(async () => (await fleet.status('b'))?.self, { timeout: 30_000 })
      .toMatchObject({ id: 'b', leader: false });
    fleet.edit();
    const next = await fleet.converged();
    expect(next).toEqual({ version: first.version + 1, leader: 'a' });
    const d = await oneDeltaPerVersion(next.version);
    expect([...d.values()].flat().every((x) => x.term === termA)).toBe(true); // only a published
    const s = (await fleet.status('b'))!;
    expect(s.leader?.id).toBe('a');
    await expect
      .poll(async () => (await fleet.status('b'))?.planners.map((p) => [p.id, p.leader]), { timeout: 10_000 })
      .toEqual([
        ['a', true],
        ['b', false],
      ]);

    // ctl against the follower: reads are local and show the group; a write is redirected to the leader
    const b = fleet.planners.get('b')!.api;
    const a = fleet.planners.get('a')!.api;
    const table = await sb(['ctl', '--server', b, 'status']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(
      new RegExp(
        `group switchboard: planner a leads in term ${termA}; planners: a leader(, lag \\d+ rows)?; b \\(this one\\) follower`,
      ),
    );
    const json = JSON.parse((await sb(['ctl', '--server', b, 'status', '--json'])).stdout) as {
      self: unknown;
      planners: unknown[];
      nodes: unknown[];
    };
    expect(json.self).toMatchObject({ id: 'b', leader: false, term: termA });
    expect(json.planners).toEqual([
      expect.objectContaining({ id: 'a', leader: true, term: termA }),
      expect.objectContaining({ id: 'b', leader: false }),
    ]);
    expect(json.nodes).toHaveLength(2);
    const pin = await sb(['ctl', '--server', b, 'pin', '--version', '1']);
    expect(pin.code).toBe(1);
    expect(pin.stderr.trim()).toBe(
      `switchboard: planner: planner b follows in group switchboard; the leader is planner a (term ${termA}) at ${a}: send writes there (ctl --server ${a})`,
    );
    expect((await fleet.status('a'))?.latestVersion).toBe(next.version); // nothing was pinned

    // probes and metrics: a caught-up follower is ready; leader 0/1, term and lag exported
    await expect.poll(async () => (await fetch(`${b}/readyz`)).status, { timeout: 20_000 }).toBe(200);
    const metric = async (api: string, name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${api}/metrics`)).text())?.[1]);
    expect(await metric(a, 'switchboard_planner_leader')).toBe(1);
    expect(await metric(b, 'switchboard_planner_leader')).toBe(0);
    expect(await metric(b, 'switchboard_planner_term')).toBe(termA);
    await expect.poll(() => metric(b, 'switchboard_planner_replication_lag_rows'), { timeout: 20_000 }).toBe(0);
  }, 120_000);

  it('kill -9 of the nats-server the leader is connected to: a leader publishes the next change while it is down, no term given up; restarted, it rejoins', async () => {
    const old = await fleet.leader();
    const [idx] = fleet.serversOf(old.name);
    expect(idx, `${old.name} holds a NATS connection`).toBeDefined();
    const server = fleet.cluster.servers[idx!]!;
    const givenUp = () =>
      readdirSync(fleet.dir)
        .filter((f) => f.startsWith('planner-'))
        .flatMap((f) => readFileSync(path.join(fleet.dir, f), 'utf8').match(/cannot lead term .*/g) ?? []);
    const before = givenUp().length;
    await server.kill();
    const t0 = Date.now();
    fleet.edit();
    // probe5 H1: the next lease winners claimed their term and then gave it up ("cannot lead term N:
    // timeout", each followed by a TTL of hold-off) until the server was back. Streams led by the dead
    // server elect new leaders first (nats-server Raft: 4-9 s, longer than this fleet's 2 s TTL), so the
    // bound is 2 x TTL on top of that.
    const after = await fleet.converged(30_000);
    const took = Date.now() - t0;
    console.log(`server of ${old.name} killed: ${after.leader} published version ${after.version} in ${took} ms`);
    expect(givenUp().slice(before)).toEqual([]);
    expect(took, `the planners' logs since the kill:\n${fleet.logsSince(t0)}`).toBeLessThan(
      2 * LEASE_TTL_MS + RAFT_ELECTION_MAX_MS + 1500,
    ); // + one status poll round on this loaded machine
    await oneDeltaPerVersion(after.version);
    await server.start();
    const nc = await fleet.client();
    // no API check on creation: that is a request of its own, and the client may sit on the server
    // just restarted, whose JetStream answers only once it has caught up (a 5 s timeout under load,
    // CI-like run of test/ha with 2 busy loops); the poll below retries its reads until then
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    await expect
      .poll(
        async () => {
          const info = await jsm.streams.info(VERSIONS_STREAM).catch(() => undefined);
          const peers = [
            info?.cluster?.leader,
            ...(info?.cluster?.replicas ?? []).filter((r) => r.current).map((r) => r.name),
          ];
          return peers.filter(Boolean).length;
        },
        { timeout: 60_000, interval: 500 },
      )
      .toBe(3);
    fleet.edit();
    await fleet.converged();
  }, 150_000);

  it('kill -9 of the leader during churn: another leads within 2x the lease TTL; all nodes SYNCED on the newest version', async () => {
    const old = await fleet.leader();
    const churn = fleet.churn(50);
    let took: number;
    let t0 = 0;
    try {
      try {
        await new Promise((r) => setTimeout(r, 1000));
        await fleet.kill(old.name);
        t0 = Date.now();
        const next = await fleet.leader(30_000, old.name);
        took = Date.now() - t0;
        console.log(`leader ${old.name} killed during churn: ${next.name} leads term ${next.term} after ${took} ms`);
        expect(next.term).toBeGreaterThan(old.term);
      } finally {
        await churn.stop();
      }
      // the bound the issue sets; measured from the kill to the new leader answering as such
      expect(took, `the planners' logs since the kill:\n${fleet.logsSince(t0)}`).toBeLessThan(2 * LEASE_TTL_MS + 1500); // + one status poll round on this loaded machine
      fleet.edit();
      const after = await fleet.converged();
      await oneDeltaPerVersion(after.version);
    } finally {
      await fleet.startPlanner(old.name); // back as a follower of the new leader (the next test needs two planners)
    }
    await expect.poll(async () => (await fleet.status(old.name))?.self.leader, { timeout: 30_000 }).toBe(false);
  }, 150_000);

  it('SIGSTOP of the leader past its TTL: a new leader; after SIGCONT the old one publishes nothing and follows', async () => {
    const old = await fleet.leader();
    const seqBefore = Math.max(0, ...[...(await fleet.deltas()).values()].flat().map((x) => x.seq));
    await fleet.kill(old.name, 'SIGSTOP');
    try {
      fleet.edit(); // a change the stopped leader will see (and try to publish) when it wakes
      const next = await fleet.leader(30_000, old.name);
      expect(next.term).toBeGreaterThan(old.term);
      await fleet.converged();
    } finally {
      await fleet.kill(old.name, 'SIGCONT');
    }
    fleet.edit();
    await new Promise((r) => setTimeout(r, 2 * LEASE_TTL_MS));
    fleet.edit();
    const after = await fleet.converged();
    expect(alive(old.name)).toBe(true);
    expect((await fleet.status(old.name))?.self.leader).toBe(false);
    const d = await oneDeltaPerVersion(after.version);
    const sinceStop = [...d.values()].flat().filter((x) => x.seq > seqBefore);
    expect(sinceStop.length).toBeGreaterThan(0);
    expect(sinceStop.filter((x) => x.term === old.term)).toEqual([]); // the old leader published nothing
  }, 150_000);
});
