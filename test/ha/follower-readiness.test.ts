import { afterEach, beforeEach, expect, it } from 'vitest';
import { EventLog } from '../../libs/eventlog/index.ts';
import type { RunningPlanner } from '../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, sliceYaml, svcYaml, type PlannerEnv } from '../services/planner/planner-support.ts';
import { startGroupPlanner } from './in-process-group.ts';

/**
 * probe5 H4: a follower whose file takes no replicated rows (a full disk) said /readyz 200 and
 * lastError null while every import failed (stderr only) and it fell behind for good. Two planners
 * in this process on one nats-server; the follower's imports are made to fail the way a full disk
 * fails them (the event log's own message), without a tmpfs.
 */
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
const realImport = EventLog.prototype.importRows;
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  EventLog.prototype.importRows = realImport;
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const startPlanner = (id: string, db: string) => startGroupPlanner(env, stops, { id, db });

const readyz = async (p: RunningPlanner) => {
  const r = await fetch(`${p.url}/readyz`);
  return { status: r.status, ...((await r.json()) as { reason?: string }) };
};

it('a follower whose imports fail: /readyz 503 and lastError "cannot follow: ..." while they fail; ready again once they work', async () => {
  const a = await startPlanner('a', `${env.db}.a`);
  await expect.poll(() => a.group.role(), { timeout: 20_000 }).toBe('leader');
  const bDb = `${env.db}.b`;
  const b = await startPlanner('b', bDb);
  await expect.poll(async () => (await readyz(b)).status, { timeout: 20_000 }).toBe(200);

  const full = `event log ${bDb}: import of replicated rows: disk full (database or disk is full); nothing was written`;
  EventLog.prototype.importRows = function (this: EventLog, ...args) {
    if (this.file === bDb) throw new Error(full);
    return realImport.apply(this, args);
  };
  env.write('b.yaml', svcYaml('b', '10.96.0.2') + '---\n' + sliceYaml('b', ['10.0.0.2'])); // a batch b cannot take
  await expect
    .poll(async () => readyz(b), { timeout: 20_000, interval: 100 })
    .toEqual({ status: 503, ready: false, reason: `cannot follow: ${full}` });
  expect(b.planner.lastError).toBe(`cannot follow: ${full}`);

  EventLog.prototype.importRows = realImport; // the disk has room again
  await expect.poll(async () => (await readyz(b)).status, { timeout: 20_000, interval: 100 }).toBe(200);
  expect(b.planner.lastError).toBeUndefined();
  expect(b.planner.data.latest()?.version).toBe(a.planner.data.latest()?.version);
}, 90_000);
