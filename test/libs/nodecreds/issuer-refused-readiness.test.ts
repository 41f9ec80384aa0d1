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
import { CredentialsCli, healthStatus } from '../../support/credentials-cli.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

const SA = 'switchboard:switchboard-applier';
let nats: NatsServerHandle | undefined;
let kube: KubeApiServer | undefined;
let kubeconfig: WrittenKubeconfig | undefined;
const cli = new CredentialsCli('sb-issuer-refused');
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

// probe16: the issuer's own credential refused by NATS (its Secret not updated after the keys were
// rotated, a revoked account). The client retries a refusal for ever, so the connection never
// closes and /readyz said 200 while the issuer answered no node. Now /readyz is 503 with the
// refusal as its reason, and /healthz stays 200: a restart would read the same file, which each
// retry already reads again.
it('credentials serve refused by NATS: /readyz 503 naming the refusal, /healthz 200, ready again once the file holds a credential NATS takes', async () => {
  const keys = generateAccountKeys();
  kube = await KubeApiServer.start();
  kubeconfig = await writeKubeconfig({ server: kube.url });
  nats = await startNatsServer({ jetstream: true, config: renderResolverConfig(await serverResolver(keys)) });
  const issuerHttp = await freePort();
  const other = generateAccountKeys(); // another operator's: NATS refuses its credentials
  const creds = file('issuer.creds', await mintRoleCreds(other, 'issuer'));
  const issuer = run([
    'serve',
    '--nats',
    nats.url,
    '--nats-creds',
    creds,
    '--account-signing-key',
    file('sk', keys.readersSigningKeySeed),
    '--account-public-key',
    file('pk', readersAccountPublicKey(keys)),
    '--kubeconfig',
    kubeconfig.path,
    '--jwks-file',
    file('jwks.json', JSON.stringify({ keys: [] })),
    '--service-account',
    SA,
    '--http',
    `127.0.0.1:${issuerHttp}`,
  ]);
  const readyz = () =>
    fetch(`http://127.0.0.1:${issuerHttp}/readyz`)
      .then(async (r) => ({ status: r.status, reason: ((await r.json()) as { reason?: string }).reason }))
      .catch((e: Error) => ({ status: 0, reason: e.message }));

  // refused from the start: waiting, and the reason says why (40 s: the child's start alone took
  // over 15 s on 2 cores at load 14, where /readyz was not listening yet: "fetch failed")
  await expect.poll(readyz, { timeout: 40_000 }).toEqual({
    status: 503,
    reason: expect.stringMatching(/^waiting for NATS: .*Authorization Violation/),
  });
  expect(await status(issuerHttp, '/healthz')).toBe(200);

  file('issuer.creds', await mintRoleCreds(keys, 'issuer')); // the Secret fixed
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({ status: 200, reason: undefined });

  // refused while connected (a new resolver after a key rotation): the connection stays open
  file('issuer.creds', await mintRoleCreds(other, 'issuer'));
  await nats.restart();
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({
    status: 503,
    reason: `NATS refuses the issuer's credential (Authorization Violation); retrying with ${creds} as it is at each try`,
  });
  expect(await status(issuerHttp, '/healthz')).toBe(200); // alive: a restart reads the same file
  expect(issuer.child.exitCode, issuer.err()).toBeNull();

  file('issuer.creds', await mintRoleCreds(keys, 'issuer'));
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({ status: 200, reason: undefined });
  expect(issuer.err()).toMatch(/credential issuer: NATS takes the issuer's credential again/);
}, 120_000);
