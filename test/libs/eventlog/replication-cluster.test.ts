import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogReplicator, logStreamName, samePosition, type LogPosition } from '../../../libs/eventlog/index.ts';
import { startNatsCluster, type NatsClusterHandle } from '../../support/nats-cluster.ts';
import { replicaDigest, writeHistory } from './support/replicated-history.ts';
import { openLog, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
let cluster: NatsClusterHandle;
const conns: NatsConnection[] = [];
beforeAll(async () => {
  cluster = await startNatsCluster();
}, 60_000);
afterAll(async () => {
  for (const c of conns) await c.close().catch(() => {});
  await cluster?.stop();
  tmp.cleanup();
});

async function client(): Promise<NatsConnection> {
  const nc = await connect({ servers: cluster.urls.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  conns.push(nc);
  return nc;
}

describe('replicated event log on a 3-server JetStream cluster (R3)', () => {
  it('killing the nats-server that leads the log stream mid-flush loses nothing acknowledged; replicas agree row for row', async () => {
    const group = `cl${process.pid}`;
    const nc = await client();
    const lines: string[] = [];
    const leaderLog = await openLog(tmp.file());
    // Flushes wait out the stream's leader election however long a loaded machine makes it.
    const leader = await createLogReplicator({
      log: leaderLog,
      nc,
      group,
      replicas: 3,
      logger: (l) => lines.push(l),
      id: 'leader',
      appendTimeoutMs: 90_000,
    });
    const follower = { log: await openLog(tmp.file()) };
    const fr = await createLogReplicator({
      log: follower.log,
      nc: await client(),
      group,
      replicas: 3,
      id: 'follower',
      logger: (l) => lines.push(`follower: ${l}`),
    });
    await leader.claim(1);
    const following = fr.follow();
    await following.caughtUp;
    const jsm = await jetstreamManager(await client());
    const stream = logStreamName(group);
    expect((await jsm.streams.info(stream)).config.num_replicas).toBe(3);
    let flushes = 0;
    let killed: string | undefined;
    let acked: LogPosition | undefined;
    const killing: Promise<void>[] = [];
    await writeHistory(leaderLog, {
      seed: 31,
      steps: 60,
      after: async () => {
        // The kill races the flush it follows: no await between them.
        if (++flushes === 15) {
          const info = await jsm.streams.info(stream);
          killed = info.cluster?.leader;
          const i = Number(/-n(\d+)$/.exec(killed ?? '')?.[1]) - 1;
          expect(cluster.servers[i], `stream leader ${killed}`).toBeDefined();
          killing.push(cluster.servers[i]!.kill());
        }
        await leader.flush();
        acked = leaderLog.position();
      },
    });
    await Promise.all(killing);
    expect(killed).toBeDefined();
    const after = await jsm.streams.info(stream);
    expect(after.cluster?.leader).not.toBe(killed);
    // Everything flush() acknowledged is in the stream: a replica bootstrapped now holds it all.
    const fresh = await openLog(tmp.file());
    const freshR = await createLogReplicator({ log: fresh, nc: await client(), group, replicas: 3, id: 'fresh' });
    const f2 = freshR.follow();
    await f2.caughtUp;
    expect(samePosition(fresh.position(), acked!)).toBe(true);
    const want = replicaDigest(leaderLog);
    expect(want.verified).toBe(true);
    expect(replicaDigest(fresh)).toEqual(want);
    // The follower that watched it live agrees too.
    // Its server may be the one killed: the ordered consumer moves to another (generous under load).
    const deadline = Date.now() + 60_000;
    while (!samePosition(follower.log.position(), acked!) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(
      replicaDigest(follower.log),
      `follower at ${JSON.stringify(fr.position())}; log: ${lines.slice(-5).join(' | ')}`,
    ).toEqual(want);
    // The CLI contract: `replay --to-version N` prints the same hash from every replica's file.
    const n = leaderLog.latestVersion()!.version;
    const replay = (file: string) => {
      const r = spawnSync(
        process.execPath,
        [path.join(import.meta.dirname, '../../../bin/switchboard'), 'replay', '--db', file, '--to-version', String(n)],
        { encoding: 'utf8' },
      );
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    const printed = [leaderLog.file, follower.log.file, fresh.file].map(replay);
    expect(printed[0]).toMatch(new RegExp(`^version ${n} hash [0-9a-f]{64}`));
    expect(new Set(printed).size).toBe(1);
    await f2.stop();
    await following.stop();
    for (const [r, l] of [
      [leader, leaderLog],
      [fr, follower.log],
      [freshR, fresh],
    ] as const) {
      await r.close();
      l.close();
    }
  }, 180_000);
});
