import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogReplicator,
  OnlineRetention,
  replayableFrom,
  replayVersion,
  verifyLog,
  type EventLog,
  type LogReplicator,
} from '../../../libs/eventlog/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { caughtUpWith, logReplica, writeHistory } from './support/replicated-history.ts';
import { openLog, tempDir } from './support/temp-log.ts';

/**
 * probe9 G1: the leader's retention writes a checkpoint at its cut and ships it as a batch with no
 * chain rows. Followers took it for "already here" (their chains held its end) without storing it,
 * yet moved their group end (and mark) to its checkpoint position; the next leader's first batch
 * then went from that position back to its own older checkpoint, every follower skipped it and all
 * after it while its mark moved on, and a stale replica elected later forked the group's stream.
 */
const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
const lines: string[] = [];
const opened: { log: EventLog; r: LogReplicator }[] = [];
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
afterAll(async () => {
  for (const x of opened) {
    await x.r.close().catch(() => undefined);
    x.log.close();
  }
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

async function replica(group: string, file: string): Promise<{ log: EventLog; r: LogReplicator }> {
  const x = await logReplica(nc, group, { file, lines });
  opened.push(x);
  return x;
}

/** A replica that goes (its process ends: the file stays as it is). */
async function crash(x: { log: EventLog; r: LogReplicator }): Promise<void> {
  await x.r.close();
  x.log.close();
}

/** The mark never names a position this file does not hold, checkpoint included. */
function expectMarkHeld(log: EventLog, who: string): void {
  const m = log.replicationMark();
  if (!m) return;
  expect(log.holds(m.position), `${who}: its mark's rows are in its file`).toBe(true);
  expect(log.position().checkpointSeq, `${who}: its mark's checkpoint is in its file`).toBeGreaterThanOrEqual(
    m.position.checkpointSeq,
  );
}

/**
 * What a follower must agree on with the leader `a`, whose retention removed its oldest rows (each
 * file keeps its own): its position, a chain that verifies, and the hash of every version `a`
 * still rebuilds, replayed from each file.
 */
function expectSameLog(b: EventLog, a: EventLog, who: string): void {
  expect(b.position(), who).toEqual(a.position());
  expect(verifyLog(b, { deep: true }).ok, who).toBe(true);
  const from = replayableFrom(a) ?? 1;
  const latest = a.latestVersion()!.version;
  expect(latest).toBeGreaterThan(from);
  for (let v = from; v <= latest; v++) expect(replayVersion(b, v).hash, `${who} v${v}`).toBe(replayVersion(a, v).hash);
  expect(b.resumeStore().load('Service'), who).toBe(a.resumeStore().load('Service'));
}

describe("the leader's retention checkpoint across failovers (probe9 G1)", () => {
  it('reaches every follower; the next leaders continue the same log; a restarted replica that led before neither skips nor forks it', async () => {
    const g = 'g1';
    const [fa, fb, fc] = [tmp.file('a.db'), tmp.file('b.db'), tmp.file('c.db')];
    let a = await replica(g, fa);
    await a.r.claim(1);
    // no periodic checkpoints: retention's cut then is exact, with a checkpoint written there
    await writeHistory(a.log, { seed: 91, steps: 14, checkpointEvery: 0, after: () => a.r.flush() });
    let b = await replica(g, fb);
    const c = await replica(g, fc);
    let followB = b.r.follow();
    const followC = c.r.follow();
    await caughtUpWith(b, a, 'b before retention');
    await caughtUpWith(c, a, 'c before retention');

    const retention = new OnlineRetention({
      log: a.log,
      policy: { versions: 2 },
      // every row is flushed (the leader's mark, persisted at most once a second, lags behind)
      bounds: () => ({ floors: [], acknowledged: a.log.position() }),
    });
    const before = a.log.position();
    await retention.runOnce();
    expect(retention.status().error).toBeUndefined();
    expect(a.log.position().chains).toEqual(before.chains);
    expect(a.log.position().checkpointSeq).toBeGreaterThan(before.checkpointSeq);
    await a.r.flush(); // a batch with no chain rows: the checkpoint alone
    await caughtUpWith(b, a, "b holds the leader's retention checkpoint");
    await caughtUpWith(c, a, "c holds the leader's retention checkpoint");
    expectMarkHeld(b.log, 'b');

    // failover: a goes, b leads term 2 and writes on
    await crash(a);
    await followB.stop();
    await b.r.claim(2);
    await writeHistory(b.log, { seed: 92, steps: 5, checkpointEvery: 0, after: () => b.r.flush() });
    a = await replica(g, fa); // the old leader comes back as a follower
    const followA = a.r.follow();
    await followA.caughtUp;
    await caughtUpWith(a, b, 'the restarted old leader follows the new one');
    await caughtUpWith(c, b, 'c follows the new leader');
    expectMarkHeld(a.log, 'a');
    expectMarkHeld(c.log, 'c');
    expect(a.r.position().lagRows).toBe(0);
    expect(followA.problem()).toBeUndefined();

    // next failover: b goes, the old leader leads term 3
    await crash(b);
    await followA.stop();
    await a.r.claim(3);
    await writeHistory(a.log, { seed: 93, steps: 5, checkpointEvery: 0, after: () => a.r.flush() });
    b = await replica(g, fb);
    followB = b.r.follow();
    await caughtUpWith(b, a, 'b follows the old leader again');
    await caughtUpWith(c, a, 'c follows the old leader again');
    expectSameLog(b.log, a.log, 'b');
    expectSameLog(c.log, a.log, 'c');
    // an empty --db bootstraps onto the same log
    const d = await replica(g, tmp.file('d.db'));
    const followD = d.r.follow();
    await caughtUpWith(d, a, 'an empty replica');
    expectSameLog(d.log, a.log, 'an empty replica');
    expect(lines.filter((l) => /not applied|does not continue|holds neither/.test(l))).toEqual([]);
    for (const f of [followB, followC, followD]) await f.stop();
  }, 60_000);

  it('a follower whose copy does not connect says so, keeps its mark where its rows end, cannot lead, and starts again from a snapshot written past it', async () => {
    const g = 'g1gap';
    const fileB = tmp.file('gap-b.db');
    let a = await replica(g, tmp.file('gap-a.db'));
    await a.r.claim(1);
    await writeHistory(a.log, { seed: 94, steps: 6, after: () => a.r.flush() });
    let b = await replica(g, fileB);
    let follow = b.r.follow();
    await caughtUpWith(b, a, 'b');
    await follow.stop();
    await crash(b);
    // b's mark moves past batches it never stores, as a release before this one did (probe9 G1)
    await writeHistory(a.log, { seed: 95, steps: 3, after: () => a.r.flush() });
    const skipped = a.r.position().localSeq;
    const stale = await openLog(fileB);
    const held = stale.replicationMark()!;
    stale.setReplicationMark({ ...held, streamSeq: skipped });
    stale.close();
    b = await replica(g, fileB);
    follow = b.r.follow();
    const problem = async (re: RegExp) => {
      const end = Date.now() + 15_000;
      while (!re.test(follow.problem() ?? '') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(follow.problem()).toMatch(re);
    };
    // at the stream's end: the end's row count says so
    await problem(
      new RegExp(
        `seq ${skipped}: the stream's last message leaves the group's log at \\d+ rows, this file's mark at \\d+ rows at that seq \\(it passed batches it never stored\\); .* cannot lead`,
      ),
    );
    await expect(b.r.claim(4)).rejects.toThrow(/it passed batches it never stored.*cannot lead/);
    follow = b.r.follow();
    // a batch after it: it does not continue the file
    await writeHistory(a.log, { seed: 96, steps: 2, after: () => a.r.flush() });
    await problem(
      new RegExp(
        `seq ${skipped + 1}: a batch from \\d+ rows, past the group's log at \\d+ rows \\(batches between were missed\\); this replica stays at seq ${skipped}`,
      ),
    );
    expect(b.log.replicationMark()!.streamSeq).toBe(skipped); // not past the batch it cannot store
    expect(b.log.holds(b.log.replicationMark()!.position)).toBe(true);
    expect(b.r.position().lagRows).toBeGreaterThan(0);
    expect(b.log.position()).toEqual(held.position);
    // it cannot lead with that file
    await expect(b.r.claim(5)).rejects.toThrow(/batches between were missed.*cannot lead/);
    follow = b.r.follow();
    // the leader (again, with a snapshot due at its next batch) writes a snapshot past the batch
    await crash(a);
    const log = await openLog(tmp.file('gap-a.db'));
    const r = await createLogReplicator({
      log,
      nc,
      group: g,
      replicas: 1,
      id: 'gap-a2',
      logger: (l) => lines.push(l),
      appendTimeoutMs: 2000,
      snapshotEveryRows: 1,
    });
    a = { log, r };
    opened.push(a);
    await a.r.claim(6);
    await writeHistory(a.log, { seed: 97, steps: 1, after: () => a.r.flush() });
    await caughtUpWith(b, a, 'b, from the snapshot');
    expect(
      lines.some(
        (l) =>
          l.includes(`SB_LOG_${g}: seq ${skipped + 1} does not continue this file`) &&
          /starting again from snapshot/.test(l),
      ),
    ).toBe(true);
    const ok = Date.now() + 5000;
    while (follow.problem() !== undefined && Date.now() < ok) await new Promise((r) => setTimeout(r, 50));
    expect(follow.problem()).toBeUndefined();
    expectSameLog(b.log, a.log, 'b');
    expect(b.log.truncations()).toEqual([]);
    await follow.stop();
  }, 60_000);
});
