import { afterEach, expect, it } from 'vitest';
import { generateAccountKeys, mintRoleCreds } from '../../../libs/nodecreds/index.ts';
import { freePort } from '../../faults/fleet.ts';
import { CredentialsCli, healthStatus, readyzOf } from '../../support/credentials-cli.ts';

const cli = new CredentialsCli('sb-issuer-refused');
afterEach(() => cli.stop());

// probe16: the issuer's own credential refused by NATS (its Secret not updated after the keys were
// rotated, a revoked account). The client retries a refusal for ever, so the connection never
// closes and /readyz said 200 while the issuer answered no node. Now /readyz is 503 with the
// refusal as its reason, and /healthz stays 200: a restart would read the same file, which each
// retry already reads again.
it('credentials serve refused by NATS: /readyz 503 naming the refusal, /healthz 200, ready again once the file holds a credential NATS takes', async () => {
  const keys = generateAccountKeys();
  await cli.startKube();
  const nats = await cli.startNats(keys);
  const issuerHttp = await freePort();
  const other = generateAccountKeys(); // another operator's: NATS refuses its credentials
  const creds = cli.file('issuer.creds', await mintRoleCreds(other, 'issuer'));
  const issuer = cli.run(cli.serveArgs({ nats: nats.url, creds, keys, jwks: { keys: [] }, http: issuerHttp }));
  const readyz = readyzOf(issuerHttp);

  // refused from the start: waiting, and the reason says why (40 s: the child's start alone took
  // over 15 s on 2 cores at load 14, where /readyz was not listening yet: "fetch failed")
  await expect.poll(readyz, { timeout: 40_000 }).toEqual({
    status: 503,
    reason: expect.stringMatching(/^waiting for NATS: .*Authorization Violation/),
  });
  expect(await healthStatus(issuerHttp, '/healthz')).toBe(200);

  cli.file('issuer.creds', await mintRoleCreds(keys, 'issuer')); // the Secret fixed
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({ status: 200, reason: undefined });

  // refused while connected (a new resolver after a key rotation): the connection stays open
  cli.file('issuer.creds', await mintRoleCreds(other, 'issuer'));
  await nats.restart();
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({
    status: 503,
    reason: `NATS refuses the issuer's credential (Authorization Violation); retrying with ${creds} as it is at each try`,
  });
  expect(await healthStatus(issuerHttp, '/healthz')).toBe(200); // alive: a restart reads the same file
  expect(issuer.child.exitCode, issuer.err()).toBeNull();

  cli.file('issuer.creds', await mintRoleCreds(keys, 'issuer'));
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({ status: 200, reason: undefined });
  expect(issuer.err()).toMatch(/credential issuer: NATS takes the issuer's credential again/);
}, 120_000);
