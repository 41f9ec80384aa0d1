import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createLogReplicator,
  EventLog,
  logStreamName,
  OnlineRetention,
  rowCount,
  samePosition,
  type LogPosition,
} from '../../../libs/eventlog/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { driveDataAxis, randomHistory } from './support/random-history.ts';
import { caughtUpWith, logReplica } from './support/replicated-history.ts';
import { tempDir } from './support/temp-log.ts';

// probe9 J3: the leader spaced snapshots by the rows its log had ever written (doubling), and the
// stream keeps every batch since the second newest snapshot, so under --retain-* the stream kept
// up to about every row ever written whatever the policy kept. Spaced by the rows the file holds,
// the stream stays within two spacings of what retention keeps.

const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

const FLOOR = 40;

describe("the group's log stream under retention (probe9 J3)", () => {
  it('snapshots are spaced by the rows the compacted file holds, so the stream stays bounded by them', async () => {
    const group = 'jthree';
    const lines: string[] = [];
    const log = await EventLog.open({ file: tmp.file(), sync: 'normal' });
    const r = await createLogReplicator({
      log,
      nc,
      group,
      replicas: 1,
      id: 'leader',
      logger: (l) => lines.push(l),
      snapshotEveryRows: FLOOR,
    });
    // bounded by what the group acknowledged, as the planner's (run-planner.ts reads the mark,
    // written at most once a second: here the position each flush acknowledged)
    let acked: LogPosition | null = null;
    const retention = new OnlineRetention({
      log,
      policy: { versions: 25 },
      bounds: () => ({ floors: [], acknowledged: acked }),
    });
    let maxHeld = 0;
    try {
      await r.claim(1);
      // the planner's data axis, no pins (a pin would be a retention floor the planner sets)
      const axis = DataAxis.restore(log);
      let i = 0;
      for (const step of randomHistory({ seed: 41, steps: 160, pinRate: 0 })) {
        driveDataAxis(log, [step], { checkpointEvery: 7, axis });
        const v = log.latestVersion();
        if (v)
          log.recordAck({
            type: 'ACK',
            node: `node-${i++ % 3}`,
            version: v.version,
            configRevision: 0,
            at: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
          } as never);
        await r.flush();
        acked = log.position();
        await retention.runOnce();
        maxHeld = Math.max(maxHeld, log.heldRows());
      }
      await r.close(); // waits for the snapshot under way
      const written = rowCount(log.position());
      // retention kept the file small: far fewer rows than were written
      expect(retention.status().error).toBeUndefined();
      expect(maxHeld * 3).toBeLessThan(written);
      const taken = lines.filter((l) => l.includes('snapshot at seq')).map((l) => Number(/\((\d+) rows/.exec(l)?.[1]));
      console.log(`rows written ${written}, held at most ${maxHeld}; snapshots at rows ${taken.join(', ')}`);
      expect(lines.filter((l) => /snapshot at seq \d+ failed/.test(l))).toEqual([]);
      // spaced by max(floor, rows held then), never by the doubling log (before: 40, 80, 160, 320, ...)
      expect(taken.length).toBeGreaterThan(4);
      const spacing = Math.max(FLOOR, maxHeld) + 20; // + one step's rows past the due point
      for (let i = 1; i < taken.length; i++) expect(taken[i]! - taken[i - 1]!).toBeLessThanOrEqual(spacing);
      // the stream holds the batches since the second newest snapshot: within two spacings of its end
      const jsm = await jetstreamManager(nc);
      const state = (await jsm.streams.info(logStreamName(group))).state;
      expect(state.first_seq).toBeGreaterThan(1);
      expect(written - taken.at(-2)!).toBeLessThanOrEqual(2 * spacing);
      // a new replica starts from the newest snapshot and reads the rest from the stream
      const b = await logReplica(nc, group, { file: tmp.file(), lines });
      const f = b.r.follow();
      try {
        await f.caughtUp;
        await caughtUpWith(b, { log }, 'a new replica from the snapshot and the trimmed stream');
        expect(samePosition(b.log.position(), log.position())).toBe(true);
      } finally {
        await f.stop();
        await b.r.close();
        b.log.close();
      }
    } finally {
      await r.close();
      log.close();
    }
  }, 60_000);
});
