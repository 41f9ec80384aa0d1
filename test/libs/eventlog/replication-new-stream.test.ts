import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AHEAD_OF_NEW_STREAM, backupLog, type EventLog, type LogReplicator } from '../../../libs/eventlog/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { caughtUpWith, logReplica, replicaDigest, writeHistory } from './support/replicated-history.ts';
import { tempDir } from './support/temp-log.ts';

/**
 * probe13 R4: a whole site restored from backups of different ages after NATS lost its store. The
 * older backup's planner claims the new log stream first and seeds it; a member on a newer backup
 * then found its rows beyond the group and dropped them as an unflushed tail (versions, a
 * rolled-out config revision, operations), said only on its stderr. Its mark names the stream
 * those rows were acknowledged in, made again since: it now refuses, keeping them, unless told to
 * accept the drop. (The unflushed tail of this very stream is still dropped: replication.test.ts.)
 */
const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
const lines: string[] = [];
const open: { log: EventLog; r: LogReplicator }[] = [];
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
afterAll(async () => {
  for (const m of open) {
    await m.r.close().catch(() => undefined);
    m.log.close();
  }
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

async function member(file: string, acceptTruncation = false) {
  const m = await logReplica(nc, 'site', { file, lines, acceptTruncation });
  open.push(m);
  return m;
}

/** After a restart JetStream answers a few seconds later; a replicator opened before gives up (appendTimeoutMs 2 s). */
async function jetStreamAnswers(): Promise<void> {
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  await expect
    .poll(
      () =>
        jsm.getAccountInfo().then(
          () => true,
          () => false,
        ),
      { timeout: 30_000, interval: 200 },
    )
    .toBe(true);
}

async function closeMember(m: { log: EventLog; r: LogReplicator }) {
  open.splice(open.indexOf(m), 1);
  await m.r.close();
  m.log.close();
}

describe('a log stream made again after NATS lost its store, holding less than a member', () => {
  it('the member on the newer backup refuses to drop its rows, follow or lead (also after a restart), naming them; --accept-truncation drops them', async () => {
    const site = await member(tmp.file());
    await site.r.claim(1);
    await writeHistory(site.log, { seed: 41, steps: 6, after: () => site.r.flush() });
    const older = tmp.file();
    backupLog(site.log, older);
    // step 0 of this history records a config revision: it is among the rows the older backup lacks
    await writeHistory(site.log, { seed: 42, steps: 5, after: () => site.r.flush() });
    await site.r.close(); // its mark (in the file, so in the backups) names the stream of today
    const newer = tmp.file();
    const newerToo = tmp.file();
    backupLog(site.log, newer);
    backupLog(site.log, newerToo);
    const newest = site.log.position();
    open.splice(open.indexOf(site), 1);
    site.log.close();

    await nats.restartEmpty();
    await jetStreamAnswers();
    const p1 = await member(older); // started first: its file seeds the new stream
    await p1.r.claim(1);
    await p1.r.flush();
    const groupEnd = p1.log.position();
    expect(groupEnd.chains.versions.id).toBeLessThan(newest.chains.versions.id);

    const p2 = await member(newer);
    const f = p2.r.follow();
    const refused = await f.caughtUp.then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(refused?.code).toBe(AHEAD_OF_NEW_STREAM);
    const v = `versions ${groupEnd.chains.versions.id + 1}–${newest.chains.versions.id}`;
    expect(refused?.message).toContain(v);
    expect(refused?.message).toMatch(/config revisions? \d+/);
    expect(refused?.message).toContain('--accept-truncation');
    expect(f.problem()).toContain(v);
    await f.stop();
    await expect(p2.r.claim(2)).rejects.toMatchObject({ code: AHEAD_OF_NEW_STREAM });
    expect(p2.log.position()).toEqual(newest);
    expect(p2.log.truncations()).toEqual([]);

    // restarted: its mark still names the earlier stream, so it refuses again
    await closeMember(p2);
    const p2again = await member(newer);
    await expect(p2again.r.claim(2)).rejects.toMatchObject({ code: AHEAD_OF_NEW_STREAM });
    expect(p2again.log.position()).toEqual(newest);
    expect(p2again.log.truncations()).toEqual([]);
    await closeMember(p2again);

    // told to accept: the rows go (recorded), the file is the group's log
    const p3 = await member(newerToo, true);
    const f3 = p3.r.follow();
    await f3.caughtUp;
    await caughtUpWith(p3, p1, 'after accepting the drop');
    const [t] = p3.log.truncations();
    expect(t?.reason).toMatch(/--accept-truncation/);
    expect(t?.from).toEqual(newest);
    expect(replicaDigest(p3.log)).toEqual(replicaDigest(p1.log));
    await f3.stop();
  }, 60_000);
});
