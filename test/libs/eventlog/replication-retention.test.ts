import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogReplicator,
  OnlineRetention,
  replayableFrom,
  replayVersion,
  samePosition,
  verifyLog,
  type EventLog,
  type LogReplicator,
} from '../../../libs/eventlog/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { caughtUpWith, logReplica, writeHistory } from './support/replicated-history.ts';
import { tempDir } from './support/temp-log.ts';

/**
 * Retention is local to each replica's file (review4 G8): a follower compacts its own copy, never
 * past what the group acknowledged (its mark), and keeps following; after NATS lost its store, the
 * leader's seed (its whole file, compacted less) continues the follower's file from its head.
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

/** The follower's retention: the policy, bounded by the position its mark says the group acknowledged. */
function followerRetention(log: EventLog): OnlineRetention {
  return new OnlineRetention({
    log,
    policy: { versions: 2 },
    bounds: () => ({ floors: [], acknowledged: log.replicationMark()?.position ?? null }),
    sliceRows: 5,
  });
}

/** Every version the follower still rebuilds gives the leader's hash; its chains verify. */
function expectRetainedCopy(b: EventLog, a: EventLog): void {
  expect(verifyLog(b)).toMatchObject({ ok: true });
  const from = replayableFrom(b)!;
  const latest = a.latestVersion()!.version;
  expect(b.latestVersion()!.version).toBe(latest);
  for (let v = from; v <= latest; v++) expect(replayVersion(b, v).hash).toBe(replayVersion(a, v).hash);
}

describe("a follower's online retention", () => {
  it('compacts its own copy and keeps following; after a store loss it takes the seed of a leader compacted less', async () => {
    const a = await replica('ret');
    await a.r.claim(2);
    await writeHistory(a.log, { seed: 31, steps: 20, after: () => a.r.flush() });
    const b = await replica('ret');
    let f = b.r.follow();
    await f.caughtUp;
    await caughtUpWith(b, a, 'before retention');
    await f.stop(); // writes the mark: what the group acknowledged

    const retention = followerRetention(b.log);
    await retention.runOnce();
    expect(retention.status().error).toBeUndefined();
    const firstCut = b.log.oldestSeq();
    expect(firstCut).toBeGreaterThan(1);
    expect(a.log.oldestSeq()).toBe(1); // local: the leader's file keeps everything

    // following goes on from the compacted file
    f = b.r.follow();
    await writeHistory(a.log, { seed: 32, steps: 6, after: () => a.r.flush() });
    await caughtUpWith(b, a, 'following after retention');
    expectRetainedCopy(b.log, a.log);
    await f.stop();

    // the follower falls behind, compacts more; NATS loses its store; the leader re-seeds the
    // stream from its file (all of it: it compacted nothing), which starts before the follower's rows
    await writeHistory(a.log, { seed: 33, steps: 4, after: () => a.r.flush() });
    await retention.runOnce();
    expect(b.log.oldestSeq()).toBeGreaterThanOrEqual(firstCut);
    await nats.restartEmpty();
    await writeHistory(a.log, { seed: 34, steps: 3, after: async () => {} });
    await a.r.flush();
    expect(lines.some((l) => /seeded from this file/.test(l))).toBe(true);
    f = b.r.follow();
    await caughtUpWith(b, a, 'after the store loss, from the seed');
    expect(lines.filter((l) => /holds neither the batch's start nor its end/.test(l))).toEqual([]);
    expectRetainedCopy(b.log, a.log);
    await f.stop();
    await b.r.close();
    await a.r.close();
    b.log.close();
    a.log.close();
  }, 90_000);
});

describe("the leader's mark once nothing more is written", () => {
  it("catches up with the last flush, so retention is no longer held by the group's log (a probe saw it held > 40 s)", async () => {
    const a = await replica('idle');
    try {
      await a.r.claim(1);
      const marked = () => samePosition(a.log.replicationMark()!.position, a.log.position());
      const retention = new OnlineRetention({
        log: a.log,
        policy: { versions: 1 },
        bounds: () => ({ floors: [], acknowledged: a.log.replicationMark()?.position ?? null }),
      });
      // two flushes close together: a flush writes the mark at most once a second, so the second
      // one's rows are acknowledged by the group but not yet marked
      const noFlush = async () => {};
      await writeHistory(a.log, { seed: 35, steps: 4, after: noFlush });
      await a.r.flush();
      expect(marked()).toBe(true);
      await writeHistory(a.log, { seed: 36, steps: 4, after: noFlush });
      await a.r.flush();
      expect(marked()).toBe(false);
      expect(retention.status().heldBy).toMatch(/^the group's log \(it acknowledged events up to seq \d+\)$/);
      // nothing more is written: the mark still catches up (the old code kept it until the next flush)
      const end = Date.now() + 10_000;
      while (!marked() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(a.log.replicationMark()!.position).toEqual(a.log.position());
      expect(retention.status().heldBy).toBeUndefined();
    } finally {
      await a.r.close();
      a.log.close();
    }
  });
});
