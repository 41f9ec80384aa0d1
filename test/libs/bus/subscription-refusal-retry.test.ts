import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterEach, expect, it } from 'vitest';
import { connectBus, nodeInboxPrefix } from '../../../libs/bus/index.ts';
import {
  generateAccountKeys,
  mintNodeCreds,
  renderResolverConfig,
  serverResolver,
  type AccountKeys,
} from '../../../libs/nodecreds/index.ts';
import { startNatsServer } from '../../support/nats-server.ts';

/**
 * watchSubscriptionRefusals (probe19 P19-1): a connection whose subscription NATS refused
 * reconnects to subscribe again after a backoff. The reload that lifts the limit drops the
 * account's connections itself; the retry pending then must not drop them once more.
 */
const stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
});

/** Waits for the next status of `type` on `nc`. */
function next(nc: NatsConnection, type: string): Promise<void> {
  return (async () => {
    for await (const s of nc.status()) if (s.type === type) return;
  })();
}

it('a reconnect that NATS takes whole (the limit lifted by a reload) stands for the retry pending: the connection is not dropped again', async () => {
  const keys: AccountKeys = generateAccountKeys();
  const first = await serverResolver(keys, { readers: { subs: 1 } });
  const nats = await startNatsServer({ config: renderResolverConfig(first) });
  stops.push(() => nats.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-sub-retry-'));
  stops.push(async () => rmSync(dir, { recursive: true, force: true }));
  const creds = path.join(dir, 'n1.creds');
  writeFileSync(creds, await mintNodeCreds(keys, 'n1', 600));

  const said: (string | undefined)[] = [];
  const retryMs = 4000;
  const nc = await connectBus({
    servers: nats.url,
    name: 'applier-n1',
    node: 'n1',
    auth: { credsFile: creds },
    maxBackoffMs: 200,
    onSubscriptionRefusal: (r) => said.push(r),
    // one retry pending for 4 s from the refusal: longer than the reload below takes
    subscriptionRetry: { retryMs, retryCapMs: retryMs },
  });
  stops.push(() => nc.close());
  let disconnects = 0;
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'disconnect') disconnects++;
  })();
  nc.subscribe(`${nodeInboxPrefix('n1')}.a`);
  nc.subscribe(`${nodeInboxPrefix('n1')}.b`); // the second: refused (subs 1)
  await expect.poll(() => said, { timeout: 10_000 }).toEqual([expect.stringMatching(/maximum subscriptions exceeded/)]);
  const refusedAt = Date.now();

  // lifted (a running server keeps its operator JWT): the reload drops the account's connections
  const dropped = next(nc, 'disconnect');
  await nats.reconfigure(renderResolverConfig({ ...(await serverResolver(keys, {})), operatorJwt: first.operatorJwt }));
  await dropped;
  await expect.poll(() => said.at(-1), { timeout: 10_000 }).toBeUndefined();
  const after = disconnects;
  // the retry pending from the refusal would have fired by now
  await new Promise((r) => setTimeout(r, Math.max(0, refusedAt + retryMs + 1000 - Date.now())));
  // before: one more disconnect (the retry's reconnect), of every node the limit had refused
  expect(disconnects).toBe(after);
  expect(said.filter((r) => r === undefined)).toHaveLength(1);
}, 20_000);
