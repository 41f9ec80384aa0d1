import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FencedError,
  compactLog,
  createLogReplicator,
  logStreamName,
  logSubject,
  rowCount,
  samePosition,
  type EventLog,
  type LogPosition,
  type LogReplicator,
} from '../../../libs/eventlog/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { ensureStreamReplicas, ReplicasRefused } from '../../../libs/bus/index.ts';
import { encodeBatch } from '../../../libs/eventlog/replication-codec.ts';
import { CHAIN_NAMES } from '../../../libs/eventlog/row-chain.ts';
import { nodeEvent } from './support/node-event.ts';
import { replicaDigest, writeHistory } from './support/replicated-history.ts';
import { openLog, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
let groups = 0;
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

const group = () => `g${process.pid}-${++groups}`;
const lines: string[] = [];
const logger = (l: string) => {
  lines.push(l);
  if (process.env.DBG) console.log(l);
};

async function replica(
  g: string,
  file = tmp.file(),
  snapshotEveryRows?: number,
): Promise<{ log: EventLog; r: LogReplicator; file: string }> {
  const log = await openLog(file);
  return {
    log,
    r: await createLogReplicator({
      log,
      nc,
      group: g,
      replicas: 1,
      logger,
      id: file,
      snapshotEveryRows,
      lagRefreshMs: 100,
    }),
    file,
  };
}

const emptyRows = () => Object.fromEntries(CHAIN_NAMES.map((c) => [c, []])) as never;

/** Resolves once `log` stands where `leader` does (the follower applies batches as they come). */
async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20)); // polling the follower's file: no event to await
  }
}

describe('replicated event log (one nats-server, real SQLite files)', () => {
  it('a follower with an empty file gets every row verbatim: verify passes, heads equal, every version replays to the same hash', async () => {
    const g = group();
    const a = await replica(g);
    const b = await replica(g);
    await a.r.claim(1);
    const f = b.r.follow();
    await f.caughtUp;
    await writeHistory(a.log, { seed: 7, steps: 40, after: () => a.r.flush() });
    await until(() => samePosition(a.log.position(), b.log.position()), 'the follower to reach the leader');
    const da0 = replicaDigest(a.log);
    const db = replicaDigest(b.log);
    expect(da0.verified).toBe(true);
    expect(da0.replays.length).toBeGreaterThan(5);
    expect(a.log.checkpoints().length).toBeGreaterThan(0);
    expect(db).toEqual(da0);
    expect(b.log.checkpoints()).toEqual(a.log.checkpoints());
    expect(b.r.position().lagRows).toBe(0);
    await f.stop();
    // A follower that stopped applying shows the rows it lacks, and the stream seq it lacks them to.
    const before = rowCount(a.log.position());
    await writeHistory(a.log, { seed: 9, steps: 3, after: () => a.r.flush() });
    const behind = rowCount(a.log.position()) - before;
    expect(behind).toBeGreaterThan(0);
    await until(() => b.r.position().lagRows === behind, `lagRows ${behind} (have ${b.r.position().lagRows})`);
    expect(b.r.position().streamSeq).toBeGreaterThan(b.r.position().localSeq);
    const f1 = b.r.follow();
    await f1.caughtUp;
    expect(b.r.position()).toMatchObject({ lagRows: 0, localSeq: b.r.position().streamSeq });
    await f1.stop();
    const da = replicaDigest(a.log);
    // A third replica started later bootstraps from the stream alone.
    const c = await replica(g);
    const fc = c.r.follow();
    await fc.caughtUp;
    expect(replicaDigest(c.log)).toEqual(da);
    await fc.stop();
    // The follower restarted on its file resumes from its mark and gets what it missed.
    await b.r.close();
    b.log.close();
    await writeHistory(a.log, { seed: 8, steps: 5, after: () => a.r.flush() });
    const b2 = await replica(g, b.file);
    const f2 = b2.r.follow();
    await f2.caughtUp;
    expect(replicaDigest(b2.log)).toEqual(replicaDigest(a.log));
    expect(b2.log.truncations()).toEqual([]);
    await f2.stop();
    for (const x of [a, b2, c]) {
      await x.r.close();
      x.log.close();
    }
  }, 60_000);

  it('first start of an existing single-planner log: its rows seed the group, also across a restart between follow() and claim()', async () => {
    const g = group();
    const file = tmp.file();
    const old = await openLog(file);
    await writeHistory(old, { seed: 61, steps: 15, after: async () => {} });
    const seed = replicaDigest(old);
    old.close();
    const a1 = await replica(g, file);
    const f1 = a1.r.follow();
    await f1.caughtUp;
    await f1.stop();
    await a1.r.close();
    a1.log.close();
    const a = await replica(g, file);
    const f = a.r.follow();
    await f.caughtUp;
    expect(replicaDigest(a.log)).toEqual(seed);
    await f.stop();
    await a.r.claim(1);
    await a.r.flush();
    const b = await replica(g);
    const fb = b.r.follow();
    await fb.caughtUp;
    expect(replicaDigest(b.log)).toEqual(seed);
    expect(a.log.truncations()).toEqual([]);
    await fb.stop();
    for (const x of [a, b]) {
      await x.r.close();
      x.log.close();
    }
  }, 60_000);

  it("garbage on the log subject: followers skip it (logged) and apply nothing of it; the leader's next flush meets it as a fence and a re-claim continues after it", async () => {
    const g = group();
    const a = await replica(g);
    const b = await replica(g);
    await a.r.claim(1);
    const fb = b.r.follow();
    await fb.caughtUp;
    await writeHistory(a.log, { seed: 71, steps: 5, after: () => a.r.flush() });
    const js = jetstream(nc);
    await js.publish(logSubject(g), new TextEncoder().encode('not a batch'));
    const h = natsHeaders();
    for (const [k, v] of Object.entries({
      'Sb-Log': 'rows',
      'Sb-Log-Batch': 'evil',
      'Sb-Log-Part': '1/1',
      'Sb-Log-Term': '9',
    }))
      h.set(k, v);
    await js.publish(
      logSubject(g),
      new TextEncoder().encode(JSON.stringify({ from: a.log.position(), to: a.log.position(), rows: {} })),
      { headers: h },
    );
    // A forged term marker with a huge term locks nobody out: the lease owns terms.
    const t = natsHeaders();
    for (const [k, v] of Object.entries({ 'Sb-Log': 'term', 'Sb-Log-Term': '999999' })) t.set(k, v);
    await js.publish(logSubject(g), new TextEncoder().encode('{}'), { headers: t });
    a.log.appendEvents([
      {
        kind: 'Node',
        type: 'ADDED',
        origin: 'watch',
        namespace: '',
        name: 'n-after',
        uid: 'u-n-after',
        resourceVersion: '5000',
        object: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n-after' } },
      },
    ]);
    await expect(a.r.flush()).rejects.toBeInstanceOf(FencedError);
    await a.r.claim(2);
    await a.r.flush();
    await until(
      () => samePosition(a.log.position(), b.log.position()),
      'the follower to get the batch after the garbage',
    );
    expect(replicaDigest(b.log)).toEqual(replicaDigest(a.log));
    // The event committed but never acknowledged is dropped at the re-claim (a source sends it again).
    expect(a.log.truncations().map((t) => t.rowsDropped)).toEqual([1]);
    expect(a.log.events().some((e) => e.name === 'n-after')).toBe(false);
    expect(lines.some((l) => l.includes(`SB_LOG_${g}`) && l.includes('not a log message'))).toBe(true);
    expect(lines.some((l) => l.includes(`SB_LOG_${g}`) && /batch evil is malformed/.test(l))).toBe(true);
    await fb.stop();
    for (const x of [a, b]) {
      await x.r.close();
      x.log.close();
    }
  }, 60_000);

  it('copies of genuine batches on the log subject are applied by no replica: an earlier batch replayed, a batch whose end is before its start, an old-term batch that continues the log (review2 R7, L4)', async () => {
    const g = group();
    const a = await replica(g);
    const b = await replica(g);
    await a.r.claim(1);
    const fb = b.r.follow();
    await fb.caughtUp;
    let early: LogPosition | undefined;
    await writeHistory(a.log, {
      seed: 7,
      steps: 12,
      after: async () => {
        early ??= a.log.position();
        await a.r.flush();
      },
    });
    await until(() => samePosition(a.log.position(), b.log.position()), 'the follower to reach the leader');
    const acked = a.log.position();
    const js = jetstream(nc);
    const publish = async (headers: Iterable<[string, string]>, payload: Uint8Array) => {
      const h = natsHeaders();
      for (const [k, v] of headers) h.set(k, v);
      await js.publish(logSubject(g), payload, { headers: h });
    };
    // Whoever may publish on sb.log.<group> replays stored message 4 (a genuine batch) verbatim...
    const old = (await (await jetstreamManager(nc)).streams.getMessage(logStreamName(g), { seq: 4 }))!;
    expect(old.header.get('Sb-Log')).toBe('rows');
    await publish(
      [...old.header.keys()].filter((k) => !/^nats-/i.test(k)).map((k) => [k, old.header.get(k)]),
      old.data,
    );
    // ... and a batch from the group's end back to an earlier position (valid hashes, no rows).
    const back = { from: acked, to: early!, rows: emptyRows(), checkpoints: [], resumePoints: [] };
    for (const m of encodeBatch(back, 1, 1 << 20)) await publish(Object.entries(m.headers), m.payload);
    // The leader meets them as a fence (they moved the stream's last seq) and follows.
    a.log.appendEvents([nodeEvent('after-the-copy', 9999)]);
    await expect(a.r.flush()).rejects.toBeInstanceOf(FencedError);
    const fa = a.r.follow();
    await fa.caughtUp;
    // Before: every replica took the copy's end as the group's and truncated to it (63 rows -> 15).
    expect(samePosition(a.log.position(), acked)).toBe(true);
    expect(a.log.truncations().map((t) => t.rowsDropped)).toEqual([1]); // its own unflushed event only
    await fb.stop();
    const fb2 = b.r.follow(); // a restarted follower (or one being elected) catches up the same way
    await fb2.caughtUp;
    expect(samePosition(b.log.position(), acked)).toBe(true);
    expect(b.log.truncations()).toEqual([]);
    expect(
      lines.filter((l) => l.includes(`SB_LOG_${g} seq`) && /does not continue the group's log/.test(l)).length,
    ).toBe(2);
    expect(lines.some((l) => l.includes(`SB_LOG_${g} seq`) && /end is not past its start/.test(l))).toBe(true);
    // L4: b claims term 2; then a batch of term 1 that does continue the group's end (the deposed
    // leader's rows, published by hand: its own conditional append would be refused) is not applied.
    await fb2.stop();
    await fa.stop();
    await b.r.claim(2);
    a.log.appendEvents([nodeEvent('stale-term', 9998)]);
    for (const m of encodeBatch(a.log.exportRows(acked), 1, 1 << 20))
      await publish(Object.entries(m.headers), m.payload);
    const c = await replica(g); // a new replica reads the whole stream
    const fc = c.r.follow();
    await fc.caughtUp;
    expect(samePosition(c.log.position(), acked)).toBe(true);
    expect(lines.some((l) => l.includes(`SB_LOG_${g} seq`) && /a batch of term 1 after a term 2 claim/.test(l))).toBe(
      true,
    );
    // The leader is fenced by it, claims again (its catch-up skips it too), and the group goes on.
    b.log.appendEvents([nodeEvent('next', 10_000)]);
    await expect(b.r.flush()).rejects.toBeInstanceOf(FencedError);
    await b.r.claim(3);
    expect(b.log.truncations().map((t) => t.rowsDropped)).toEqual([1]);
    b.log.appendEvents([nodeEvent('next', 10_001)]);
    await b.r.flush();
    await until(() => samePosition(c.log.position(), b.log.position()), "the new replica to get the leader's batch");
    expect(c.log.events().some((e) => e.name === 'stale-term')).toBe(false);
    expect(replicaDigest(c.log)).toEqual(replicaDigest(b.log));
    await fc.stop();
    for (const x of [a, b, c]) {
      await x.r.close();
      x.log.close();
    }
  }, 60_000);

  it("fencing: after another replica claims, the old leader's flush is refused; it follows, and nothing it wrote after the fence stays in its file", async () => {
    const g = group();
    const a = await replica(g);
    const b = await replica(g);
    await a.r.claim(1);
    await writeHistory(a.log, { seed: 11, steps: 10, after: () => a.r.flush() });
    await b.r.claim(2);
    expect(samePosition(b.log.position(), a.log.position())).toBe(true);
    const groupAt = a.log.position();
    // The deposed leader commits locally, then its flush meets the fence.
    a.log.appendEvents([
      {
        kind: 'Node',
        type: 'ADDED',
        origin: 'watch',
        namespace: '',
        name: 'stale',
        uid: 'u-stale',
        resourceVersion: '9999',
        object: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'stale' } },
      },
    ]);
    a.log.recordOperation({ kind: 'pin', actor: 'stale leader', reason: 'after the fence', params: {} } as never);
    await expect(a.r.flush()).rejects.toBeInstanceOf(FencedError);
    await expect(a.r.flush()).rejects.toBeInstanceOf(FencedError);
    // The new leader continues the numbering: no gap, no duplicate.
    const vBefore = b.log.latestVersion()?.version ?? 0;
    const seqBefore = b.log.lastSeq();
    await writeHistory(b.log, { seed: 12, steps: 10, after: () => b.r.flush() });
    expect(b.log.events({ fromSeq: seqBefore + 1 })[0]!.seq).toBe(seqBefore + 1);
    expect(b.log.versions({ from: vBefore + 1 })[0]?.version ?? vBefore + 1).toBe(vBefore + 1);
    const f = a.r.follow();
    await f.caughtUp;
    await until(() => samePosition(a.log.position(), b.log.position()), 'the deposed leader to follow');
    expect(replicaDigest(a.log)).toEqual(replicaDigest(b.log));
    expect(a.log.events().some((e) => e.name === 'stale')).toBe(false);
    expect(a.log.operations().some((o) => o.actor === 'stale leader')).toBe(false);
    const [t, ...more] = a.log.truncations();
    expect(more).toEqual([]);
    expect(t!.rowsDropped).toBe(2);
    expect(samePosition(t!.to, groupAt)).toBe(true);
    expect(t!.dropped.rows.events[0]![8]).toBe('9999');
    expect(lines.some((l) => /dropped 2 rows .*truncation \d+ in replication_truncations/.test(l))).toBe(true);
    await f.stop();
    for (const x of [a, b]) {
      await x.r.close();
      x.log.close();
    }
  }, 60_000);

  it("kill -9 between local commit and flush: on restart the file is truncated back to the stream, recorded with the dropped rows; acknowledged rows all stay, the dropped rows' resume point does not", async () => {
    const g = group();
    const file = tmp.file();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(import.meta.dirname, 'support/replication-crash-child.ts'), file, nats.url, g],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const signal = await new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_c, s) => res(s)));
    expect(signal, err).toBe('SIGKILL');
    const died = JSON.parse(out.trim()) as {
      acked: LogPosition;
      ackedResume: string;
      ackedRows: number;
      localRows: number;
    };
    expect(died.localRows).toBe(died.ackedRows + 2);
    const a = await replica(g, file);
    expect(a.log.events().some((e) => e.name === 'unflushed')).toBe(true);
    expect(a.log.resumeStore().load('Service')).toBe('777'); // committed with the unflushed event
    // The mark is the last flush's: the restart reads no batch before it truncates.
    expect(samePosition(a.log.replicationMark()!.position, died.acked)).toBe(true);
    const f = a.r.follow();
    await f.caughtUp;
    expect(samePosition(a.log.position(), died.acked)).toBe(true);
    expect(a.log.events().some((e) => e.name === 'unflushed')).toBe(false);
    // An informer resuming from rv 777 would never see the dropped event again (a delete lost for
    // good). No batch was read, so the group's resume points are unknown here: none are kept, and
    // the informer relists, diffing against the objects the log holds.
    expect(died.ackedResume).toBe('1000');
    expect(a.log.resumeStore().load('Service')).toBeUndefined();
    const [t, ...more] = a.log.truncations();
    expect(more).toEqual([]);
    expect(t).toMatchObject({ rowsDropped: 2, reason: expect.stringMatching(/never appended/) });
    expect(t!.dropped.rows.operations[0]![3]).toBe('committed, never flushed');
    const status = spawnSync(
      process.execPath,
      [path.join(import.meta.dirname, '../../../bin/switchboard'), 'db', 'status', '--db', file, '--json'],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(status.stdout)).toMatchObject({
      replicationStream: `SB_LOG_${g}`,
      truncations: 1,
      rowsTruncated: 2,
    });
    // A replica bootstrapped from the stream alone agrees with it row for row.
    const b = await replica(g);
    const fb = b.r.follow();
    await fb.caughtUp;
    expect(replicaDigest(b.log)).toEqual({ ...replicaDigest(a.log), resume: died.ackedResume });
    expect(rowCount(b.log.position())).toBe(died.ackedRows);
    // And the restarted one can lead on: numbering continues after the acknowledged rows.
    await f.stop();
    await a.r.claim(2);
    const next = a.log.appendEvents([
      {
        kind: 'Node',
        type: 'ADDED',
        origin: 'watch',
        namespace: '',
        name: 'after',
        uid: 'u-after',
        resourceVersion: '778',
        object: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'after' } },
      },
    ]);
    expect(next).toEqual([died.acked.chains.events.id + 1]);
    await a.r.flush();
    await until(() => samePosition(b.log.position(), a.log.position()), "the follower to get the new leader's batch");
    await fb.stop();
    for (const x of [a, b]) {
      await x.r.close();
      x.log.close();
    }
  }, 60_000);

  it('a trimmed stream: a new replica starts from the newest snapshot plus the tail, and one that stopped before the trim catches up the same way', async () => {
    const g = group();
    const { a, b } = await leaderAndStoppedFollower(g, 41);
    const bLog = await openLog(b.file);
    const bMark = bLog.replicationMark()!;
    bLog.close();
    await writeHistory(a.log, { seed: 42, steps: 60, after: () => a.r.flush() });
    const jsm = await jetstreamManager(nc);
    let first = 0;
    await until(() => {
      void jsm.streams.info(logStreamName(g)).then((i) => {
        first = i.state.first_seq;
      });
      return first > bMark.streamSeq + 1;
    }, 'the stream to be trimmed past the stopped follower');
    expect(lines.some((l) => l.includes(`SB_LOG_${g}: snapshot at seq`))).toBe(true);
    const want = replicaDigest(a.log);
    const c = await replica(g);
    const fc = c.r.follow();
    await fc.caughtUp;
    expect(replicaDigest(c.log)).toEqual(want);
    const b2 = await replica(g, b.file);
    const fb2 = b2.r.follow();
    await fb2.caughtUp;
    expect(replicaDigest(b2.log)).toEqual(want);
    expect(b2.log.truncations()).toEqual([]);
    expect(lines.filter((l) => l.includes(`SB_LOG_${g}: caught up from snapshot`)).length).toBe(2);
    await fc.stop();
    await fb2.stop();
    for (const x of [a, b2, c]) {
      await x.r.close();
      x.log.close();
    }
  }, 90_000);
});

/**
 * A leader snapshotting every 40 rows and a follower that followed `seed`'s history to its end,
 * then stopped and closed its file (`bAt`: where that file stands).
 */
async function leaderAndStoppedFollower(g: string, seed: number) {
  const a = await replica(g, tmp.file(), 40);
  const b = await replica(g);
  await a.r.claim(1);
  const fb = b.r.follow();
  await fb.caughtUp;
  await writeHistory(a.log, { seed, steps: 8, after: () => a.r.flush() });
  await until(() => samePosition(a.log.position(), b.log.position()), 'the follower to reach the leader');
  await fb.stop();
  await b.r.close();
  const bAt = b.log.position();
  b.log.close();
  return { a, b, bAt };
}

describe('replicated event log: a follower away past the compaction cut', () => {
  it("one whose rows end before the group's compacted snapshot is refused in words that say what to do, its file untouched", async () => {
    const g = group();
    const { a, b, bAt } = await leaderAndStoppedFollower(g, 61);
    // while b is away the leader's log is compacted past b's rows, then snapshotted (twice: the
    // stream keeps batches from the second newest snapshot) and its stream trimmed
    await writeHistory(a.log, { seed: 62, steps: 20, after: () => a.r.flush() });
    expect(compactLog(a.log, a.log.latestVersion()!.version).eventsRemoved).toBeGreaterThan(0);
    expect(a.log.oldestSeq()).toBeGreaterThan(bAt.chains.events.id + 1);
    // then ACKs only (a compacted log rebuilds no version before its cut, which a random history's
    // pins ask for), until two snapshots of the compacted log are made
    // made ones that trimmed the stream only: a snapshot that failed (a timeout under load) says
    // 'snapshot at seq N failed', and one that could not list the earlier ones trims nothing; both
    // leave b's next batches in the stream, and b then rightly catches up from them (CI, not reproduced)
    const snapshots = () =>
      lines.filter((l) => l.includes(`SB_LOG_${g}: snapshot at seq`) && l.includes('; stream trimmed below seq'))
        .length;
    const before = snapshots();
    const version = a.log.latestVersion()!.version;
    for (let i = 0; snapshots() < before + 2; i++) {
      if (i > 5000) throw new Error('no two snapshots after 5000 ACK rows');
      const at = new Date(Date.UTC(2025, 1, 1, 0, 0, i)).toISOString();
      a.log.recordAck({ type: 'ACK', node: `node-${i % 3}`, version, configRevision: 0, at } as never);
      if (i % 10 === 9) await a.r.flush();
    }

    const b2 = await replica(g, b.file);
    const fb2 = b2.r.follow();
    await expect(fb2.caughtUp).rejects.toThrow(
      /this file's events end at row \d+, but the group's log was compacted past it while this replica was away: .*move this file aside \(or start with an empty --db\) to bootstrap from the snapshot/,
    );
    expect(fb2.problem()).toMatch(/compacted past it while this replica was away/);
    await fb2.stop();
    expect(b2.log.position()).toEqual(bAt);
    expect(b2.log.truncations()).toEqual([]);
    // as told: an empty file bootstraps from the snapshot and agrees with the leader
    const c = await replica(g);
    const fc = c.r.follow();
    await fc.caughtUp;
    expect(c.log.position()).toEqual(a.log.position());
    await fc.stop();
    for (const x of [a, b2, c]) {
      await x.r.close();
      x.log.close();
    }
  }, 90_000);
});

describe("replicated event log: batches larger than the server's max payload", () => {
  it('go as parts and arrive whole; parts a writer never finished are given up, and the next claim appends after them', async () => {
    const small = await startNatsServer({ jetstream: true, config: 'max_payload: 16384' });
    const snc = await connect({ servers: small.url });
    const open = async (file = tmp.file()) => {
      const log = await openLog(file);
      return { log, r: await createLogReplicator({ log, nc: snc, group: 'parts', replicas: 1, logger, id: file }) };
    };
    try {
      const a = await open();
      const b = await open();
      await a.r.claim(1);
      const fb = b.r.follow();
      await fb.caughtUp;
      // 30 steps between flushes: one batch of well over 16 KB.
      let n = 0;
      await writeHistory(a.log, {
        seed: 51,
        steps: 60,
        after: async () => {
          if (++n % 30 === 0) await a.r.flush();
        },
      });
      await until(() => samePosition(a.log.position(), b.log.position()), 'the follower to get the multi-part batches');
      const js = jetstream(snc);
      const info = await (await jetstreamManager(snc)).streams.info(logStreamName('parts'));
      expect(info.state.messages).toBeGreaterThan(3); // term marker + parts of 2 batches
      expect(replicaDigest(b.log)).toEqual(replicaDigest(a.log));
      // A writer dies after the first part of three: followers must not apply anything of it.
      const h = natsHeaders();
      for (const [k, v] of Object.entries({
        'Sb-Log': 'rows',
        'Sb-Log-Batch': 'dead',
        'Sb-Log-Part': '1/3',
        'Sb-Log-Term': '1',
      }))
        h.set(k, v);
      await js.publish(logSubject('parts'), new TextEncoder().encode('{"from":'), { headers: h });
      await fb.stop();
      await b.r.claim(2);
      await writeHistory(b.log, { seed: 52, steps: 5, after: () => b.r.flush() });
      const fa = a.r.follow();
      await fa.caughtUp;
      await until(() => samePosition(a.log.position(), b.log.position()), 'the old leader to follow the new one');
      expect(replicaDigest(a.log)).toEqual(replicaDigest(b.log));
      expect(lines.some((l) => /batch dead from seq \d+ left incomplete before a term marker/.test(l))).toBe(true);
      await fa.stop();
      for (const x of [a, b]) {
        await x.r.close();
        x.log.close();
      }
    } finally {
      await snc.close();
      await small.stop();
    }
  }, 60_000);
});

// Review5 F3: a lone nats-server 2.9 refuses to create a stream with 3 replicas but accepts an
// update of an existing one to 3, and the log stream's refusals were plain errors (exit 1).
describe('--replicas beyond a lone server', () => {
  it('is refused as the flag (ReplicasRefused) before any stream is made or resized; existing streams keep their replicas', async () => {
    const g = group();
    const first = await replica(g); // the log stream exists with 1 replica
    await first.r.close();
    first.log.close();
    const log = await openLog(tmp.file());
    try {
      const open = (group: string) => createLogReplicator({ log, nc, group, replicas: 3, logger, id: 'r3' });
      const line =
        '--replicas 3: the NATS server is not clustered (1 server); use --replicas 1 or a cluster of at least 3';
      for (const name of [g, group()]) {
        const e = await open(name).catch((x: unknown) => x);
        expect(e, name).toBeInstanceOf(ReplicasRefused);
        expect((e as Error).message).toBe(line);
      }
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(logStreamName(g))).config.num_replicas).toBe(1); // before: moved to 3
      // the versions stream and buckets go through ensureStreamReplicas: the same refusal, nothing resized
      const e = await ensureStreamReplicas(nc, jsm, logStreamName(g), 3).catch((x: unknown) => x);
      expect((e as Error).message).toBe(line);
      expect((await jsm.streams.info(logStreamName(g))).config.num_replicas).toBe(1);
    } finally {
      log.close();
    }
  });
});
