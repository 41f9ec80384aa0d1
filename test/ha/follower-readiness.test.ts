import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { EventLog, logStreamName } from '../../libs/eventlog/index.ts';
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
const realImportSteps = EventLog.prototype.importRowsSteps;
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
});
afterEach(async () => {
  EventLog.prototype.importRows = realImport;
  EventLog.prototype.importRowsSteps = realImportSteps;
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const lines: string[] = [];
const startPlanner = (id: string, db: string) =>
  startGroupPlanner(env, stops, { id, db, say: (l) => lines.push(`${id}: ${l}`) });

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
  // (a batch is applied by importRowsSteps, a snapshot by importRows)
  EventLog.prototype.importRows = function (this: EventLog, ...args) {
    if (this.file === bDb) throw new Error(full);
    return realImport.apply(this, args);
  };
  EventLog.prototype.importRowsSteps = function* (this: EventLog, ...args) {
    if (this.file === bDb) throw new Error(full);
    return yield* realImportSteps.apply(this, args);
  };
  env.write('b.yaml', svcYaml('b', '10.96.0.2') + '---\n' + sliceYaml('b', ['10.0.0.2'])); // a batch b cannot take
  await expect
    .poll(async () => readyz(b), { timeout: 20_000, interval: 100 })
    .toEqual({ status: 503, ready: false, reason: `cannot follow: ${full}` });
  expect(b.planner.lastError).toBe(`cannot follow: ${full}`);

  EventLog.prototype.importRows = realImport; // the disk has room again
  EventLog.prototype.importRowsSteps = realImportSteps;
  await expect.poll(async () => (await readyz(b)).status, { timeout: 20_000, interval: 100 }).toBe(200);
  expect(b.planner.lastError).toBeUndefined();
  expect(b.planner.data.latest()?.version).toBe(a.planner.data.latest()?.version);
}, 90_000);

it("a follower whose file's mark passed batches it never stored (probe9 G1): /readyz 503 naming why; it never leads with that file", async () => {
  const a = await startPlanner('a', `${env.db}.a`);
  await expect.poll(() => a.group.role(), { timeout: 20_000 }).toBe('leader');
  const bDb = `${env.db}.b`;
  const b = await startPlanner('b', bDb);
  await expect.poll(async () => (await readyz(b)).status, { timeout: 20_000 }).toBe(200);
  // b has taken the group's batches (its stop then marks its file): ready alone came before that
  // once under load, and b's file had no mark to edit (NOT NULL constraint failed: replication_mark.stream)
  // (a's version first: under load both were still undefined, "equal", and b stopped before any batch)
  await expect.poll(() => a.planner.data.latest()?.version ?? 0, { timeout: 20_000 }).toBeGreaterThan(0);
  await expect.poll(() => b.planner.data.latest()?.version, { timeout: 20_000 }).toBe(a.planner.data.latest()?.version);
  await b.stop();
  const before = a.planner.data.latest()?.version ?? 0;
  env.write('b.yaml', svcYaml('b', '10.96.0.2') + '---\n' + sliceYaml('b', ['10.0.0.2'])); // batches b misses
  await expect.poll(() => a.planner.data.latest()?.version ?? 0, { timeout: 20_000 }).toBeGreaterThan(before);
  // what a release before this one left in b's file: a mark at the stream's end, without its rows
  const nc = await connect({ servers: env.nats.url });
  const last = (await (await jetstreamManager(nc)).streams.info(logStreamName('switchboard'))).state.last_seq;
  await nc.close();
  const log = await EventLog.open({ file: bDb });
  const mark = log.replicationMark();
  expect(mark, "b's file holds no replication mark after its stop").toBeDefined();
  log.setReplicationMark({ ...mark!, streamSeq: last });
  log.close();

  const b2 = await startPlanner('b', bDb);
  await expect
    .poll(async () => readyz(b2), { timeout: 20_000, interval: 100 })
    .toMatchObject({
      status: 503,
      reason: expect.stringMatching(/^cannot follow: .*it passed batches it never stored.*cannot lead/),
    });
  // the leader goes: b is elected, and gives the term up rather than lead from its stale file
  await a.stop();
  await expect
    .poll(() => lines.some((l) => /^b: cannot lead term \d+: .*it passed batches it never stored/.test(l)), {
      timeout: 20_000,
      interval: 100,
    })
    .toBe(true);
  expect(b2.group.role()).toBe('follower');
}, 90_000);
