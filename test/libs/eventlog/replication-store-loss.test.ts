import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventLog, LogReplicator } from '../../../libs/eventlog/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { caughtUpWith, logReplica, replicaDigest, writeHistory } from './support/replicated-history.ts';
import { tempDir } from './support/temp-log.ts';

/**
 * NATS loses its whole store (kill -9, data directory gone, restart) while a replica leads the
 * group's log: the leader makes the stream again and seeds it from its file under the same term,
 * so its next flush succeeds and a replica bootstrapped afterwards holds every row. Before, each
 * append failed ("jetstream is not enabled") until the lease moved, and the planner's periodic
 * flushes queued behind one another so that a publish waited behind all of them.
 */
const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
const lines: string[] = [];
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

const replica = (group: string, file = tmp.file()) => logReplica(nc, group, { file, lines });

/** The follower holds exactly the leader's verified log; then both are closed. */
async function expectSameAndClose(b: { log: EventLog; r: LogReplicator }, a: { log: EventLog; r: LogReplicator }) {
  const want = replicaDigest(a.log);
  expect(want.verified).toBe(true);
  expect(replicaDigest(b.log)).toEqual(want);
  await b.r.close();
  await a.r.close();
  b.log.close();
  a.log.close();
}

describe('replicated log when NATS loses its store', () => {
  it('the leader re-creates and re-seeds the stream; a fresh replica then gets every row; concurrent flushes share one', async () => {
    const a = await replica('loss');
    await a.r.claim(4);
    await writeHistory(a.log, { seed: 7, steps: 12, after: () => a.r.flush() });
    await nats.restartEmpty();
    // Rows committed while the stream is gone, then flushes called together: they share one flush.
    await writeHistory(a.log, { seed: 8, steps: 6, after: async () => {} });
    const flushes = [a.r.flush(), a.r.flush(), a.r.flush()];
    expect(flushes[2]).toBe(flushes[1]); // queued behind the first: one shared flush, not one each
    await Promise.all(flushes);
    expect(
      lines.some((l) => /gone \(NATS lost its store\?\); making it again, seeded from this file as term 4/.test(l)),
    ).toBe(true);
    await writeHistory(a.log, { seed: 9, steps: 4, after: () => a.r.flush() });

    const b = await replica('loss');
    const f = b.r.follow();
    await f.caughtUp;
    await caughtUpWith(b, a, 'a fresh replica after the store loss');
    await f.stop();
    await expectSameAndClose(b, a);
  }, 90_000);

  it('a replica following while NATS loses its store catches up with the stream the leader re-seeds, and keeps following', async () => {
    const a = await replica('loss-follow');
    await a.r.claim(2);
    await writeHistory(a.log, { seed: 11, steps: 8, after: () => a.r.flush() });
    const b = await replica('loss-follow');
    const f = b.r.follow();
    await f.caughtUp;
    await caughtUpWith(b, a, 'before the store loss');
    const markBefore = b.r.position().localSeq;
    expect(markBefore).toBeGreaterThan(5);

    await nats.restartEmpty();
    // The leader re-seeds the new stream (marker, then one batch of every row), then writes on
    // until the new stream's sequences pass the follower's old mark: read as the old stream, the
    // follower would take those batches for a gap after its end, or skip the seed.
    await writeHistory(a.log, { seed: 12, steps: 3, after: async () => {} });
    await a.r.flush();
    await writeHistory(a.log, { seed: 13, steps: markBefore + 2, after: () => a.r.flush() });
    await caughtUpWith(b, a, 'after the leader re-seeded the new stream');
    await writeHistory(a.log, { seed: 14, steps: 3, after: () => a.r.flush() });
    await caughtUpWith(b, a, 'following on');
    await f.stop();
    await expectSameAndClose(b, a);
  }, 90_000);

  it('a replica restarted after NATS lost its store reads the new stream from its start: its mark names the stream it counted in', async () => {
    const a = await replica('loss-restart');
    await a.r.claim(2);
    await writeHistory(a.log, { seed: 21, steps: 8, after: () => a.r.flush() });
    const file = tmp.file();
    const b1 = await replica('loss-restart', file);
    const f1 = b1.r.follow();
    await f1.caughtUp;
    await caughtUpWith(b1, a, 'before the store loss');
    const markBefore = b1.r.position().localSeq;
    await f1.stop();
    await b1.r.close(); // the follower process stops; its mark is in the file
    b1.log.close();

    await nats.restartEmpty();
    // The leader re-seeds the new stream and writes on until its sequences pass the stopped
    // follower's mark, so the mark's seq alone cannot tell the follower the stream is another one.
    await writeHistory(a.log, { seed: 22, steps: 3, after: async () => {} });
    await a.r.flush();
    await writeHistory(a.log, { seed: 23, steps: markBefore + 2, after: () => a.r.flush() });

    const b2 = await replica('loss-restart', file);
    expect(b2.log.replicationMark()?.streamCreated).toMatch(/^\d{4}-/); // the old stream's creation time
    const f2 = b2.r.follow();
    await f2.caughtUp;
    await caughtUpWith(b2, a, 'after the restart');
    expect(lines.some((l) => /made again \(created .*, was .*\)/.test(l))).toBe(true);
    await writeHistory(a.log, { seed: 24, steps: 3, after: () => a.r.flush() });
    await caughtUpWith(b2, a, 'following on');
    await f2.stop();
    await expectSameAndClose(b2, a);
  }, 90_000);
});
