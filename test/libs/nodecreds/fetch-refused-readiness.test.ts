import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { generateAccountKeys, mintRoleCreds } from '../../../libs/nodecreds/index.ts';
import { freePort } from '../../faults/fleet.ts';
import { applierNodeToken, CredentialsCli, healthStatus, readyzOf } from '../../support/credentials-cli.ts';

const cli = new CredentialsCli('sb-fetch-refused');
const file = cli.file.bind(cli);
const run = cli.run.bind(cli);
afterEach(() => cli.stop());

// probe16 leftover: the node sidecar (`credentials fetch`) whose bootstrap credential NATS refuses
// renews nothing, but its /readyz said 200 as long as the credential it wrote earlier was fresh
// (up to its whole lifetime). Now 503 naming the refusal, as the issuer's; ready again once the
// mounted file holds a credential NATS takes.
it('credentials fetch refused by NATS: /readyz 503 naming the refusal while a fresh node credential is held, /healthz 200, ready again once the file is fixed', async () => {
  const keys = generateAccountKeys();
  await cli.startKube(['node-a']);
  const nats = await cli.startNats(keys);
  const { token, jwks } = await applierNodeToken('node-a');
  const issuer = run(
    cli.serveArgs({
      nats: nats.url,
      creds: file('issuer.creds', await mintRoleCreds(keys, 'issuer')),
      keys,
      jwks,
    }),
  );
  // the issuer answering first: a request nobody answers yet would wait out the fetcher's backoff
  await expect.poll(() => issuer.err(), { timeout: 15_000 }).toMatch(/credential issuer: answering on NATS/);
  const fetchHttp = await freePort();
  const boot = file('boot.creds', await mintRoleCreds(keys, 'bootstrap'));
  const fetcher = run(
    cli.fetchArgs({
      node: 'node-a',
      nats: nats.url,
      bootstrap: boot,
      token: file('token', token),
      out: path.join(path.dirname(boot), 'node-a.creds'),
      http: fetchHttp,
    }),
  );
  const readyz = readyzOf(fetchHttp);
  await expect.poll(readyz, { timeout: 20_000 }).toEqual({ status: 200, reason: undefined });

  // the bootstrap credential refused (another operator's, after a key rotation the applier Secret
  // missed) while the node credential written a moment ago is fresh for an hour
  file('boot.creds', await mintRoleCreds(generateAccountKeys(), 'bootstrap'));
  await nats.restart();
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({
    status: 503,
    reason: `NATS refuses the bootstrap credential (Authorization Violation); retrying with ${boot} as it is at each try`,
  });
  expect(await healthStatus(fetchHttp, '/healthz')).toBe(200); // alive: a restart reads the same file
  expect(fetcher.child.exitCode, fetcher.err()).toBeNull();

  file('boot.creds', await mintRoleCreds(keys, 'bootstrap'));
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({ status: 200, reason: undefined });
  expect(fetcher.err()).toMatch(/NATS takes the bootstrap credential again/);
}, 60_000);
