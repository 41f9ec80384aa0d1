import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, expect, it } from 'vitest';
import {
  generateAccountKeys,
  mintRoleCreds,
  renderResolverConfig,
  serverResolver,
} from '../../libs/nodecreds/index.ts';
import { BIN } from '../faults/fleet.ts';
import { startNatsServer } from '../support/nats-server.ts';
import { fleet, stopAll, stops } from './nats-limits-fleet.ts';

/**
 * probe19: NATS account limits an operator sets on the accounts Switchboard uses (account JWT
 * `limits`, as `nsc edit account` does), on a real operator-mode nats-server with the resolver
 * `credentials init` makes, the planner and a dry-run applier with their own credentials.
 */
afterEach(stopAll);

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
