import { jetstream } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogReplicator,
  logSubject,
  samePosition,
  type EventLog,
  type LogReplicator,
} from '../../../libs/eventlog/index.ts';
import { encodeBatch } from '../../../libs/eventlog/replication-codec.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { nodeEvent } from './support/node-event.ts';
import { writeHistory } from './support/replicated-history.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// A leftover to check (leftovers task 4): the lease's replay floor (the highest term a planner has
// read in the lease bucket, libs/bus/planner-lease.ts `highest`) lives in memory only, so a planner
// that just restarted has none until its first read, and may name the planner of a copied old
// lease record as the leader for up to TTL/4 (docs/ha.md). Can that make it accept a version it
// must refuse? No: that floor only decides which leader a follower names (and where it redirects
// writes, which only a planner that won the lease carries out, fenced by conditional appends). What
// a replica takes into its log is judged by the log stream itself: a batch of a term older than the
// newest term marker is a copy, and that term is part of the replica's mark in its file, so a
// restart cannot lose it. This pins it: a replica restarted after a newer term's claim refuses a
// batch of the deposed term that continues the group's log exactly (only the term tells it apart).

const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

const lines: string[] = [];
async function replica(g: string, file = tmp.file()): Promise<{ log: EventLog; r: LogReplicator; file: string }> {
  const log = await openLog(file);
  const r = await createLogReplicator({
    log,
    nc,
    group: g,
    replicas: 1,
    logger: (l) => lines.push(l),
    id: file,
    lagRefreshMs: 100,
  });
  return { log, r, file };
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20)); // polling a file: no event to await
  }
}

describe("a replica's term floor across a restart", () => {
  it("a replica restarted after a newer term's claim refuses a batch of the deposed term that continues its log", async () => {
    const g = `rt${process.pid}`;
    const a = await replica(g); // the leader of term 1
    await a.r.claim(1);
    await writeHistory(a.log, { seed: 3, steps: 6, after: () => a.r.flush() });
    const acked = a.log.position();

    const c = await replica(g); // a follower
    const fc = c.r.follow();
    await fc.caughtUp;
    await until(() => samePosition(c.log.position(), acked), 'the follower to reach the leader');

    const b = await replica(g); // elected: term 2, its marker in the stream; a is deposed
    await b.r.claim(2);
    // the follower reads the marker, and its mark in the file says so
    await until(() => c.log.replicationMark()?.term === 2, "the follower's mark to carry term 2");
    await fc.stop();
    await c.r.close();
    c.log.close(); // the follower's process ends

    // The deposed leader's next batch, published by hand (its own conditional append would be
    // refused): it starts exactly at the group's end, so only its term says it is no leader's.
    a.log.appendEvents([nodeEvent('deposed-term', 9_999)]);
    const js = jetstream(nc);
    for (const m of encodeBatch(a.log.exportRows(acked), 1, 1 << 20)) {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(m.headers)) h.set(k, v);
      await js.publish(logSubject(g), m.payload, { headers: h });
    }

    const c2 = await replica(g, c.file); // the follower starts again: nothing of it in memory
    const fc2 = c2.r.follow();
    await fc2.caughtUp;
    expect(samePosition(c2.log.position(), acked)).toBe(true);
    expect(c2.log.events().some((e) => e.name === 'deposed-term')).toBe(false);
    expect(lines.some((l) => /a batch of term 1 after a term 2 claim/.test(l))).toBe(true);
    await fc2.stop();
    for (const x of [a, b, c2]) {
      await x.r.close();
      x.log.close();
    }
  }, 40_000);
});
