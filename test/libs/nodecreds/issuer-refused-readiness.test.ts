import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import {
  generateAccountKeys,
  mintRoleCreds,
  readersAccountPublicKey,
  renderResolverConfig,
  serverResolver,
} from '../../../libs/nodecreds/index.ts';
import { BIN, freePort } from '../../faults/fleet.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

const SA = 'switchboard:switchboard-applier';
let nats: NatsServerHandle | undefined;
let kube: KubeApiServer | undefined;
let kubeconfig: WrittenKubeconfig | undefined;
let dir: string | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }
  await nats?.stop();
  await kube?.stop();
  await kubeconfig?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
  nats = kube = kubeconfig = dir = undefined;
});

function file(name: string, text: string): string {
  dir ??= mkdtempSync(path.join(tmpdir(), 'sb-issuer-refused-'));
  const f = path.join(dir, name);
  writeFileSync(f, text, { mode: 0o600 });
  return f;
}

function run(args: string[]): { child: ChildProcess; err: () => string } {
  const child = spawn(process.execPath, [BIN, 'credentials', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
  return { child, err: () => err };
}

const status = (port: number, p: string) =>
  fetch(`http://127.0.0.1:${port}${p}`)
    .then((r) => r.status)
    .catch(() => 0);

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

  // refused from the start: waiting, and the reason says why
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({
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
}, 60_000);
