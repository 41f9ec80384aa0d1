import { afterEach, expect, it } from 'vitest';
import { fleet, stopAll } from './nats-limits-fleet.ts';

/**
 * probe19 P19-1, continued: an applier whose reply inbox NATS refuses (READERS subscription
 * limit) waits out its target reads; what it says of its connection meanwhile. Its own file: the
 * cases of nats-account-limits.test.ts take most of the 20 s a file may take here.
 */
afterEach(stopAll);

it('an applier whose target reads go unanswered after a reconnect (READERS subscription limit: its reply inbox refused) still says when its connection is lost and back, and follows once the limit is lifted', async () => {
  // a read waits a minute for its answer (2 s in production): each status of the connection
  // waited behind the re-read of the targets that follows a reconnect, one 2-4 s re-read per
  // reconnect queued while the limit lasted
  const f = await fleet({}, { targetReadTimeoutMs: 60_000 });
  await expect.poll(async () => (await f.get('/readyz')).code, { timeout: 10_000 }).toBe(200);
  const v1 = (await f.get('/readyz')).body.applied!.version;
  await f.setLimits({ readers: { subs: 1 } });
  f.edit('b', '10.96.0.2');
  await expect.poll(async () => (await f.status()).latestVersion, { timeout: 10_000 }).toBeGreaterThan(v1);
  await expect
    .poll(async () => (await f.get('/readyz')).body.reason, { timeout: 10_000 })
    .toMatch(/NATS refuses a subscription of this node \(maximum subscriptions exceeded\)/);

  // NATS goes away while the re-reads after the limit's reconnects wait for answers that never come
  await f.nats.kill();
  // before: /healthz connected true and /readyz without "connection lost" for the minute the re-read waited
  await expect.poll(async () => (await f.get('/healthz')).body.connected, { timeout: 10_000 }).toBe(false);
  await f.nats.start();
  await expect.poll(async () => (await f.get('/healthz')).body.connected, { timeout: 10_000 }).toBe(true);

  await f.setLimits({});
  const latest = (await f.status()).latestVersion;
  await expect.poll(async () => (await f.get('/readyz')).body.applied?.version, { timeout: 15_000 }).toBe(latest);
  await expect.poll(async () => (await f.get('/readyz')).code, { timeout: 10_000 }).toBe(200);
  expect((await f.get('/healthz')).body.subscriptionError).toBeUndefined();
}, 60_000);
