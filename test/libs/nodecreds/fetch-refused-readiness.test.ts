import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
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
import { applierNodeToken, CredentialsCli, healthStatus } from '../../support/credentials-cli.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

const SA = 'switchboard:switchboard-applier';
let nats: NatsServerHandle | undefined;
let kube: KubeApiServer | undefined;
let kubeconfig: WrittenKubeconfig | undefined;
const cli = new CredentialsCli('sb-fetch-refused');
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

// probe16 leftover: the node sidecar (`credentials fetch`) whose bootstrap credential NATS refuses
// renews nothing, but its /readyz said 200 as long as the credential it wrote earlier was fresh
// (up to its whole lifetime). Now 503 naming the refusal, as the issuer's; ready again once the
// mounted file holds a credential NATS takes.
it('credentials fetch refused by NATS: /readyz 503 naming the refusal while a fresh node credential is held, /healthz 200, ready again once the file is fixed', async () => {
  const keys = generateAccountKeys();
  kube = await KubeApiServer.start();
  kube.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } });
  kubeconfig = await writeKubeconfig({ server: kube.url });
  nats = await startNatsServer({ jetstream: true, config: renderResolverConfig(await serverResolver(keys)) });
  const { token, jwks } = await applierNodeToken('node-a', SA);
  const issuer = run([
    'serve',
    '--nats',
    nats.url,
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
  ]);
  // the issuer answering first: a request nobody answers yet would wait out the fetcher's backoff
  await expect.poll(() => issuer.err(), { timeout: 15_000 }).toMatch(/credential issuer: answering on NATS/);
  const fetchHttp = await freePort();
  const boot = file('boot.creds', await mintRoleCreds(keys, 'bootstrap'));
  const fetcher = run([
    'fetch',
    '--node',
    'node-a',
    '--nats',
    nats.url,
    '--bootstrap-creds',
    boot,
    '--token-file',
    file('token', token),
    '--out',
    path.join(path.dirname(boot), 'node-a.creds'),
    '--http',
    `127.0.0.1:${fetchHttp}`,
  ]);
  const readyz = () =>
    fetch(`http://127.0.0.1:${fetchHttp}/readyz`)
      .then(async (r) => ({ status: r.status, reason: ((await r.json()) as { reason?: string }).reason }))
      .catch((e: Error) => ({ status: 0, reason: e.message }));
  await expect.poll(readyz, { timeout: 20_000 }).toEqual({ status: 200, reason: undefined });

  // the bootstrap credential refused (another operator's, after a key rotation the applier Secret
  // missed) while the node credential written a moment ago is fresh for an hour
  file('boot.creds', await mintRoleCreds(generateAccountKeys(), 'bootstrap'));
  await nats.restart();
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({
    status: 503,
    reason: `NATS refuses the bootstrap credential (Authorization Violation); retrying with ${boot} as it is at each try`,
  });
  expect(await status(fetchHttp, '/healthz')).toBe(200); // alive: a restart reads the same file
  expect(fetcher.child.exitCode, fetcher.err()).toBeNull();

  file('boot.creds', await mintRoleCreds(keys, 'bootstrap'));
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({ status: 200, reason: undefined });
  expect(fetcher.err()).toMatch(/NATS takes the bootstrap credential again/);
}, 60_000);
