import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { connectBus } from '../../../libs/bus/index.ts';
import {
  generateAccountKeys,
  mintRoleCreds,
  readersAccountPublicKey,
  renderResolverConfig,
  serverResolver,
} from '../../../libs/nodecreds/index.ts';
import { freePort } from '../../faults/fleet.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
import { CredentialsCli, healthStatus } from '../../support/credentials-cli.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

// probe18 D2: in deploy/kubernetes the issuer (`credentials serve`, beside each planner) and the
// applier pod's sidecar (`credentials fetch`) start with NATS, which may not answer yet (a fresh
// install; a new node before DNS works). They exited at once ("NATS at ...: connection refused")
// and crash-looped under the kubelet's backoff (up to 5 min), the applier not started and the
// planner pod kept out of its Service meanwhile. Now both wait for NATS like the planner and the
// applier: alive (/healthz 200) and not ready (/readyz 503) while waiting, then they work.

const SA = 'switchboard:switchboard-applier';
let nats: NatsServerHandle | undefined;
let kube: KubeApiServer | undefined;
let kubeconfig: WrittenKubeconfig | undefined;
const cli = new CredentialsCli('sb-creds-order');
const file = cli.file.bind(cli);
const run = cli.run.bind(cli);
const status = healthStatus;
afterEach(async () => {
  await cli.stop();
  await nats?.stop();
  await kube?.stop();
  await kubeconfig?.cleanup();
  nats = kube = kubeconfig = undefined;
});

it('credentials serve and credentials fetch started before NATS answers wait for it, then a node gets its credential', async () => {
  const keys = generateAccountKeys();
  kube = await KubeApiServer.start();
  kube.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } });
  kubeconfig = await writeKubeconfig({ server: kube.url });
  const api = await generateKeyPair('RS256');
  const jwks = { keys: [{ ...(await exportJWK(api.publicKey)), kid: 'api-1', alg: 'RS256', use: 'sig' }] };
  const token = await new SignJWT({
    'kubernetes.io': {
      namespace: 'switchboard',
      serviceaccount: { name: 'switchboard-applier', uid: 'u1' },
      pod: { name: 'switchboard-applier-x1', uid: 'p1' },
      node: { name: 'node-a', uid: 'n1' },
    },
  })
    .setProtectedHeader({ alg: 'RS256', kid: 'api-1' })
    .setIssuer('https://kubernetes.default.svc')
    .setSubject(`system:serviceaccount:${SA}`)
    .setAudience('switchboard-credentials')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(api.privateKey);

  const natsPort = await freePort(); // nothing listens there yet
  const url = `nats://127.0.0.1:${natsPort}`;
  const [issuerHttp, fetchHttp] = [await freePort(), await freePort()];
  const out = path.join(path.dirname(file('token', token)), 'node-a.creds');
  const issuer = run([
    'serve',
    '--nats',
    url,
    '--nats-creds',
    file('issuer.creds', await mintRoleCreds(keys, 'issuer')),
    '--account-signing-key',
    file('sk', keys.readersSigningKeySeed),
    '--account-public-key',
    file('pk', readersAccountPublicKey(keys)),
    '--kubeconfig',
    kubeconfig.path,
    '--jwks-file',
    file('jwks.json', JSON.stringify(jwks)),
    '--service-account',
    SA,
    '--http',
    `127.0.0.1:${issuerHttp}`,
  ]);
  const fetcher = run([
    'fetch',
    '--node',
    'node-a',
    '--nats',
    url,
    '--bootstrap-creds',
    file('boot.creds', await mintRoleCreds(keys, 'bootstrap')),
    '--token-file',
    file('token', token),
    '--out',
    out,
    '--http',
    `127.0.0.1:${fetchHttp}`,
  ]);

  for (const [who, p] of [
    [issuer, issuerHttp],
    [fetcher, fetchHttp],
  ] as const) {
    await expect.poll(() => who.err(), { timeout: 15_000 }).toMatch(/waiting for NATS: .*connection refused/);
    expect(who.child.exitCode, who.err()).toBeNull();
    expect(await status(p, '/healthz')).toBe(200); // alive: the kubelet must not restart it
    expect(await status(p, '/readyz')).toBe(503); // not ready: no credential yet / not answering
  }

  nats = await startNatsServer({
    port: natsPort,
    jetstream: true,
    config: renderResolverConfig(await serverResolver(keys)),
  });
  await expect.poll(() => status(issuerHttp, '/readyz'), { timeout: 20_000 }).toBe(200);
  await expect.poll(() => status(fetchHttp, '/readyz'), { timeout: 30_000 }).toBe(200);
  expect(issuer.err()).toMatch(/credential issuer: answering on NATS/);
  // the credential it wrote is node-a's, and NATS takes it
  const nc = await connectBus({ servers: url, name: 'node-a', node: 'node-a', auth: { credsFile: out } });
  await nc.flush();
  await nc.close();
  expect(readFileSync(out, 'utf8')).toMatch(/BEGIN NATS USER JWT/);
}, 60_000);
