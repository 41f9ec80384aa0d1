import { execFile } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { createServer } from 'node:net';
import Database from 'better-sqlite3';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import {
  DEFAULT_TARGET_KEY,
  newestPublishedAnchor,
  readVerifierFile,
  TARGETS_BUCKET,
  TARGETS_STREAM,
  VERSIONS_STREAM,
} from '../../../libs/bus/index.ts';
import { checkVersionAnchor, compactLog, EventLog } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { WatchedDataplane } from '../../libs/bus/bus-harness.ts';
import { nodeYaml, plannerEnv, plannerOptions, sliceYaml, svcYaml, type PlannerEnv } from './planner-support.ts';

const run = promisify(execFile);
const BIN = new URL('../../../bin/switchboard', import.meta.url).pathname;

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

const startPlanner = async (extra: Partial<Parameters<typeof runPlanner>[0]> = {}): Promise<RunningPlanner> => {
  const p = await runPlanner({
    ...plannerOptions(env),
    leaseTtlMs: 3000,
    busMaxBackoffMs: 200, // retries every 200 ms, not 250 ms doubling to 5 s
    ...extra,
  });
  stops.push(() => p.stop());
  await p.planner.synced;
  return p;
};

const startApplier = async (): Promise<{ svc: ApplierService; dataplane: WatchedDataplane }> => {
  const dataplane = new WatchedDataplane();
  const svc = await startApplierService({
    node: 'node-1',
    nats: env.nats.url,
    mode: 'dry-run',
    http: '127.0.0.1:0',
    dataplane,
    heartbeatMs: 200,
    maxBackoffMs: 200,
    verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
    logger: pino({ level: 'silent' }),
  });
  stops.push(() => svc.stop());
  return { svc, dataplane };
};

/** A planner makes versions 1-3 (a.yaml, then b.yaml, then c.yaml) and stops: its log is free for the tools. */
const threeVersionsThenStop = async (): Promise<void> => {
  const p = await startPlanner();
  env.write('b.yaml', svcYaml('b', '10.96.0.2'));
  await expect.poll(() => p.planner.data.latest()?.version, { timeout: 20_000 }).toBe(2);
  env.write('c.yaml', svcYaml('c', '10.96.0.3'));
  await expect.poll(() => p.planner.data.latest()?.version, { timeout: 20_000 }).toBe(3);
  await p.stop();
  stops.length = 0;
};

/** A port nothing listens on right now (the kernel's pick, released at once). */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const readyz = async (svc: ApplierService) => {
  const r = await fetch(`http://127.0.0.1:${svc.httpPort}/readyz`);
  return {
    status: r.status,
    body: (await r.json()) as { ready: boolean; reason: string; waitingFor?: string; applied?: { version: number } },
  };
};

describe('start in any order, wait for what is missing', () => {
  it('an applier started with NATS unreachable waits, says so on /readyz, and follows once NATS and the planner come', async () => {
    await startPlanner(); // writes the signing key; then NATS goes away
    await env.nats.kill();
    const { svc } = await startApplier();
    await expect
      .poll(async () => (await readyz(svc)).body.reason, { timeout: 10_000 })
      .toMatch(new RegExp(`waiting for NATS at ${env.nats.url}: connection refused`));
    expect((await readyz(svc)).status).toBe(503);
    await env.nats.start();
    await expect.poll(async () => (await readyz(svc)).status, { timeout: 20_000 }).toBe(200);
    expect((await readyz(svc)).body).toMatchObject({ ready: true, applied: { version: 1 } });
  });

  it('a planner started with NATS down waits (naming the URL) and publishes once it is up', async () => {
    await env.nats.kill();
    const waits: string[] = [];
    const port = await freePort();
    const starting = startPlanner({ onBusWaiting: (w) => waits.push(w), http: `127.0.0.1:${port}` });
    await expect.poll(() => waits.length, { timeout: 10_000 }).toBeGreaterThan(1);
    expect(waits[0]).toMatch(new RegExp(`^NATS at ${env.nats.url}: connection refused`));
    // The API is bound while it waits: the probes answer (not ready, saying why), the rest 503.
    const api = `http://127.0.0.1:${port}`;
    const early = await fetch(`${api}/readyz`);
    expect({ status: early.status, body: await early.json() }).toEqual({
      status: 503,
      body: {
        ready: false,
        reason: `planner is starting (restoring from its log, waiting for NATS); last try: ${waits.at(-1)}`,
      },
    });
    expect((await fetch(`${api}/livez`)).status).toBe(200);
    const status = await fetch(`${api}/status`);
    expect({ status: status.status, body: await status.json() }).toEqual({
      status: 503,
      body: { error: 'planner is starting (restoring from its log)' },
    });
    await env.nats.start();
    const p = await starting;
    expect(p.planner.data.latest()?.version).toBe(1);
    expect((await fetch(`${api}/readyz`)).status).toBe(200);
    const { svc } = await startApplier();
    await expect.poll(async () => (await readyz(svc)).status, { timeout: 20_000 }).toBe(200);

    // The targets bucket deleted under the running planner (someone cleaning JetStream): the next
    // target write fails, the planner sees the bucket gone, recreates it and republishes; before,
    // every later write failed ("jetstream is not enabled") and nothing recreated it.
    const nc = await connect({ servers: env.nats.url }); // env.nc may still be reconnecting after the restart
    stops.push(() => nc.close());
    await (await jetstreamManager(nc)).streams.delete(TARGETS_STREAM);
    env.write('b.yaml', svcYaml('b', '10.96.0.2'));
    const target = async () => {
      const kv = await new Kvm(nc).open(TARGETS_BUCKET);
      return new TextDecoder().decode((await kv.get(DEFAULT_TARGET_KEY))?.value ?? new Uint8Array());
    };
    // recreating stream and bucket and republishing every version: 30 s, as the other recoveries
    // here (10 s timed out once with the whole planner directory running under 2 busy loops)
    await expect.poll(target, { timeout: 30_000 }).toMatch(/"version":2\b/);
    await expect.poll(() => p.planner.lastError, { timeout: 10_000 }).toBeUndefined();
  }, 60_000);

  it('NATS back with an EMPTY store: the planner recreates stream and bucket and republishes (from its compaction cut); the applier follows without a restart', async () => {
    // The 200 ms backoff: NATS is back before the lease lapses. A fresh node (below) shows the base
    // is on the stream again.
    const said: string[] = [];
    const p = await startPlanner({
      say: (line) => {
        said.push(line);
        process.stderr.write(`planner: ${line}\n`);
      },
    });
    const { svc } = await startApplier();
    await expect.poll(async () => (await readyz(svc)).status, { timeout: 20_000 }).toBe(200);
    env.write('b.yaml', svcYaml('b', '10.96.0.2'));
    await expect.poll(async () => (await readyz(svc)).body.applied?.version, { timeout: 20_000 }).toBe(2);
    // Version 1 compacted away under the running planner (its own handle: `db compact` would wait
    // for its writer lock), so the re-elected leader's republish starts at version 2 (review2 R8).
    compactLog(p.planner['options'].log, 2);
    await env.nats.restartEmpty();
    env.write('c.yaml', svcYaml('c', '10.96.0.3')); // a new version while the store is empty
    await expect.poll(() => p.planner.data.latest()?.version, { timeout: 30_000 }).toBe(3);
    // the node ran version 2 from the lost stream; it reaches 3 through the base checkpoint 2
    await expect.poll(async () => (await readyz(svc)).body.applied?.version, { timeout: 30_000 }).toBe(3);
    expect((await readyz(svc)).status).toBe(200);
    // The new stream starts at a base, and the operator is told which. Two orders are correct: the
    // leader's first publish after the reset finds the stream empty and sends the compaction cut
    // (version 2) as the base, the versions before it said not republished; or its check of what
    // the stream lacks comes first (a new leader's first publish, or the periodic check) and sends
    // the newest version as the base (a fresh run of test/services/planner under 2 busy loops took
    // this order once: republished undefined). Either way a node that never saw the lost stream
    // loads the base (below).
    const told = said.filter((l) =>
      /^(versions? .* compacted from the log and (is|are) not republished|the versions stream lost .*; version [23] published again as a checkpoint)/.test(
        l,
      ),
    );
    expect(told, `the planner said:\n${said.join('\n')}`).not.toEqual([]);
    if (p.planner.republished) expect(p.planner.republished.from).toBe(2);
    // ... and never a delta whose parent the new stream lacks: the oldest version on it has its
    // checkpoint (the base), every later one its delta
    const nc = await connect({ servers: env.nats.url }); // env.nc's own may still be reconnecting
    stops.push(() => nc.close());
    const info = await (await jetstreamManager(nc)).streams.info('SB_VERSIONS', { subjects_filter: 'sb.v.>' });
    const subjects = Object.keys(info.state.subjects ?? {}).filter((k) => k !== 'sb.v.term');
    const versions = subjects.map((k) => Number(k.split('.')[3])).filter((v) => v > 0);
    const base = Math.min(...versions);
    expect(subjects, `the planner said:\n${said.join('\n')}`).toContain(`sb.v.checkpoint.${base}.0`);
    for (let v = base + 1; v <= 3; v++) expect(subjects).toContain(`sb.v.delta.${v}`);
    // what a node that never saw the lost stream needs: a base on the new one it can reach 3 from
    await svc.stop();
    const fresh = await startApplier();
    await expect.poll(async () => (await readyz(fresh.svc)).body.applied?.version, { timeout: 30_000 }).toBe(3);
  }, 90_000); // the planner steps down when its lease bucket is gone, and is elected again

  /** A planner checking stream and bucket every 500 ms, and a node that runs its version 2. */
  const quietAtVersion2 = async () => {
    const said: string[] = [];
    const p = await startPlanner({ targetCheckMs: 500, say: (line) => said.push(line) });
    const { svc } = await startApplier();
    env.write('b.yaml', svcYaml('b', '10.96.0.2'));
    await expect.poll(async () => (await readyz(svc)).body.applied?.version, { timeout: 20_000 }).toBe(2);
    return { p, svc, said };
  };

  it('a quiet cluster whose versions stream and targets bucket are purged by hand: the periodic check puts back a base and the targets; a fresh node loads them', async () => {
    const { p, svc, said } = await quietAtVersion2();
    const jsm = await jetstreamManager(env.nc);
    // `nats stream purge` of both: the streams stay (same creation time), their messages go
    await jsm.streams.purge(VERSIONS_STREAM);
    await jsm.streams.purge(TARGETS_STREAM);
    expect((await jsm.streams.info(VERSIONS_STREAM)).state.messages).toBe(0);
    // no change follows: only the periodic check can find it
    await expect
      .poll(
        async () => (await jsm.streams.info(VERSIONS_STREAM, { subjects_filter: 'sb.v.checkpoint.>' })).state.subjects,
        {
          timeout: 20_000,
        },
      )
      .toHaveProperty('sb.v.checkpoint.2.0');
    const kv = await new Kvm(env.nc).open(TARGETS_BUCKET);
    await expect
      .poll(async () => (await kv.get(DEFAULT_TARGET_KEY))?.string() ?? '', { timeout: 20_000 })
      .toMatch(/"version":2\b/);
    const target = JSON.parse((await kv.get(DEFAULT_TARGET_KEY))!.string()) as { configRevision: number };
    await expect
      .poll(async () => (await kv.get(`config.${target.configRevision}`))?.operation, { timeout: 20_000 })
      .toBe('PUT');
    // the running node kept what it runs; a node that never saw the purged stream loads version 2
    expect((await readyz(svc)).body.applied?.version).toBe(2);
    await svc.stop();
    const fresh = await startApplier();
    await expect.poll(async () => (await readyz(fresh.svc)).body.applied?.version, { timeout: 30_000 }).toBe(2);
    expect((await readyz(fresh.svc)).status).toBe(200);
    expect(p.planner.data.latest()?.version).toBe(2); // put back, not a new version
    expect(said.join('\n')).toMatch(/versions stream lost/);
    expect(said).toContain('target default (every node) was purged from the targets bucket by someone else; restored');
  }, 90_000);

  it('a quiet cluster whose versions stream and targets bucket are deleted by hand: the periodic check makes them again and republishes; a fresh node loads them', async () => {
    const { p, svc } = await quietAtVersion2();
    const jsm = await jetstreamManager(env.nc);
    await jsm.streams.delete(VERSIONS_STREAM);
    await jsm.streams.delete(TARGETS_STREAM);
    // no change follows: only the periodic check can find it
    const kv = await new Kvm(env.nc).open(TARGETS_BUCKET);
    await expect
      .poll(async () => (await kv.get(DEFAULT_TARGET_KEY).catch(() => null))?.string() ?? '', { timeout: 20_000 })
      .toMatch(/"version":2\b/);
    await svc.stop();
    const fresh = await startApplier();
    await expect.poll(async () => (await readyz(fresh.svc)).body.applied?.version, { timeout: 30_000 }).toBe(2);
    expect((await readyz(fresh.svc)).status).toBe(200);
    expect(p.planner.data.latest()?.version).toBe(2);
  }, 90_000);

  it("a failed publish shows as the planner's lastError while NATS is down, and clears once the version is published", async () => {
    const p = await startPlanner();
    await env.nats.kill();
    env.write('b.yaml', svcYaml('b', '10.96.0.2')); // version 2 is made and logged, but cannot be published
    // the publish fails, then (NATS still away) the leader steps down: lastError says which
    await expect.poll(() => p.planner.lastError, { timeout: 20_000 }).toMatch(/^(publish|lease): /);
    const status = async () => (await (await fetch(`${p.url}/status`)).json()) as { lastError: string | null };
    expect((await status()).lastError).toMatch(/^(publish|lease): /);
    await env.nats.start();
    await expect.poll(async () => (await status()).lastError, { timeout: 30_000 }).toBeNull();
    // it cleared because version 2 went out: a node catches up to it
    const { svc } = await startApplier();
    await expect.poll(async () => (await readyz(svc)).body.applied?.version, { timeout: 30_000 }).toBe(2);
  }, 120_000);

  it('two planners on one NATS: the second follows, naming the leader, and publishes nothing; after a clean stop of the first it leads', async () => {
    const first = await startPlanner({ id: 'first' });
    expect(first.group.role()).toBe('leader');
    const other = `${env.dir}/other.db`;
    const second = await runPlanner({
      manifests: env.manifests,
      nats: env.nats.url,
      db: other,
      http: '127.0.0.1:0',
      config: DEFAULT_PROXY_CONFIG,
      id: 'second',
      signingKey: `${env.db}.signing-key.pem`,
      busMaxBackoffMs: 200,
    }); // one group, one key
    stops.push(() => second.stop());
    expect(second.group.role()).toBe('follower');
    expect(second.group.view().leader).toMatchObject({ id: 'first' });
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const jsm = await jetstreamManager(env.nc);
    const versionMessages = async () => {
      const info = await jsm.streams.info('SB_VERSIONS', { subjects_filter: 'sb.v.>' });
      return Object.entries(info.state.subjects ?? {})
        .filter(([k]) => k !== 'sb.v.term')
        .reduce((n, [, c]) => n + c, 0);
    };
    expect(await versionMessages()).toBe(2); // checkpoint + delta of version 1, from the first only
    const write = await fetch(`${second.url}/pin`, {
      method: 'POST',
      body: JSON.stringify({ version: 1 }),
      redirect: 'manual',
    });
    expect(write.status).toBe(307);
    expect(write.headers.get('location')).toBe(`${first.url}/pin`);
    expect(((await write.json()) as { error: string }).error).toMatch(
      /planner second follows in group switchboard; the leader is planner first \(term \d+\) at http/,
    );
    const status = (await (await fetch(`${second.url}/status`)).json()) as { self: unknown; planners: unknown[] };
    expect(status.self).toMatchObject({ id: 'second', leader: false });
    await expect
      .poll(
        async () =>
          (
            (await (await fetch(`${second.url}/status`)).json()) as { planners: { id: string; leader: boolean }[] }
          ).planners.map((m) => [m.id, m.leader]),
        { timeout: 10_000 },
      )
      .toEqual([
        ['first', true],
        ['second', false],
      ]);
    await first.stop();
    stops.length = 0;
    stops.push(() => second.stop());
    await expect.poll(() => second.group.role(), { timeout: 20_000 }).toBe('leader');
    await second.planner.synced;
    expect(await versionMessages()).toBe(2); // the same version 1 (same content), nothing published twice
  });

  it('/healthz fails while the planner is cut off from its group (NATS away longer than the lease TTL) and recovers; /livez (the liveness probe) stays 200', async () => {
    const p = await startPlanner(); // lease TTL 3 s
    const healthz = async () => {
      const r = await fetch(`${p.url}/healthz`);
      return { status: r.status, body: (await r.json()) as { ok: boolean; reason?: string } };
    };
    expect((await healthz()).status).toBe(200);
    await env.nats.kill();
    await expect.poll(async () => (await healthz()).status, { timeout: 20_000 }).toBe(503);
    expect((await healthz()).body.reason).toMatch(
      /^no answer from the group's lease bucket on NATS for \d+ ms \(TTL 3000 ms\)$/,
    );
    // A restart cannot bring NATS back: liveness answers while the process serves.
    const livez = await fetch(`${p.url}/livez`);
    expect(livez.status).toBe(200);
    expect(await livez.json()).toEqual({ live: true });
    await env.nats.start();
    await expect.poll(async () => (await healthz()).status, { timeout: 30_000 }).toBe(200);
  }, 90_000);

  it('after db compact, a planner started on an EMPTY NATS republishes from the cut as a base checkpoint; a fresh applier loads it and is SYNCED (review2 R8)', async () => {
    await threeVersionsThenStop();
    const log = await EventLog.open({ file: env.db });
    expect(compactLog(log, 3).eventsRemoved).toBeGreaterThan(0); // versions 1 and 2 can no longer be rebuilt
    log.close();
    await env.nats.restartEmpty();
    const p = await startPlanner();
    const { svc } = await startApplier();
    await expect.poll(async () => (await readyz(svc)).body.applied?.version, { timeout: 20_000 }).toBe(3);
    const status = async () =>
      (await (await fetch(`${p.url}/status`)).json()) as {
        lastError: string | null;
        republished: { from: number; note: string } | null;
        nodes: { node: string; status: string; appliedVersion: number | null }[];
      };
    await expect
      .poll(async () => (await status()).nodes.map((n) => [n.node, n.status, n.appliedVersion]), { timeout: 20_000 })
      .toEqual([['node-1', 'SYNCED', 3]]);
    // `db verify --nats`'s witness: the base's marker is the newest published delta, its anchor the log's
    // read on a connection of its own: env.nc lived through the server's restart, and its
    // JetStream requests may go unanswered until it has reconnected (a 5 s timeout in CI)
    const reader = await connect({ servers: env.nats.url });
    const witness = await newestPublishedAnchor(reader, {
      verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
    }).finally(() => reader.close());
    expect(witness).toMatchObject({ anchored: true, version: 3 });
    expect(witness.anchored && checkVersionAnchor(p.planner['options'].log, witness.anchor)).toBeUndefined();
    const s = await status();
    expect(s.lastError).toBeNull();
    expect(s.republished).toEqual({
      from: 3,
      note: 'versions 1-2 were compacted from the log and are not republished: the versions stream starts at version 3, published as a checkpoint',
    });
    // later versions follow as deltas on top of the base
    env.write('d.yaml', svcYaml('d', '10.96.0.4'));
    await expect.poll(async () => (await readyz(svc)).body.applied?.version, { timeout: 20_000 }).toBe(4);
  }, 120_000);

  it('db verify --nats detects a cut tail (last rows deleted, chain_heads moved back); without --nats the tail is unanchored', async () => {
    await threeVersionsThenStop();
    const key = `${env.db}.signing-key.pem.pub`;
    const good = await run(process.execPath, [
      BIN,
      'db',
      'verify',
      '--db',
      env.db,
      '--nats',
      env.nats.url,
      '--planner-key',
      key,
    ]);
    expect(good.stdout).toMatch(/^ok: .*; tail anchored by NATS at version 3$/m);
    const local = await run(process.execPath, [BIN, 'db', 'verify', '--db', env.db]);
    expect(local.stdout).toMatch(/tail unanchored \(no --nats/);
    // cut the tail: version 3 and its events go, the chain heads move back to version 2
    const cut = `${env.dir}/cut.db`;
    copyFileSync(env.db, cut);
    const db = new Database(cut);
    const v2 = db.prepare('SELECT row_hash AS h, seq_to AS s FROM versions WHERE version = 2').get() as {
      h: string;
      s: number;
    };
    const e2 = db.prepare('SELECT row_hash AS h FROM events WHERE seq = ?').get(v2.s) as { h: string };
    db.prepare('DELETE FROM versions WHERE version > 2').run();
    db.prepare('DELETE FROM events WHERE seq > ?').run(v2.s);
    db.prepare(`UPDATE chain_heads SET head_id = 2, head_hash = ? WHERE chain = 'versions'`).run(v2.h);
    db.prepare(`UPDATE chain_heads SET head_id = ?, head_hash = ? WHERE chain = 'events'`).run(v2.s, e2.h);
    db.close();
    expect((await run(process.execPath, [BIN, 'db', 'verify', '--db', cut])).stdout).toMatch(/^ok: .*tail unanchored/); // locally it looks fine
    const bad = await run(process.execPath, [
      BIN,
      'db',
      'verify',
      '--db',
      cut,
      '--nats',
      env.nats.url,
      '--planner-key',
      key,
    ]).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /db verify: tail: the log ends at version 2 but version 3 was published from it: its tail was cut/,
    );
  }, 180_000); // four CLI processes on a loaded machine

  it('a server URL without a scheme is a usage error (exit 2) naming the flag', async () => {
    const a = await run(process.execPath, [
      BIN,
      'applier',
      '--node',
      'n1',
      '--nats',
      '127.0.0.1:4222',
      '--mode',
      'dry-run',
    ]).catch((e) => e);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--nats 127\.0\.0\.1:4222: expected a server URL with a scheme/);
    const p = await run(process.execPath, [
      BIN,
      'planner',
      '--manifests',
      env.manifests,
      '--nats',
      'localhost:4222',
      '--db',
      env.db,
    ]).catch((e) => e);
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/--nats localhost:4222: expected a server URL with a scheme/);
  }, 120_000);
});
