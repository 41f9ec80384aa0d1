import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { nodeYaml, plannerEnv, svcYaml, type PlannerEnv } from '../services/planner/planner-support.ts';
import { unledReason } from '../../services/planner/planner-group.ts';
import { startGroupPlanner } from './in-process-group.ts';

/**
 * probe16 I4: a planner of a group started with another signing key than the group's (its Secret
 * missed, or no --signing-key: one made beside its --db) refuses every message of the group's log
 * and every lease record. It announced no problem (`problem: null`, lag 0: the leader's ctl status
 * showed nothing), its /readyz said "the lease is free and no planner of the group has claimed
 * it" of a led group, and at the next failover it led with none of the group's history.
 */
const stops: (() => Promise<unknown>)[] = [];
let env: PlannerEnv;
beforeEach(async () => {
  env = await plannerEnv();
  env.write('n.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1'));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

it("a member whose key is not the group's says so: on its /readyz, and in its member record the leader shows", async () => {
  const saidB: string[] = [];
  const a = await startGroupPlanner(env, stops, { id: 'a', db: path.join(env.dir, 'a.db'), group: 'g' });
  await a.planner.synced;
  await expect.poll(() => a.group.role(), { timeout: 15_000 }).toBe('leader');
  const b = await startGroupPlanner(env, stops, {
    id: 'b',
    db: path.join(env.dir, 'b.db'),
    group: 'g',
    signingKey: path.join(env.dir, 'b-own-key.pem'),
    say: (l) => saidB.push(l),
  });
  type Member = { id: string; problem: string | null };
  const memberB = async () =>
    ((await (await fetch(`${a.url}/status`)).json()) as { planners?: Member[] }).planners?.find((m) => m.id === 'b');
  await expect
    .poll(async () => (await memberB())?.problem ?? null, { timeout: 15_000 })
    .toMatch(/cannot follow: log stream \S+ seq \d+: .*not the group's signing key's.*another --signing-key/);
  const readyz = async () => {
    const r = await fetch(`${b.url}/readyz`);
    return `${r.status} ${((await r.json()) as { reason: string }).reason}`;
  };
  await expect.poll(readyz, { timeout: 15_000 }).toMatch(/^503 .*another --signing-key/);
  // past the lease TTL with no record it accepts: what it says of the lease names the record
  // (its lastError; /readyz names its key first: it keeps out of the lease for it, below)
  const noLeader = () => unledReason(b.group.view()) ?? '';
  await expect.poll(noLeader, { timeout: 15_000 }).toMatch(/record this planner does not follow/);
  expect(noLeader()).not.toMatch(/the lease is free/);

  // the leader goes (its lease released at once): B does not take the lease. Before, it led "as
  // term N from seq 4" with none of the group's history, signing versions the group's appliers
  // drop (probe16 I4 leftover); now it says why it stays out, on stderr and /readyz
  await expect
    .poll(() => saidB.filter((l) => l.startsWith('not contending for the lease of group g: ')), { timeout: 10_000 })
    .toEqual([
      expect.stringMatching(
        /another --signing-key.*; and the lease record of 'a' is not signed by the group's key: fix this planner's --signing-key/,
      ),
    ]);
  await a.stop();
  // B finds the lease free (a's record released), and a TTL later (2 s: a contender takes it
  // within TTL/4) it still follows, and says why it is not the one
  await expect.poll(noLeader, { timeout: 10_000 }).toMatch(/the lease is free/);
  await new Promise((r) => setTimeout(r, 3000));
  expect(await readyz()).toMatch(/^503 signing key: not contending for the lease of group g: /);
  expect(b.group.role()).toBe('follower');
  expect(saidB.filter((l) => /elected leader|cannot lead/.test(l))).toEqual([]);
}, 40_000);
