import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogReplicator, EventLog, logStreamName } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { Planner } from '../../../services/planner/planner.ts';
import { writeHistory } from '../../libs/eventlog/support/replicated-history.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

// Review2 R5: a follower Planner writes nothing, not even the initial config revision. It did, into
// a fresh file, before the replicated log's catch-up; once the group's log stream was trimmed (the
// leader snapshotted twice) the catch-up goes through a snapshot, which refused the file holding
// those rows as "another history", forever: a replacement planner never joined its group.

let nats: NatsServerHandle;
let nc: NatsConnection;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-follower-fresh-'));
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('a fresh replica joins a group whose log stream was trimmed: its follower Planner (started as the group starts it, before the catch-up) writes nothing', async () => {
  const g = 'trimmed';
  const aLog = await EventLog.open({ file: path.join(dir, 'a.db'), sync: 'normal' });
  const a = await createLogReplicator({ log: aLog, nc, group: g, replicas: 1, id: 'a', snapshotEveryRows: 40 });
  const cLog = await EventLog.open({ file: path.join(dir, 'c.db'), sync: 'normal' });
  const c = await createLogReplicator({ log: cLog, nc, group: g, replicas: 1, id: 'c' });
  const f = { stop: async () => {} };
  try {
    await a.claim(1);
    await writeHistory(aLog, { seed: 42, steps: 60, after: () => a.flush() });
    const jsm = await jetstreamManager(nc);
    const firstSeq = async () => (await jsm.streams.info(logStreamName(g))).state.first_seq;
    for (let i = 0; i < 200 && (await firstSeq()) <= 1; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await firstSeq()).toBeGreaterThan(1); // trimmed: a fresh file catches up from a snapshot

    // PlannerGroup.becomeFollower's order: follow(), then the follower Planner starts at once.
    const following = c.follow();
    f.stop = following.stop;
    const follower = new Planner({
      log: cLog,
      bus: { listen() {} } as never,
      source: (() => {
        throw new Error('a follower starts no source');
      }) as never,
      initialConfig: DEFAULT_PROXY_CONFIG,
      role: 'follower',
    });
    await follower.start();
    expect(follower.config.defaultConfig()).toEqual(DEFAULT_PROXY_CONFIG); // shown meanwhile, not recorded
    await following.caughtUp;
    expect(cLog.latestVersion()?.version).toBe(aLog.latestVersion()?.version);
    expect(cLog.operations().length).toBe(aLog.operations().length);
    await follower.refresh();
    expect(follower.config.state.defaultRevision).toBe(aLog.latestConfigRevision()?.revision);
  } finally {
    await f.stop();
    await c.close();
    cLog.close();
    await a.close();
    aLog.close();
  }
}, 30_000);
