import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { caughtUpWith, logReplica, replicaDigest, writeHistory } from './support/replicated-history.ts';
import { tempDir } from './support/temp-log.ts';

/**
 * A follower reading a log of many parts from a server whose per-connection `max_pending` is
 * small next to what one pull asks for (probe17 N4): the server cuts a client whose unread data
 * passes max_pending ("Slow Consumer Detected"). A pull of 512 messages of up to max_payload each
 * did, every time it read afresh, so the follower never caught up ("reading stalled", for ever).
 */
const tmp = tempDir();
let nats: NatsServerHandle;
let leaderNc: NatsConnection;
let followerNc: NatsConnection;
const lines: string[] = [];
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true, config: 'max_payload: 16KB\nmax_pending: 256KB' });
  leaderNc = await connect({ servers: nats.url });
  followerNc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
afterAll(async () => {
  await leaderNc?.close();
  await followerNc?.close();
  await nats?.stop();
  tmp.cleanup();
});

it('a follower catches up a log of many parts through a server with a small max_pending', async () => {
  const a = await logReplica(leaderNc, 'slow', { file: tmp.file(), lines });
  await a.r.claim(1);
  // one flush at the end: a batch of several hundred kB, in parts of up to max_payload
  await writeHistory(a.log, { seed: 5, steps: 120, after: async () => {} });
  await a.r.flush();
  const b = await logReplica(followerNc, 'slow', { file: tmp.file(), lines });
  const f = b.r.follow();
  await caughtUpWith(b, a, 'the follower after reading the whole stream');
  await f.stop();
  expect(replicaDigest(b.log)).toEqual(replicaDigest(a.log));
  await b.r.close();
  await a.r.close();
  b.log.close();
  a.log.close();
}, 60_000);
