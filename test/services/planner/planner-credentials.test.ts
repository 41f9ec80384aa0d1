import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import {
  generateAccountKeys,
  mintRoleCreds,
  renderResolverConfig,
  serverResolver,
} from '../../../libs/nodecreds/index.ts';
import { freePort } from '../../faults/fleet.ts';
import { runPlanner } from '../../../services/planner/run-planner.ts';
import { startNatsServer } from '../../support/nats-server.ts';
import { nodeYaml, svcYaml } from './planner-support.ts';

/**
 * probe16 I7: NATS refusing the planner's own credential (a new resolver after the keys were
 * rotated, its Secret not yet updated) was said only as "disconnected from NATS" and "lease
 * renewal failed: timeout"; the client gave up for good at the second refusal.
 */
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

it("a planner whose credential NATS refuses says so (stderr, lastError, /readyz first) and goes on with the file's next credential", async () => {
  const keys = generateAccountKeys();
  const nats = await startNatsServer({ jetstream: true, config: renderResolverConfig(await serverResolver(keys)) });
  stops.push(() => nats.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-planner-creds-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'node.yaml'), nodeYaml('node-1', '192.0.2.1'));
  writeFileSync(path.join(manifests, 'a.yaml'), svcYaml('a', '10.96.0.1'));
  const creds = path.join(dir, 'planner.creds');
  writeFileSync(creds, await mintRoleCreds(keys, 'planner'));
  const said: string[] = [];
  const p = await runPlanner({
    manifests,
    nats: nats.url,
    natsAuth: { credsFile: creds },
    db: path.join(dir, 'log.db'),
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    leaseTtlMs: 2000,
    busMaxBackoffMs: 200, // retries every 200 ms, not 250 ms doubling to 5 s
    say: (l) => said.push(l),
  });
  stops.push(() => p.stop());
  await p.planner.synced;
  const lastError = async () => ((await (await fetch(`${p.url}/status`)).json()) as { lastError?: string }).lastError;

  writeFileSync(creds, await mintRoleCreds(generateAccountKeys(), 'planner')); // another operator's
  await nats.restart();
  await expect
    .poll(() => said.filter((l) => /^NATS refuses this planner's credential/.test(l)), { timeout: 15_000 })
    .toEqual([
      expect.stringMatching(
        new RegExp(`^NATS refuses this planner's credential \\(Authorization Violation\\): .*retrying with ${creds}`),
      ),
    ]);
  await expect.poll(lastError, { timeout: 15_000 }).toMatch(/^nats: NATS refuses this planner's credential/);
  // /readyz names the refusal first, not what follows from it (probe16: "event source not synced yet")
  const readyz = async () => {
    const r = await fetch(`${p.url}/readyz`);
    return { status: r.status, reason: ((await r.json()) as { reason?: string }).reason };
  };
  await expect.poll(readyz, { timeout: 15_000 }).toEqual({
    status: 503,
    reason: expect.stringMatching(/^nats: NATS refuses this planner's credential \(Authorization Violation\)/),
  });

  writeFileSync(creds, await mintRoleCreds(keys, 'planner')); // the Secret fixed
  await expect.poll(() => said, { timeout: 20_000 }).toContain("NATS takes this planner's credential again");
  await expect.poll(async () => (await lastError()) ?? '', { timeout: 20_000 }).not.toMatch(/NATS refuses/);
  await expect.poll(async () => (await readyz()).reason ?? '', { timeout: 20_000 }).not.toMatch(/NATS refuses/);
}, 60_000);

it('a planner refused by NATS from its start says so on /readyz while it waits, and starts once the file holds a credential NATS takes', async () => {
  const keys = generateAccountKeys();
  const nats = await startNatsServer({ jetstream: true, config: renderResolverConfig(await serverResolver(keys)) });
  stops.push(() => nats.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-planner-creds-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'node.yaml'), nodeYaml('node-1', '192.0.2.1'));
  const creds = path.join(dir, 'planner.creds');
  writeFileSync(creds, await mintRoleCreds(generateAccountKeys(), 'planner')); // another operator's
  const port = await freePort();
  const starting = runPlanner({
    manifests,
    nats: nats.url,
    natsAuth: { credsFile: creds },
    db: path.join(dir, 'log.db'),
    http: `127.0.0.1:${port}`,
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    leaseTtlMs: 2000,
    busMaxBackoffMs: 200, // retries every 200 ms, not 250 ms doubling to 5 s
    say: () => undefined,
  });
  const good = await mintRoleCreds(keys, 'planner');
  // a planner still waiting only returns (to be stopped) once NATS takes its credential
  stops.push(async () => {
    writeFileSync(creds, good);
    await (await starting).stop();
  });
  const readyz = () =>
    fetch(`http://127.0.0.1:${port}/readyz`)
      .then(async (r) => ({ status: r.status, reason: ((await r.json()) as { reason?: string }).reason }))
      .catch((e: Error) => ({ status: 0, reason: e.message }));
  // before: "planner is starting (restoring from its log, waiting for NATS)", the refusal on stderr only
  await expect.poll(readyz, { timeout: 10_000 }).toEqual({
    status: 503,
    reason: expect.stringMatching(/^planner is starting .*; last try: .*Authorization Violation/),
  });
  writeFileSync(creds, good); // the Secret fixed
  const p = await starting;
  await p.planner.synced;
  await expect.poll(readyz, { timeout: 10_000 }).toEqual({ status: 200, reason: undefined });
}, 30_000);
