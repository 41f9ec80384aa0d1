import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { caughtUpWith, logReplica, replicaDigest, writeHistory } from './support/replicated-history.ts';
import { tempDir } from './support/temp-log.ts';

/**
 * Limits someone gives the group's log stream (`nats stream edit SB_LOG_<group> --max-bytes ...
 * --discard old`; probe17 N1): it dropped batches a replica joining later still needed. A
 * replicator opening the stream takes them off and says so.
 */
const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
const lines: string[] = [];
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

it("limits given to the group's log stream are taken off when a replicator opens it; a replica joining later gets every row", async () => {
  const a = await logReplica(nc, 'lim', { file: tmp.file(), lines });
  await a.r.claim(1);
  await writeHistory(a.log, { seed: 3, steps: 3, after: () => a.r.flush() });
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info('SB_LOG_lim');
  await jsm.streams.update('SB_LOG_lim', {
    ...info.config,
    max_bytes: info.state.bytes + 3000,
    discard: DiscardPolicy.Old,
  });
  const b = await logReplica(nc, 'lim', { file: tmp.file(), lines }); // another planner starts
  expect(
    lines.filter((l) => /^log stream SB_LOG_lim had limits of its own \(max_bytes \d+, discard old\)/.test(l)),
  ).toHaveLength(1);
  expect((await jsm.streams.info('SB_LOG_lim')).config.max_bytes).toBe(-1);
  await writeHistory(a.log, { seed: 4, steps: 20, after: () => a.r.flush() });
  const f = b.r.follow();
  await caughtUpWith(b, a, 'the replica that joined after the limit');
  await f.stop();
  expect(replicaDigest(b.log)).toEqual(replicaDigest(a.log));
  expect((await jsm.streams.info('SB_LOG_lim')).state.first_seq).toBe(1);
  await b.r.close();
  await a.r.close();
  b.log.close();
  a.log.close();
}, 60_000);
