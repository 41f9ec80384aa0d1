import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterEach, expect, it } from 'vitest';
import { connectBus } from '../../../libs/bus/index.ts';
import {
  BOOTSTRAP_INBOX_PREFIX,
  fetchNodeCredential,
  generateAccountKeys,
  mintRoleCreds,
  readersAccountPublicKey,
  renderResolverConfig,
  serverResolver,
  type AccountKeys,
} from '../../../libs/nodecreds/index.ts';
import { BIN } from '../../faults/fleet.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig } from '../../support/kubeconfig.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

/**
 * probe16 I3: the documented key rotation (`credentials init` again, Secrets re-applied) changes
 * the files under a running issuer (`credentials serve`), whose pod is not restarted (planner pods
 * are OnDelete). It read its signing key once, so it kept minting node credentials that the NATS
 * servers, on the new resolver, refused: every node was off the bus until someone deleted the pods.
 */
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

it('after the NATS keys are rotated, a running issuer mints with the new key and a running sidecar renews at once: nodes get credentials the new NATS accepts', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-issuer-keys-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text, { mode: 0o600 });
    return f;
  };
  const apiKey = await generateKeyPair('RS256');
  const jwks = { keys: [{ ...(await exportJWK(apiKey.publicKey)), kid: 'api-1', alg: 'RS256', use: 'sig' }] };
  const kube = await KubeApiServer.start();
  stops.push(() => kube.stop());
  kube.create('Node', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' } });
  const kubeconfig = await writeKubeconfig({ server: kube.url });
  stops.push(() => kubeconfig.cleanup());
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
    .setSubject('system:serviceaccount:switchboard:switchboard-applier')
    .setAudience('switchboard-credentials')
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(apiKey.privateKey);
  const tokenFile = file('token', token);

  // what re-applying the Secrets does to the issuer's mounted files
  const install = async (keys: AccountKeys) => {
    file('issuer.creds', await mintRoleCreds(keys, 'issuer'));
    file('sk', keys.readersSigningKeySeed);
    file('pk', readersAccountPublicKey(keys));
  };
  const before = generateAccountKeys();
  await install(before);
  let nats: NatsServerHandle = await startNatsServer({
    jetstream: true,
    config: renderResolverConfig(await serverResolver(before)),
  });
  stops.push(() => nats.stop());
  const child: ChildProcess = spawn(
    process.execPath,
    [
      BIN,
      'credentials',
      'serve',
      '--nats',
      nats.url,
      '--nats-creds',
      path.join(dir, 'issuer.creds'),
      '--account-signing-key',
      path.join(dir, 'sk'),
      '--account-public-key',
      path.join(dir, 'pk'),
      '--kubeconfig',
      kubeconfig.path,
      '--jwks-file',
      file('jwks.json', JSON.stringify(jwks)),
      '--token-issuer',
      'https://kubernetes.default.svc',
      '--service-account',
      'switchboard:switchboard-applier',
      '--ttl',
      '600',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  stops.push(async () => {
    const gone = new Promise((r) => child.once('exit', r));
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await gone;
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  await expect.poll(() => err, { timeout: 15_000 }).toMatch(/answering on NATS/);

  /** What the node side does: ask with the bootstrap credential, then connect with what came. */
  const nodeGetsOn = async (keys: AccountKeys): Promise<void> => {
    const boot = await connectBus({
      servers: nats.url,
      name: 'boot',
      auth: { credsFile: file('bootstrap.creds', await mintRoleCreds(keys, 'bootstrap')) },
      extra: { inboxPrefix: BOOTSTRAP_INBOX_PREFIX },
    });
    const out = path.join(dir, 'node-a.creds');
    try {
      await expect
        .poll(
          () =>
            fetchNodeCredential({ nc: boot, node: 'node-a', tokenFile, out }).then(
              () => true,
              () => false,
            ),
          { timeout: 15_000 },
        )
        .toBe(true);
    } finally {
      await boot.close();
    }
    const a: NatsConnection = await connectBus({
      servers: nats.url,
      name: 'node-a',
      node: 'node-a',
      auth: { credsFile: out },
      extra: { reconnect: false },
    });
    await a.close();
  };
  await nodeGetsOn(before);

  // the node's sidecar, as the DaemonSet runs it: its bootstrap file is the mounted Secret's
  const sidecarOut = path.join(dir, 'sidecar-node-a.creds');
  const sidecar: ChildProcess = spawn(
    process.execPath,
    [
      BIN,
      'credentials',
      'fetch',
      '--node',
      'node-a',
      '--nats',
      nats.url,
      '--bootstrap-creds',
      path.join(dir, 'bootstrap.creds'),
      '--token-file',
      tokenFile,
      '--out',
      sidecarOut,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  stops.push(async () => {
    const gone = new Promise((r) => sidecar.once('exit', r));
    if (sidecar.exitCode === null && sidecar.signalCode === null) sidecar.kill('SIGKILL');
    await gone;
  });
  let sidecarErr = '';
  sidecar.stderr!.setEncoding('utf8').on('data', (t: string) => (sidecarErr += t));
  /** Whether the current NATS takes the credential the sidecar wrote last. */
  const sidecarCredentialWorks = () =>
    connectBus({
      servers: nats.url,
      name: 'node-a',
      node: 'node-a',
      auth: { credsFile: sidecarOut },
      extra: { reconnect: false },
    }).then(
      (c) => c.close().then(() => true),
      () => false,
    );
  await expect.poll(() => sidecarErr, { timeout: 15_000 }).toMatch(/node credential for node-a written to/);
  expect(await sidecarCredentialWorks()).toBe(true);

  // `credentials init` again: new operator, accounts and keys; Secrets re-applied; NATS restarted
  // on the new resolver (same address); the issuer keeps running
  const after = generateAccountKeys();
  await install(after);
  const port = nats.port;
  await nats.stop();
  nats = await startNatsServer({
    port,
    jetstream: true,
    config: renderResolverConfig(await serverResolver(after)),
  });
  await nodeGetsOn(after);
  // the sidecar's credential (600 s, renewal due in 300 s) is of the old account: refused after the
  // restart, so it renews at once rather than leave its applier off the bus for minutes
  await expect.poll(sidecarCredentialWorks, { timeout: 20_000 }).toBe(true);
  expect(sidecarErr).toMatch(/NATS refuses it after a reconnect; renewing now/);
}, 60_000);
