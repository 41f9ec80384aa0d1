import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog, replayVersion } from '../../libs/eventlog/index.ts';
import { sliceYaml, svcYaml } from '../faults/fleet.ts';
import { startHaFleet, type HaFleet } from './ha-fleet.ts';

/**
 * Issue 12 item 4: no event is lost across a takeover. A writer adds one distinct Service (unique
 * cluster IP, one unique endpoint) per edit, in its own manifest file, every 100 ms; the leader is
 * killed -9 in the middle of that churn and the edits go on through the leaderless window and
 * after the new leader took over. Every edit must then be in some version the new leader's log
 * recorded (each version rebuilt from that log, its hash equal to the one recorded and published),
 * stay in every later version, and the newest version must be the directory's final state.
 *
 * What it catches: events the killed leader committed to its own SQLite file but never flushed
 * to the replicated log die with it (its file is truncated back to the group when it rejoins), so
 * the new leader's manifest source must re-read them from the directory, not trust a resume point
 * or object set that included them; a new leader that planned before catching up to the
 * replicated log would publish a version missing edits an older version held (a version going
 * backwards); an edit written while no planner led must be found by the new leader's first scan.
 */
let fleet: HaFleet;

beforeAll(async () => {
  fleet = await startHaFleet({ nodes: ['n1', 'n2'] });
}, 90_000);
afterAll(async () => {
  await fleet?.close();
});

const editIp = (i: number) => `10.97.${Math.floor(i / 250)}.${(i % 250) + 1}`;
const endpointIp = (i: number) => `10.3.${Math.floor(i / 250)}.${(i % 250) + 1}`;

describe('planner group takeover (real processes, 3 nats-servers)', () => {
  it('kill -9 of the leader during a stream of distinct edits: every edit is in some version, none dropped later, the last is the directory', async () => {
    await fleet.startPlanner('a');
    const old = await fleet.leader();
    for (const n of fleet.nodes) fleet.startApplier(n);
    await fleet.converged();
    await fleet.startPlanner('b');
    await expect
      .poll(async () => (await fleet.status('b'))?.self, { timeout: 30_000 })
      .toMatchObject({ id: 'b', leader: false });

    let edits = 0;
    let stopped = false;
    const writer = (async () => {
      while (!stopped) {
        const i = edits++;
        fleet.write(
          `hist-${i}.yaml`,
          svcYaml(`hist-${i}`, editIp(i)) + '---\n' + sliceYaml(`hist-${i}`, [endpointIp(i)]),
        );
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let next: { name: string; term: number };
    try {
      await new Promise((r) => setTimeout(r, 1500)); // the old leader publishes (and flushes) some of them
      await fleet.kill(old.name);
      const killedAt = edits;
      next = await fleet.leader(30_000, old.name);
      expect(next.term).toBeGreaterThan(old.term);
      const tookOverAt = edits;
      await new Promise((r) => setTimeout(r, 1500)); // edits after the takeover
      expect(killedAt).toBeGreaterThan(5);
      expect(tookOverAt).toBeGreaterThan(killedAt); // some edits were written while no planner led
    } finally {
      stopped = true;
      await writer;
    }
    // converged() also requires the newest version to be the directory's state; should it never
    // get there, the versions are still read below so that the failure names the edits in none.
    const final = await fleet.converged(60_000).catch((e: Error) => e);

    // Every version as the new leader's log records it, rebuilt from its events; the hash check
    // ties the rebuilt content to what was published under that number.
    const log = await EventLog.open({ file: fleet.planners.get(next.name)?.db ?? '', migrate: false });
    const firstIn = new Map<number, number>(); // edit → first version holding it
    try {
      const last = log.latestVersion()?.version ?? 0;
      if (!(final instanceof Error)) expect(last).toBeGreaterThanOrEqual(final.version);
      for (let v = 1; v <= last; v++) {
        const r = replayVersion(log, v);
        expect(r.hash, `version ${v} rebuilt from the log`).toBe(r.version.hash);
        const services = new Map<string, string | undefined>();
        const endpoints = new Map<string, string | undefined>();
        for (const o of r.state.objects()) {
          if (o.kind === 'Service') services.set(o.meta.name, o.clusterIPs[0]);
          else if (o.kind === 'EndpointSlice') endpoints.set(o.serviceName, o.endpoints[0]?.addresses[0]);
        }
        for (let i = 0; i < edits; i++) {
          const holds = services.get(`hist-${i}`) === editIp(i) && endpoints.get(`hist-${i}`) === endpointIp(i);
          if (holds && !firstIn.has(i)) firstIn.set(i, v);
          // once an edit was in a version, no later version may lack it (nothing removes it)
          if (firstIn.has(i))
            expect(holds, `edit ${i} (in version ${firstIn.get(i)}) missing from version ${v}`).toBe(true);
        }
      }
    } finally {
      log.close();
    }
    const lost = Array.from({ length: edits }, (_, i) => i).filter((i) => !firstIn.has(i));
    expect(lost, `edits in no version (of ${edits})`).toEqual([]);
    if (final instanceof Error) throw final;
    expect(final.leader).toBe(next.name);
    // the edits reached the nodes in versions of both terms: the stream's deltas carry the term
    const termOf = new Map([...(await fleet.deltas())].map(([v, d]) => [v, d[0]?.term]));
    const terms = new Set([...firstIn.values()].map((v) => termOf.get(v)));
    expect(terms.has(old.term), `terms of the versions that first held an edit: ${[...terms]}`).toBe(true);
    expect(
      [...terms].some((t) => (t ?? 0) > old.term),
      `terms: ${[...terms]}`,
    ).toBe(true);
  }, 150_000);
});
