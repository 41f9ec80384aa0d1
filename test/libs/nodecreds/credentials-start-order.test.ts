import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { connectBus } from '../../../libs/bus/index.ts';
import { generateAccountKeys, mintRoleCreds } from '../../../libs/nodecreds/index.ts';
import { freePort } from '../../faults/fleet.ts';
import { applierNodeToken, CredentialsCli, healthStatus } from '../../support/credentials-cli.ts';

// probe18 D2: in deploy/kubernetes the issuer (`credentials serve`, beside each planner) and the
// applier pod's sidecar (`credentials fetch`) start with NATS, which may not answer yet (a fresh
// install; a new node before DNS works). They exited at once ("NATS at ...: connection refused")
// and crash-looped under the kubelet's backoff (up to 5 min), the applier not started and the
// planner pod kept out of its Service meanwhile. Now both wait for NATS like the planner and the
// applier: alive (/healthz 200) and not ready (/readyz 503) while waiting, then they work.

const SA = 'switchboard:switchboard-applier';
const cli = new CredentialsCli('sb-creds-order');
const file = cli.file.bind(cli);
const run = cli.run.bind(cli);
const status = healthStatus;
afterEach(() => cli.stop());

it('credentials serve and credentials fetch started before NATS answers wait for it, then a node gets its credential', async () => {
  const keys = generateAccountKeys();
  await cli.startKube(['node-a']);
  const { token, jwks } = await applierNodeToken('node-a', SA);

  const natsPort = await freePort(); // nothing listens there yet
  const url = `nats://127.0.0.1:${natsPort}`;
  const [issuerHttp, fetchHttp] = [await freePort(), await freePort()];
  const out = path.join(path.dirname(file('token', token)), 'node-a.creds');
  const issuer = run(
    cli.serveArgs({
      nats: url,
      creds: file('issuer.creds', await mintRoleCreds(keys, 'issuer')),
      keys,
      jwks,
      sa: SA,
      http: issuerHttp,
    }),
  );
  const fetcher = run(
    cli.fetchArgs({
      node: 'node-a',
      nats: url,
      bootstrap: file('boot.creds', await mintRoleCreds(keys, 'bootstrap')),
      token: file('token', token),
      out,
      http: fetchHttp,
    }),
  );

  for (const [who, p] of [
    [issuer, issuerHttp],
    [fetcher, fetchHttp],
  ] as const) {
    await expect.poll(() => who.err(), { timeout: 15_000 }).toMatch(/waiting for NATS: .*connection refused/);
    expect(who.child.exitCode, who.err()).toBeNull();
    expect(await status(p, '/healthz')).toBe(200); // alive: the kubelet must not restart it
    expect(await status(p, '/readyz')).toBe(503); // not ready: no credential yet / not answering
  }

  await cli.startNats(keys, natsPort);
  await expect.poll(() => status(issuerHttp, '/readyz'), { timeout: 20_000 }).toBe(200);
  await expect.poll(() => status(fetchHttp, '/readyz'), { timeout: 30_000 }).toBe(200);
  expect(issuer.err()).toMatch(/credential issuer: answering on NATS/);
  // the credential it wrote is node-a's, and NATS takes it
  const nc = await connectBus({ servers: url, name: 'node-a', node: 'node-a', auth: { credsFile: out } });
  await nc.flush();
  await nc.close();
  expect(readFileSync(out, 'utf8')).toMatch(/BEGIN NATS USER JWT/);
}, 60_000);
