import { closeSync, openSync, renameSync, rmSync, writeSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '../../libs/eventlog/index.ts';
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
const alive = (p: { exitCode: number | null; signalCode: string | null }) =>
  p.exitCode === null && p.signalCode === null;
const appliers: ReturnType<Fleet['startApplier']>[] = [];
let edits = 0;
/** A manifest change outside the churn file, so a round also moves the version. */
const edit = () => fleet.write('edit.yaml', svcYaml('edit', `10.96.1.${(++edits % 250) + 1}`));

beforeAll(async () => {
  fleet = await startFleet({ nodes: ['n1', 'n2'], tmpfsMiB: 64 });
});
afterAll(async () => {
  process.stdout.write(
    `FAULT-FIGURES ${JSON.stringify(Object.fromEntries(Object.entries(recovery).map(([k, v]) => [k, figures(v)])))}\n`,
  );
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

  it('two planners on one NATS: the second (fresh log) follows, naming the leader, and moves no node', async () => {
    const before = await fleet.converged();
    const other = path.join(fleet.dir, 'second.db');
    const port = await freePort();
    const p2 = fleet.spawnPlanner(other, port, ['--id', 'second']);
    try {
      await expect
        .poll(
          async () => {
            const s = await fetch(`http://127.0.0.1:${port}/status`)
              .then((r) => r.json() as Promise<{ self?: { leader: boolean }; leader?: { id: string } }>)
              .catch(() => undefined);
            return s?.self && { leader: s.self.leader, leaderIsOther: s.leader?.id !== 'second' };
          },
          { timeout: 60_000, interval: 250 },
        )
        .toEqual({ leader: false, leaderIsOther: true });
      edit(); // the leader publishes; the follower writes nothing
      const after = await fleet.converged();
      expect(after.version).toBe(before.version + 1);
      expect(alive(p2)).toBe(true);
    } finally {
      const gone = new Promise((res) => p2.once('exit', res));
      p2.kill('SIGKILL');
      await gone;
    }
  }, 180_000);

  it('garbage on the bus (foreign versions, forged targets, bad acks) stops neither the planner nor the nodes', async () => {
    const nc = await fleet.client();
    const { versions } = (await (await fetch(`${fleet.api}/versions`)).json()) as { versions: { version: number }[] };
    const next = versions.length + 1;
    nc.publish(`sb.v.delta.${next}`, 'garbage');
    nc.publish(
      `sb.v.delta.${next + 1}`,
      JSON.stringify({
        version: next + 1,
        parent: next,
        hash: '0'.repeat(64),
        reason: 'x',
        createdAt: 'x',
        form: 'delta',
        delta: { upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: [] },
      }),
    );
    nc.publish('sb.v.checkpoint.1.0', 'garbage');
    nc.publish(
      'sb.target.default',
      JSON.stringify({
        revision: 999999999999,
        target: { version: 1, configRevision: 0, issued: 999999999999999, sig: 'AAAA' },
      }),
    );
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

  it('manifest hazards during churn: atomic renames, truncate + write, half-written files, an alias bomb, duplicate objects', async () => {
    const dir = fleet.manifests;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // Four endpoints in every complete version of a file; a half-written one would show fewer (or none).
    const ENDPOINTS = 4;
    const content = (name: string, ip: string, i: number) =>
      svcYaml(name, ip) +
      '---\n' +
      sliceYaml(
        name,
        Array.from({ length: ENDPOINTS }, (_, k) => `10.4.${i % 200}.${k + 1}`),
      );
    /**
     * Writes in two parts with a pause shorter than the settle time (100 ms), like a slow writer;
     * cut at `at` (default: mid-text, where the first part does not parse).
     */
    const writeInHalves = (file: string, text: string, truncatedFirstMs = 0, at = text.length >> 1) => {
      const fd = openSync(path.join(dir, file), 'w'); // truncates
      return (async () => {
        try {
          if (truncatedFirstMs) await sleep(truncatedFirstMs); // an empty file for a while (within the 2 s grace)
          writeSync(fd, text.slice(0, at));
          await sleep(10);
          writeSync(fd, text.slice(at));
        } finally {
          closeSync(fd);
        }
      })();
    };
    fleet.write('steady.yaml', content('steady', '10.96.3.1', 0));
    const before = await fleet.converged();

    const churn = fleet.churn(40);
    try {
      for (let i = 1; i <= 9; i++) {
        if (i % 3 === 1) {
          // atomic save: a temp file renamed over the old one (editors, sed -i, GitOps syncers)
          writeFileSync(path.join(dir, '.steady.yaml.tmp'), content('steady', '10.96.3.1', i));
          renameSync(path.join(dir, '.steady.yaml.tmp'), path.join(dir, 'steady.yaml'));
        } else if (i % 3 === 2) {
          await writeInHalves('steady.yaml', content('steady', '10.96.3.1', i), 300); // truncate, pause, write
        } else {
          // a new file caught half-written, cut between its documents: the first part parses (a
          // Service without its EndpointSlice) and must not be published alone
          const text = content('half', '10.96.3.2', i);
          await writeInHalves('half.yaml', text, 0, text.indexOf('---\n') + 4);
        }
        await sleep(250);
      }
      // an alias bomb: rejected alone, while the churn and the next edit keep flowing
      const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
      for (let k = 1; k <= 9; k++)
        bomb.push(
          `${String.fromCharCode(97 + k)}: &${String.fromCharCode(97 + k)} [${Array(10)
            .fill(`*${String.fromCharCode(96 + k)}`)
            .join(', ')}]`,
        );
      fleet.write('bomb.yaml', `${bomb.join('\n')}\n`);
      // the same object in two files: one rejection naming both; planner and plan keep the same one
      fleet.write('dup-a.yaml', svcYaml('dup', '10.96.3.3'));
      fleet.write('dup-b.yaml', svcYaml('dup', '10.96.3.4'));
      await sleep(500);
    } finally {
      await churn.stop();
    }
    edit();
    const after = await fleet.converged(); // converged() also checks the planner's newest version equals a fresh plan
    record('manifest hazards during churn', after);

    const status = (await (await fetch(`${fleet.api}/status`)).json()) as {
      rejected: { source: string; reason: string }[];
    };
    expect(status.rejected.filter((r) => r.source === 'bomb.yaml')).toEqual([
      expect.objectContaining({ reason: expect.stringMatching(/alias/i) }),
    ]);
    expect(status.rejected).toContainEqual(
      expect.objectContaining({
        source: 'dup-b.yaml',
        reason: expect.stringMatching(/duplicate: also defined in dup-a\.yaml/),
      }),
    );
    // No version of the round published a transient state: steady never removed, never short of
    // endpoints; half.yaml, once seen, always complete.
    const log = await EventLog.open({ file: fleet.db, migrate: false });
    try {
      let halfSeen = false;
      for (let v = before.version + 1; v <= after.version; v++) {
        const delta = log.versionDelta(v);
        if (!delta) continue; // a pin or rollback: no content of its own
        expect(delta.removeServices, `version ${v}`).not.toContain('default/steady');
        if (halfSeen) expect(delta.removeServices, `version ${v}`).not.toContain('default/half');
        for (const s of delta.upsertServices.filter((x) => x.key === 'default/steady' || x.key === 'default/half')) {
          expect(
            s.ports.map((p) => p.endpoints.length),
            `version ${v} ${s.key}`,
          ).toEqual([ENDPOINTS]);
          if (s.key === 'default/half') halfSeen = true;
        }
      }
      expect(halfSeen).toBe(true);
    } finally {
      log.close();
    }
    for (const f of ['steady.yaml', 'half.yaml', 'bomb.yaml', 'dup-a.yaml', 'dup-b.yaml']) rmSync(path.join(dir, f));
    edit();
    await fleet.converged();
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
      fleet.write(
        'bulk.yaml',
        svcYaml('bulk', '10.96.2.1') +
          '---\n' +
          sliceYaml(
            'bulk',
            Array.from({ length: 2000 }, (_, i) => `10.3.${(i + n) % 250}.${(i % 250) + 1}`),
          ),
      );
    }, 100);
    try {
      await expect
        .poll(
          async () =>
            ((await (await fetch(`${fleet.api}/status`)).json()) as { lastError: string | null }).lastError ?? '',
          { timeout: 60_000, interval: 250 },
        )
        .toMatch(/full|SQLITE_FULL|ENOSPC/i);
      // Not ready while it cannot log what it sees (the shipped Deployment's readinessProbe).
      await expect
        .poll(
          async () => {
            const r = await fetch(`${fleet.api}/readyz`);
            return `${r.status} ${((await r.json()) as { reason?: string }).reason ?? ''}`;
          },
          { timeout: 30_000, interval: 250 },
        )
        .toMatch(/^503 cannot log the events it sees: append: .*(full|SQLITE_FULL|ENOSPC)/i);
    } finally {
      clearInterval(bulk);
      rmSync(filler, { force: true });
    }
    edit();
    record('disk full', await fleet.converged());
    expect((await fetch(`${fleet.api}/readyz`)).status).toBe(200);
  }, 240_000);
});
