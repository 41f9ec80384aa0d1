import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterEach, expect, it } from 'vitest';
import { readVerifierFile } from '../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../libs/model/index.ts';
import {
  generateAccountKeys,
  mintNodeCreds,
  mintRoleCreds,
  renderResolverConfig,
  serverResolver,
  type AccountKeys,
  type AccountLimits,
} from '../../libs/nodecreds/index.ts';
import { startApplierService, type ApplierServiceOptions } from '../../services/applier/applier-service.ts';
import { runPlanner } from '../../services/planner/run-planner.ts';
import { BIN } from '../faults/fleet.ts';
import { startNatsServer, type NatsServerHandle } from '../support/nats-server.ts';
import { nodeYaml, svcYaml } from './planner/planner-support.ts';

/**
 * probe19: NATS account limits an operator sets on the accounts Switchboard uses (account JWT
 * `limits`, as `nsc edit account` does), on a real operator-mode nats-server with the resolver
 * `credentials init` makes, the planner and a dry-run applier with their own credentials.
 */
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

interface Limits {
  readonly switchboard?: AccountLimits;
  readonly readers?: AccountLimits;
}

async function fleet(limits: Limits = {}, applier: ApplierOptions = {}) {
  const keys = generateAccountKeys();
  const first = await serverResolver(keys, limits);
  // a running server refuses another operator JWT at a reload: keep the first one
  const config = async (l: Limits) =>
    renderResolverConfig({ ...(await serverResolver(keys, l)), operatorJwt: first.operatorJwt });
  const nats = await startNatsServer({ jetstream: true, config: renderResolverConfig(first) });
  stops.push(() => nats.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-nats-limits-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'node.yaml'), nodeYaml('node-1', '192.0.2.1'));
  writeFileSync(path.join(manifests, 'a.yaml'), svcYaml('a', '10.96.0.1'));
  const plannerCreds = path.join(dir, 'planner.creds');
  writeFileSync(plannerCreds, await mintRoleCreds(keys, 'planner'));
  const db = path.join(dir, 'log.db');
  const said: string[] = [];
  const p = await runPlanner({
    manifests,
    nats: nats.url,
    natsAuth: { credsFile: plannerCreds },
    db,
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    say: (l) => said.push(l),
  });
  stops.push(() => p.stop());
  await p.planner.synced;
  const plannerKey = `${db}.signing-key.pem.pub`;
  const svc = await startApplier(keys, nats, dir, plannerKey, 'node-1', applier);
  const status = async () =>
    (await (await fetch(`${p.url}/status`)).json()) as {
      latestVersion: number;
      lastError: string | null;
      nodes: { node: string; status: string; reason: string; appliedVersion: number | null }[];
    };
  const get = async (what: '/healthz' | '/readyz') => {
    const r = await fetch(`http://127.0.0.1:${svc.httpPort}${what}`);
    return {
      code: r.status,
      body: (await r.json()) as Record<string, unknown> & { applied?: { version: number }; reason?: string },
    };
  };
  const plannerReadyz = async () => {
    const r = await fetch(`${p.url}/readyz`);
    return { code: r.status, body: (await r.json()) as { ready: boolean; reason?: string } };
  };
  return {
    keys,
    dir,
    plannerKey,
    plannerReadyz,
    nats,
    said,
    status,
    get,
    edit: (name: string, ip: string) => writeFileSync(path.join(manifests, `${name}.yaml`), svcYaml(name, ip)),
    setLimits: async (l: Limits) => nats.reconfigure(await config(l)),
  };
}

type ApplierOptions = Pick<ApplierServiceOptions, 'targetReadTimeoutMs'>;

async function startApplier(
  keys: AccountKeys,
  nats: NatsServerHandle,
  dir: string,
  plannerKey: string,
  node = 'node-1',
  more: ApplierOptions = {},
) {
  const creds = path.join(dir, `${node}.creds`);
  writeFileSync(creds, await mintNodeCreds(keys, node, 600));
  const svc = await startApplierService({
    node,
    nats: nats.url,
    auth: { credsFile: creds },
    mode: 'dry-run',
    http: '127.0.0.1:0',
    heartbeatMs: 200,
    maxBackoffMs: 200,
    verifier: readVerifierFile(plannerKey),
    logger: pino({ level: 'silent' }),
    // the production backoff grows to a minute; a lifted limit is taken at the next reconnect
    subscriptionRetry: { retryMs: 500, retryCapMs: 1000 },
    ...more,
  });
  stops.push(() => svc.stop());
  return svc;
}

it('an applier whose subscriptions NATS refuses (READERS subscription limit) says so instead of "on target", and follows again once the limit is lifted', async () => {
  const f = await fleet();
  await expect.poll(async () => (await f.get('/readyz')).code, { timeout: 10_000 }).toBe(200);
  const v1 = (await f.get('/readyz')).body.applied!.version;

  // the operator sets a subscription limit below the applier's 3; at its next connect (the
  // reload of new account JWTs drops the account's connections) the client subscribes again and
  // the server refuses all but the first
  await f.setLimits({ readers: { subs: 1 } });
  f.edit('b', '10.96.0.2');
  await expect.poll(async () => (await f.status()).latestVersion, { timeout: 10_000 }).toBeGreaterThan(v1);
  // before: /readyz 200 "on target" of v1 (no target notice, every read timed out), nothing said
  await expect
    .poll(async () => (await f.get('/readyz')).body.reason, { timeout: 10_000 })
    .toMatch(/NATS refuses a subscription of this node \(maximum subscriptions exceeded\)/);
  expect((await f.get('/readyz')).code).toBe(503);
  const health = await f.get('/healthz');
  expect(health.code).toBe(503);
  expect(String(health.body.subscriptionError)).toMatch(/subscription limit is too low/);
  // its heartbeat says it, so the planner's row (and ctl status) names it
  await expect
    .poll(async () => (await f.status()).nodes.find((n) => n.node === 'node-1'), { timeout: 10_000 })
    .toMatchObject({ status: 'ERROR', reason: expect.stringMatching(/maximum subscriptions exceeded/) });

  // lifted: the node subscribes again (its own reconnects) and takes the new version, no restart
  await f.setLimits({});
  const latest = (await f.status()).latestVersion;
  await expect.poll(async () => (await f.get('/readyz')).body.applied?.version, { timeout: 15_000 }).toBe(latest);
  await expect.poll(async () => (await f.get('/readyz')).code, { timeout: 10_000 }).toBe(200);
  expect((await f.get('/healthz')).body.subscriptionError).toBeUndefined();
  await expect
    .poll(async () => (await f.status()).nodes.find((n) => n.node === 'node-1')?.status, { timeout: 10_000 })
    .toBe('SYNCED');
}, 45_000);

it('an applier whose target reads go unanswered after a reconnect (READERS subscription limit: its reply inbox refused) still says when its connection is lost and back, and follows once the limit is lifted', async () => {
  // a read waits a minute for its answer (2 s in production): each status of the connection
  // waited behind the re-read of the targets that follows a reconnect, one 2-4 s re-read per
  // reconnect queued while the limit lasted
  const f = await fleet({}, { targetReadTimeoutMs: 60_000 });
  await expect.poll(async () => (await f.get('/readyz')).code, { timeout: 10_000 }).toBe(200);
  const v1 = (await f.get('/readyz')).body.applied!.version;
  await f.setLimits({ readers: { subs: 1 } });
  f.edit('b', '10.96.0.2');
  await expect.poll(async () => (await f.status()).latestVersion, { timeout: 10_000 }).toBeGreaterThan(v1);
  await expect
    .poll(async () => (await f.get('/readyz')).body.reason, { timeout: 10_000 })
    .toMatch(/NATS refuses a subscription of this node \(maximum subscriptions exceeded\)/);

  // NATS goes away while the re-reads after the limit's reconnects wait for answers that never come
  await f.nats.kill();
  // before: /healthz connected true and /readyz without "connection lost" for the minute the re-read waited
  await expect.poll(async () => (await f.get('/healthz')).body.connected, { timeout: 10_000 }).toBe(false);
  await f.nats.start();
  await expect.poll(async () => (await f.get('/healthz')).body.connected, { timeout: 10_000 }).toBe(true);

  await f.setLimits({});
  const latest = (await f.status()).latestVersion;
  await expect.poll(async () => (await f.get('/readyz')).body.applied?.version, { timeout: 15_000 }).toBe(latest);
  await expect.poll(async () => (await f.get('/readyz')).code, { timeout: 10_000 }).toBe(200);
  expect((await f.get('/healthz')).body.subscriptionError).toBeUndefined();
}, 60_000);

it('a planner whose subscriptions NATS refuses (SWITCHBOARD subscription limit) names it in lastError and is not ready, and hears its nodes once the limit is lifted', async () => {
  // 2: the planner's reply inbox and one more; its ACK and heartbeat subscriptions are refused
  const f = await fleet({ switchboard: { subs: 2 } });
  // before: every node UNKNOWN "never heard from", lastError null, nothing on stderr
  await expect
    .poll(async () => (await f.status()).lastError ?? '', { timeout: 15_000 })
    .toMatch(/NATS refuses a subscription of this planner \(maximum subscriptions exceeded\)/);
  expect(f.said.filter((l) => /NATS refuses a subscription of this planner/.test(l))).toHaveLength(1);
  expect((await f.status()).nodes.find((n) => n.node === 'node-1')?.status).toBe('UNKNOWN');
  // before: /readyz 200 while it heard no node (a load balancer kept sending ctl to it)
  const notReady = await f.plannerReadyz();
  expect(notReady.code).toBe(503);
  expect(notReady.body.reason).toMatch(
    /^NATS refuses a subscription of this planner \(maximum subscriptions exceeded\): it may not hear node reports/,
  );

  await f.setLimits({});
  await expect
    .poll(async () => (await f.status()).nodes.find((n) => n.node === 'node-1')?.status, { timeout: 15_000 })
    .toBe('SYNCED');
  await expect.poll(async () => (await f.status()).lastError, { timeout: 10_000 }).toBeNull();
  await expect.poll(async () => (await f.plannerReadyz()).code, { timeout: 10_000 }).toBe(200);
}, 45_000);

it('an applier whose ACKs and heartbeats are larger than NATS takes (READERS payload limit) is not ready and says why', async () => {
  const f = await fleet({ readers: { payload: 256 } });
  // before: /healthz 200 healthy and /readyz 200 "on target" while the planner never heard of it
  await expect
    .poll(async () => (await f.get('/readyz')).body.reason, { timeout: 10_000 })
    .toMatch(/not reporting to the planner: publish sb\.(ack|hb)\.node-1: .*NATS takes at most 256 on this connection/);
  expect((await f.get('/readyz')).code).toBe(503);
  const health = await f.get('/healthz');
  expect(health.code).toBe(503);
  expect(String(health.body.reportError)).toMatch(/max_payload/);
  // its first heartbeat (before any apply) was small enough: "no version verified", never SYNCED
  expect((await f.status()).nodes.find((n) => n.node === 'node-1')?.status).not.toBe('SYNCED');

  await f.setLimits({});
  await expect
    .poll(async () => (await f.status()).nodes.find((n) => n.node === 'node-1')?.status, { timeout: 15_000 })
    .toBe('SYNCED');
  await expect.poll(async () => (await f.get('/readyz')).code, { timeout: 10_000 }).toBe(200);
  expect((await f.get('/healthz')).body.reportError).toBeUndefined();
}, 45_000);

it('a planner whose account may hold too few JetStream streams (SWITCHBOARD streams limit) exits 1 at start with one line naming the limit and what to do', async () => {
  const keys = generateAccountKeys();
  // 2: the versions stream and the targets bucket; the group's log is refused
  const nats = await startNatsServer({
    jetstream: true,
    config: renderResolverConfig(await serverResolver(keys, { switchboard: { streams: 2 } })),
  });
  stops.push(() => nats.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-nats-limits-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'manifests'));
  const creds = path.join(dir, 'planner.creds');
  writeFileSync(creds, await mintRoleCreds(keys, 'planner'));
  const args = ['planner', '--manifests', path.join(dir, 'manifests'), '--nats', nats.url, '--nats-creds', creds];
  // not spawnSync: the nats-server answers from this process
  const run = await promisify(execFile)(
    process.execPath,
    [BIN, ...args, '--db', path.join(dir, 'log.db'), '--http', '127.0.0.1:0'],
    { encoding: 'utf8', timeout: 20_000 },
  ).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  expect(run.code).toBe(1);
  // before: `switchboard: opening the group's replicated log (switchboard): log stream
  // SB_LOG_switchboard: cannot create it with 1 replicas: maximum number of streams reached`
  expect(run.stderr.split('\n').filter((l) => l.startsWith('switchboard: '))).toEqual([
    "switchboard: opening the group's replicated log (switchboard): NATS refuses another JetStream stream: the planner's NATS account has reached its maximum number of streams (JetStream error 10027: maximum number of streams reached); a planner group needs 6 streams in it (SB_VERSIONS and KV_sb_targets, and per group SB_LOG_, OBJ_sb_logsnap_, KV_sb_lease_ and KV_sb_members_ with the group's name): raise the account's JetStream streams limit (limits.streams of its account JWT, SWITCHBOARD's where credentials init made them) or delete streams it does not need, then start the planner again (docs/operations.md, \"NATS limits\")",
  ]);
}, 30_000);
