import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { figures, freePort, sliceYaml, startFleet, svcYaml, type Fleet } from './fleet.ts';

/**
 * The fault suite: one fleet of real processes (nats-server with per-node permissions, the
 * planner, two dry-run appliers) taken through each fault in turn. Every round ends with
 * fleet.converged(): versions gap-free, db verify --deep passes (every version replays to its
 * recorded hash) and the stream anchors the log's tail, the newest version equals a fresh plan
 * of the directory, every node SYNCED on it. Recovery times go to stdout as one JSON line
 * (`FAULT-FIGURES {...}`) for docs/reliability.md.
 *
 * To add a round (another engineer's fix): a new `it` that injects the fault, then
 * `record('name', await fleet.converged())`.
 */
const PLANNER_KILL_ROUNDS = 3;
let fleet: Fleet;
const recovery: Record<string, number[]> = {};
const record = (fault: string, r: { ms: number }) => (recovery[fault] ??= []).push(r.ms);
const alive = (p: { exitCode: number | null; signalCode: string | null }) => p.exitCode === null && p.signalCode === null;
const appliers: ReturnType<Fleet['startApplier']>[] = [];
let edits = 0;
/** A manifest change outside the churn file, so a round also moves the version. */
const edit = () => fleet.write('edit.yaml', svcYaml('edit', `10.96.1.${(++edits % 250) + 1}`));

beforeAll(async () => {
  fleet = await startFleet({ nodes: ['n1', 'n2'], tmpfsMiB: 64 });
});
afterAll(async () => {
  process.stdout.write(`FAULT-FIGURES ${JSON.stringify(Object.fromEntries(Object.entries(recovery).map(([k, v]) => [k, figures(v)])))}\n`);
  await fleet?.close();
});

describe.sequential('fault suite (real processes)', () => {
  it('appliers started first: before NATS is up and before any planner ran; they wait, never exit, then follow', async () => {
    await fleet.nats.kill();
    for (const n of fleet.nodes) appliers.push(fleet.startApplier(n));
    await new Promise((r) => setTimeout(r, 3000)); // let them fail to connect a few times
    await fleet.nats.start(); // empty of streams and buckets: no planner has run
    await new Promise((r) => setTimeout(r, 2000));
    expect(appliers.every(alive)).toBe(true);
    fleet.startPlanner();
    record('appliers first', await fleet.converged());
    expect(appliers.every(alive)).toBe(true);
  }, 180_000);

  it(`kill -9 of the planner during churn, ${PLANNER_KILL_ROUNDS} rounds`, async () => {
    for (let round = 0; round < PLANNER_KILL_ROUNDS; round++) {
      const churn = fleet.churn(40);
      try {
        await new Promise((r) => setTimeout(r, 1500 + 300 * round));
        await fleet.killPlanner();
        await new Promise((r) => setTimeout(r, 300));
        edit();
      } finally {
        await churn.stop();
      }
      fleet.startPlanner();
      record('planner kill -9 during churn', await fleet.converged());
    }
  }, 400_000);

  it('NATS kill -9 and restart with its store, during churn', async () => {
    const churn = fleet.churn(40);
    try {
      await new Promise((r) => setTimeout(r, 1000));
      await fleet.nats.restart();
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await churn.stop();
    }
    record('NATS kill -9, store kept', await fleet.converged());
  }, 180_000);

  it('NATS kill -9 and restart WITHOUT its store: the planner republishes, appliers follow without a restart', async () => {
    await fleet.nats.restartEmpty();
    edit();
    record('NATS kill -9, store lost', await fleet.converged());
    expect(appliers.every(alive)).toBe(true);
  }, 180_000);

  it('two planners on one NATS: the second refuses to act and exits non-zero; no node moves', async () => {
    const before = await fleet.converged();
    const other = path.join(fleet.dir, 'second.db');
    const p2 = fleet.spawnPlanner(other, await freePort());
    const code = await new Promise<number | null>((res) => p2.once('exit', (c) => res(c)));
    expect(code).not.toBe(0);
    const log = readdirSync(fleet.dir).filter((f) => f.startsWith('planner-2-')).map((f) => readFileSync(path.join(fleet.dir, f), 'utf8')).join('');
    expect(log).toMatch(/another planner holds the lease on this NATS \(planner [^)]*log\.db, pid \d+/);
    const after = await fleet.converged();
    expect(after.version).toBe(before.version);
  }, 180_000);

  it('garbage on the bus (foreign versions, forged targets, bad acks) stops neither the planner nor the nodes', async () => {
    const nc = await fleet.client();
    const { versions } = await (await fetch(`${fleet.api}/versions`)).json() as { versions: { version: number }[] };
    const next = versions.length + 1;
    nc.publish(`sb.v.delta.${next}`, 'garbage');
    nc.publish(`sb.v.delta.${next + 1}`, JSON.stringify({ version: next + 1, parent: next, hash: '0'.repeat(64), reason: 'x', createdAt: 'x', form: 'delta', delta: { upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: [] } }));
    nc.publish('sb.v.checkpoint.1.0', 'garbage');
    nc.publish('sb.target.default', JSON.stringify({ revision: 999999999999, target: { version: 1, configRevision: 0, issued: 999999999999999, sig: 'AAAA' } }));
    nc.publish('sb.ack.n1', 'garbage');
    await nc.flush();
    edit();
    record('garbage on the bus', await fleet.converged());
    // and a planner restart over a stream whose last messages are foreign
    nc.publish(`sb.v.delta.${next + 5}`, 'garbage');
    await nc.flush();
    await fleet.killPlanner();
    fleet.startPlanner();
    edit();
    record('garbage on the bus', await fleet.converged());
  }, 240_000);

  it('disk full under the planner: it says so, keeps running, and recovers once space is back, losing nothing', async (ctx) => {
    if (!fleet.dbOnTmpfs) return ctx.skip(); // mount not allowed here: reason printed by startFleet
    const filler = path.join(fleet.dbDir, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(64 * 1024 * 1024));
    } catch {
      // ENOSPC: the filesystem is now full, which is the point
    }
    // Large events, so the log must grow past the space its WAL already holds.
    let n = 0;
    const bulk = setInterval(() => {
      n++;
      fleet.write('bulk.yaml', svcYaml('bulk', '10.96.2.1') + '---\n' + sliceYaml('bulk', Array.from({ length: 2000 }, (_, i) => `10.3.${(i + n) % 250}.${(i % 250) + 1}`)));
    }, 100);
    try {
      await expect.poll(async () => ((await (await fetch(`${fleet.api}/status`)).json()) as { lastError: string | null }).lastError ?? '', { timeout: 60_000, interval: 250 })
        .toMatch(/full|SQLITE_FULL|ENOSPC/i);
    } finally {
      clearInterval(bulk);
      rmSync(filler, { force: true });
    }
    edit();
    record('disk full', await fleet.converged());
  }, 240_000);
});
