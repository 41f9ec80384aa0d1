import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectBus } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { caughtUpWith, logReplica, replicaDigest, writeHistory } from './support/replicated-history.ts';
import { tempDir } from './support/temp-log.ts';

/**
 * probe17 N3: the group's log stream made again under a replica following live (NATS restarted
 * with an empty store, or the stream deleted), the leader re-seeding it with fewer messages than
 * the follower had read of the old one. The NATS client re-creates the follower's ordered
 * consumer on the new stream at its old position, where nothing comes, and the watchdog (the
 * stream's end was not past what it read) never fired: in a fleet a follower sat 8 rows behind
 * for 28 s and on, saying nothing, /readyz 200. Deleting the stream makes it happen every time
 * here; after an empty-store restart the consumer mostly fails first (and recovers), as the
 * replication-store-loss cases show, but not in a planner process.
 */
const tmp = tempDir();
let nats: NatsServerHandle;
let leaderNc: NatsConnection;
let followerNc: NatsConnection;
const lines: string[] = [];
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  // connected as planners are (connectBus: pings, reconnect backoff)
  leaderNc = await connectBus({ servers: nats.url, name: 'leader' });
  followerNc = await connectBus({ servers: nats.url, name: 'follower' });
});
afterAll(async () => {
  await leaderNc?.close();
  await followerNc?.close();
  await nats?.stop();
  tmp.cleanup();
});

it('a live follower catches up with the stream made again with fewer messages than it had read, nothing written since', async () => {
  const a = await logReplica(leaderNc, 'remade', { file: tmp.file(), lines });
  await a.r.claim(2);
  await writeHistory(a.log, { seed: 31, steps: 20, after: () => a.r.flush() }); // ~20 messages
  const b = await logReplica(followerNc, 'remade', { file: tmp.file(), lines });
  const f = b.r.follow();
  await f.caughtUp;
  await caughtUpWith(b, a, 'before the stream is deleted');
  expect(b.r.position().localSeq).toBeGreaterThan(10);

  // rows the leader has not flushed yet; the stream is deleted; the leader's next flush makes it
  // again and seeds it (marker + one batch of every row: 2 messages, the follower read ~20)
  await writeHistory(a.log, { seed: 32, steps: 2, after: async () => {} });
  await (await jetstreamManager(leaderNc)).streams.delete('SB_LOG_remade');
  await new Promise((r) => setTimeout(r, 1000));
  await a.r.flush();
  expect(lines.some((l) => /gone \(NATS lost its store\?\); making it again/.test(l))).toBe(true);
  await caughtUpWith(b, a, 'after the leader re-seeded the new stream, with nothing written since');
  await f.stop();
  expect(replicaDigest(b.log)).toEqual(replicaDigest(a.log));
  await b.r.close();
  await a.r.close();
  b.log.close();
  a.log.close();
}, 60_000);
