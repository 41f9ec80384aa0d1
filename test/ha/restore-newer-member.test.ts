import { copyFileSync, existsSync } from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { RunningPlanner } from '../../services/planner/run-planner.ts';
import { sb } from '../services/cli/cli-support.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, type PlannerEnv } from '../services/planner/planner-support.ts';
import { startGroupPlanner } from './in-process-group.ts';

/**
 * probe13 R4, with planners: a whole site restored after NATS lost its store, the older backup's
 * planner started first. The planner on the newer backup dropped its newer versions without a
 * word outside its stderr; now it refuses, keeps them, says why on /readyz, and the leader's
 * `ctl status` names it. (The replicator's rule: test/libs/eventlog/replication-new-stream.test.ts.)
 */
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const startPlanner = (id: string, db: string) => startGroupPlanner(env, stops, { id, db });
const readyz = async (p: RunningPlanner) => {
  const r = await fetch(`${p.url}/readyz`);
  return { status: r.status, ...((await r.json()) as { reason?: string }) };
};
/** `db backup` of a stopped planner's file: the file (and a WAL, were one left). */
function backup(db: string, out: string): void {
  copyFileSync(db, out);
  if (existsSync(`${db}-wal`)) copyFileSync(`${db}-wal`, `${out}-wal`);
}

it('the member on the newer backup keeps its versions and refuses to follow: /readyz 503, the leader’s ctl status warns', async () => {
  const site = `${env.db}.site`;
  const a = await startPlanner('a', site);
  await expect.poll(() => a.group.role(), { timeout: 20_000 }).toBe('leader');
  await expect.poll(() => a.planner.data.latest()?.version ?? 0, { timeout: 20_000 }).toBeGreaterThan(0);
  await a.stop();
  backup(site, `${env.db}.older`);
  const a2 = await startPlanner('a', site);
  await expect.poll(() => a2.group.role(), { timeout: 20_000 }).toBe('leader');
  const before = a2.planner.data.latest()?.version ?? 0;
  env.write('b.yaml', svcYaml('b', '10.96.0.2') + '---\n' + sliceYaml('b', ['10.0.0.2']));
  await expect.poll(() => a2.planner.data.latest()?.version ?? 0, { timeout: 20_000 }).toBeGreaterThan(before);
  const newest = a2.planner.data.latest()?.version ?? 0;
  await a2.stop();
  backup(site, `${env.db}.newer`);

  await env.nats.restartEmpty();
  const p1 = await startPlanner('p1', `${env.db}.older`);
  await expect.poll(() => p1.group.role(), { timeout: 20_000 }).toBe('leader');
  const p2 = await startPlanner('p2', `${env.db}.newer`);
  await expect
    .poll(async () => readyz(p2), { timeout: 20_000, interval: 200 })
    .toMatchObject({
      status: 503,
      reason: expect.stringMatching(
        /^cannot follow: .*this file holds versions? .*not dropping them.*--accept-truncation/,
      ),
    });
  expect(p2.planner.data.latest()?.version).toBe(newest);
  expect(p2.group.role()).toBe('follower');

  await expect
    .poll(async () => (await sb(['ctl', '--server', p1.url, 'status'])).stdout, { timeout: 20_000, interval: 300 })
    .toMatch(/^WARNING: planner p2: cannot follow: log stream SB_LOG_switchboard \(made again .*not dropping them/m);
}, 90_000);
