import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createUser, fmtCreds } from '@nats-io/jwt';
import { afterEach, expect, it } from 'vitest';
import { readVerifierFile } from '../../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import {
  generateAccountKeys,
  mintNodeCreds,
  mintNodeJwt,
  mintRoleCreds,
  readersAccountPublicKey,
  renderResolverConfig,
  serverResolver,
  type AccountKeys,
} from '../../../libs/nodecreds/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner } from '../../../services/planner/run-planner.ts';
import { startNatsServer } from '../../support/nats-server.ts';
import { nodeYaml, svcYaml } from '../planner/planner-support.ts';

/**
 * probe16 I1: a node credential that NATS refuses (here: expired) made the client give up after
 * its second refusal: the connection closed for good, the renewed .creds file was never read, the
 * node never took another target, and its /healthz and /readyz said all was well. Operator-mode
 * nats-server with the resolver `credentials init` makes; the planner with its role credential.
 */
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

/** A node credential that expired an hour ago (as one the issuer stopped renewing). */
async function expiredNodeCreds(keys: AccountKeys, node: string): Promise<string> {
  const user = createUser();
  const jwt = await mintNodeJwt({
    accountPublicKey: readersAccountPublicKey(keys),
    signingKeySeed: keys.readersSigningKeySeed,
    node,
    userPublicKey: user.getPublicKey(),
    ttlSeconds: 60,
    now: new Date(Date.now() - 3_600_000),
  });
  return new TextDecoder().decode(fmtCreds(jwt, user));
}

it('an applier whose credential NATS refuses keeps its rules, says so on /healthz and /readyz, and takes the renewed file without a restart', async () => {
  const keys = generateAccountKeys();
  const nats = await startNatsServer({ jetstream: true, config: renderResolverConfig(await serverResolver(keys)) });
  stops.push(() => nats.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-applier-creds-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'node.yaml'), nodeYaml('node-1', '192.0.2.1'));
  writeFileSync(path.join(manifests, 'a.yaml'), svcYaml('a', '10.96.0.1'));
  const plannerCreds = path.join(dir, 'planner.creds');
  writeFileSync(plannerCreds, await mintRoleCreds(keys, 'planner'));
  const db = path.join(dir, 'log.db');
  const p = await runPlanner({
    manifests,
    nats: nats.url,
    natsAuth: { credsFile: plannerCreds },
    db,
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    busMaxBackoffMs: 200, // reconnects every 200 ms, not 250 ms doubling to 5 s
    say: () => {},
  });
  stops.push(() => p.stop());
  await p.planner.synced;

  const creds = path.join(dir, 'node.creds');
  writeFileSync(creds, await mintNodeCreds(keys, 'node-1', 600));
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const svc = await startApplierService({
    node: 'node-1',
    nats: nats.url,
    auth: { credsFile: creds },
    mode: 'dry-run',
    http: '127.0.0.1:0',
    heartbeatMs: 200,
    maxBackoffMs: 200,
    verifier: readVerifierFile(`${db}.signing-key.pem.pub`),
    logger: pino({ level: 'info' }, sink),
  });
  stops.push(() => svc.stop());
  const get = async (what: '/healthz' | '/readyz') => {
    const r = await fetch(`http://127.0.0.1:${svc.httpPort}${what}`);
    return { code: r.status, body: (await r.json()) as Record<string, unknown> & { applied?: { version: number } } };
  };
  await expect.poll(async () => (await get('/readyz')).code, { timeout: 15_000 }).toBe(200);
  const v1 = (await get('/readyz')).body.applied!.version;

  // the issuer stopped renewing: the file holds an expired credential when the node reconnects
  const refusals: string[] = [];
  const nc = await svc.connected;
  void (async () => {
    for await (const s of nc.status())
      if (s.type === 'error') refusals.push(String((s as { error?: Error }).error?.message));
  })();
  writeFileSync(creds, await expiredNodeCreds(keys, 'node-1'));
  await nats.restart();
  await expect
    .poll(async () => (await get('/readyz')).body.reason, { timeout: 15_000 })
    .toMatch(
      /NATS refuses this node's credential \(.*(Authorization Violation|Authentication Expired).*\).*expires at/,
    );
  // the client used to give up for good at the second refusal in a row
  await expect.poll(() => refusals.length >= 2 || nc.isClosed(), { timeout: 20_000 }).toBe(true);
  expect(lines.filter((l) => l.level === 40 && /NATS refuses this node's credential/.test(l.msg))).not.toEqual([]);
  const health = await get('/healthz');
  expect(health.code).toBe(503);
  expect(health.body).toMatchObject({ healthy: false, connected: false, applied: { version: v1 } });
  expect(String(health.body.connectionError)).toMatch(/refuses this node's credential/);
  expect((await get('/readyz')).code).toBe(503);

  // the renewal arrives; the planner makes a new version meanwhile: the node takes it, no restart
  writeFileSync(creds, await mintNodeCreds(keys, 'node-1', 600));
  writeFileSync(path.join(manifests, 'b.yaml'), svcYaml('b', '10.96.0.2'));
  await expect
    .poll(async () => (await get('/readyz')).body.applied?.version ?? 0, { timeout: 20_000 })
    .toBeGreaterThan(v1);
  await expect.poll(async () => (await get('/readyz')).code, { timeout: 15_000 }).toBe(200);
  expect((await get('/healthz')).body).toMatchObject({ healthy: true, connected: true });
}, 60_000);
