import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Base64UrlPaddedCodec } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogReplicator,
  logStreamName,
  samePosition,
  type EventLog,
  type LogReplicator,
} from '../../../libs/eventlog/index.ts';
import { READER_IDLE_MS } from '../../../libs/eventlog/log-follower.ts';
import { SnapshotStore, snapshotBucket } from '../../../libs/eventlog/replication-snapshots.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { nodeEvent } from './support/node-event.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// P21-4: every listing of the snapshot bucket (object store list()), every snapshot read (get())
// and every follower read (catch-up, a stopped follow) left a JetStream consumer on the server:
// the object store's ordered push consumers file-stored, so each nats-server restart made them
// again with a fresh 5 min clock (1 → 35 on OBJ_sb_logsnap_<group> in a 20 min soak), the
// follower's pull consumers for 5 min each (3–30 on SB_LOG_<group>). Now a one-off read leaves
// none: the bucket is listed and read with direct gets, and a follower's consumer is deleted when
// its read ends; what stays is the one consumer each running follower reads with.

const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
let jsm: JetStreamManager;
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  jsm = await jetstreamManager(nc);
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

const lines: string[] = [];
async function replica(g: string, id: string): Promise<{ log: EventLog; r: LogReplicator }> {
  const log = await openLog(tmp.file());
  const r = await createLogReplicator({
    log,
    nc,
    group: g,
    replicas: 1,
    logger: (l) => lines.push(l),
    id,
    snapshotEveryRows: 10,
    lagRefreshMs: 100,
  });
  return { log, r };
}

/** The consumers the server holds on `stream`, by name. */
async function consumers(stream: string): Promise<{ name: string; idleNs: number }[]> {
  const out = [];
  for await (const c of jsm.consumers.list(stream))
    out.push({ name: c.name, idleNs: c.config.inactive_threshold ?? Number.POSITIVE_INFINITY });
  return out;
}

/** Restarts nats-server (kill -9, same store) and waits until JetStream answers for `stream` again. */
async function restarted(stream: string): Promise<void> {
  const back = (async () => {
    for await (const s of nc.status()) if (s.type === 'reconnect') return;
  })();
  await nats.restart();
  await back; // a request sent while the client is away waits out its timeout
  const up = () =>
    jsm.streams.info(stream).then(
      () => true,
      () => false,
    );
  await settled(up, (ok) => ok);
}

/** Polls `f` until it holds (the deletes are sent in the background) or `ms` passed; returns its last value. */
async function settled<T>(f: () => Promise<T>, done: (v: T) => boolean, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (done(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100)); // the server's consumer list: no event to await
  }
}

describe('consumers a replica leaves on the server (nats-server)', () => {
  it('catch-ups, stopped follows, role changes, snapshot listings and reads, across a nats-server restart: only a running follower holds one', async () => {
    const g = `cons${process.pid}`;
    const stream = logStreamName(g);
    const bucketStream = `OBJ_${snapshotBucket(g)}`;
    let rv = 0;
    const write = async (p: { log: EventLog; r: LogReplicator }, n: number) => {
      for (let i = 0; i < n; i++) {
        p.log.appendEvents(Array.from({ length: 5 }, () => nodeEvent(`n${rv % 9}`, ++rv)));
        await p.r.flush();
      }
    };
    const a = await replica(g, 'a');
    const b = await replica(g, 'b');
    const extra: { log: EventLog; r: LogReplicator }[] = [];
    try {
      let term = 0;
      await a.r.claim(++term);
      await write(a, 12); // snapshots at 10, 20, 40 rows: the stream is trimmed below the second newest
      await settled(
        async () => lines.filter((l) => l.includes('snapshot at seq')).length,
        (n) => n >= 3,
      );
      let leader = a;
      let follower = b;
      for (let round = 0; round < 4; round++) {
        // a follower that catches up and is stopped, twice; one stopped as soon as it started
        for (let k = 0; k < 2; k++) {
          const f = follower.r.follow();
          await f.caughtUp;
          await write(leader, 1);
          await f.stop();
        }
        const early = follower.r.follow();
        early.caughtUp.catch(() => {});
        await early.stop();
        // a new replica: bootstraps from the newest snapshot (a listing and a read), then the stream
        const c = await replica(g, `c${round}`);
        extra.push(c);
        const fc = c.r.follow();
        await fc.caughtUp;
        await fc.stop();
        // a role change: the follower claims (a catch-up and a snapshot listing), the leader follows
        await follower.r.claim(++term);
        [leader, follower] = [follower, leader];
        await write(leader, 2);
        if (round === 1) {
          await restarted(stream);
          await write(leader, 1); // retried through the reconnect
        }
      }
      expect(
        lines.some((l) => /caught up from snapshot seq-\d+/.test(l)),
        lines.join('\n'),
      ).toBe(true);
      // one running follower: it holds its one consumer (its catch-up's deleted), which the server drops soon after it is left
      const live = follower.r.follow();
      await live.caughtUp;
      const one = [{ name: expect.stringMatching(/^sb_follow_/), idleNs: READER_IDLE_MS * 1e6 }];
      expect(
        await settled(
          () => consumers(stream),
          (cs) => cs.length === 1,
        ),
      ).toEqual(one);
      expect(await consumers(bucketStream)).toEqual([]);
      // it follows across a restart (the client makes its consumer again: the server's was in memory)
      await restarted(stream);
      await write(leader, 2);
      // (the client's consumer went silent with the server: the follower's 5 s stall watchdog replaces it)
      await settled(
        async () => samePosition(leader.log.position(), follower.log.position()),
        (same) => same,
        15_000,
      );
      expect(samePosition(leader.log.position(), follower.log.position()), lines.slice(-15).join('\n')).toBe(true);
      const after = await settled(
        () => consumers(stream),
        (cs) => cs.length === 1,
      );
      expect(after).toEqual([{ name: expect.stringMatching(/^sb_follow_/), idleNs: expect.any(Number) }]);
      await live.stop();
      expect(
        await settled(
          () => consumers(stream),
          (cs) => cs.length === 0,
        ),
      ).toEqual([]);
      // and none comes back with a restart (the object store's came back with a fresh clock)
      await restarted(stream);
      expect(await consumers(stream)).toEqual([]);
      expect(await consumers(bucketStream)).toEqual([]);
    } finally {
      for (const x of [a, b, ...extra]) {
        await x.r.close();
        x.log.close();
      }
    }
  }, 30_000);

  it("a snapshot is read by direct gets, or the stream leader's message gets without allow_direct; one whose data is not what its metadata names is refused", async () => {
    const g = `consdigest${process.pid}`;
    const stream = logStreamName(g);
    await jsm.streams.add({ name: stream, subjects: [`sb.log.${g}`] });
    const store = await SnapshotStore.open({ nc, jsm, group: g, stream, replicas: 1 });
    const log = await openLog(tmp.file());
    try {
      log.appendEvents(Array.from({ length: 30 }, (_, k) => nodeEvent(`n${k}`, k + 1)));
      const to = log.position();
      await store.write({
        streamSeq: 4,
        term: 1,
        to,
        resumePoints: [],
        slices: log.wholeSlices(to),
        leading: () => true,
      });
      const whole = log.exportRows(to, { whole: true });
      const read = await store.newest(1);
      expect(read).toEqual({ streamSeq: 4, term: 1, batch: { ...whole, resumePoints: [] } });
      // its metadata republished with another digest (what a chunk replaced under it reads as)
      const bucket = snapshotBucket(g);
      const meta = `$O.${bucket}.M.${Base64UrlPaddedCodec.encode('seq-4')}`;
      const raw = (await jsm.streams.getMessage(`OBJ_${bucket}`, { last_by_subj: meta }))!.json<{ digest: string }>();
      const js = jetstream(nc);
      const refused = /^log snapshot seq-4: its data is not what its metadata's digest/;
      await js.publish(meta, JSON.stringify({ ...raw, digest: `SHA-256=${'A'.repeat(43)}=` }));
      await expect(store.newest(1)).rejects.toThrow(refused);
      // the same through the stream leader's message gets (a bucket stream without allow_direct)
      await js.publish(meta, JSON.stringify(raw));
      const si = await jsm.streams.info(`OBJ_${bucket}`);
      expect(si.config.allow_direct).toBe(true);
      await jsm.streams.update(`OBJ_${bucket}`, { ...si.config, allow_direct: false });
      const leaderRead = await SnapshotStore.open({ nc, jsm, group: g, stream, replicas: 1 });
      expect(await leaderRead.newest(1)).toEqual(read);
      await js.publish(meta, JSON.stringify({ ...raw, digest: `SHA-256=${'A'.repeat(43)}=` }));
      await expect(leaderRead.newest(1)).rejects.toThrow(refused);
      expect(await consumers(`OBJ_${bucket}`)).toEqual([]);
    } finally {
      log.close();
    }
  });
});
