import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { createLogReplicator, type EventLog } from '../../../libs/eventlog/index.ts';
import { SnapshotStore, snapshotBucket } from '../../../libs/eventlog/replication-snapshots.ts';
import { nodeEvent } from './support/node-event.ts';
import { caughtUpWith, logReplica, replicaDigest, writeHistory } from './support/replicated-history.ts';
import { openLog, tempDir } from './support/temp-log.ts';

/**
 * Limits someone gives the group's log stream (`nats stream edit SB_LOG_<group> --max-bytes ...
 * --discard old`; probe17 N1): it dropped batches a replica joining later still needed. A
 * replicator opening the stream takes them off and says so.
 */
const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
const lines: string[] = [];
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

it("limits given to the group's log stream are taken off when a replicator opens it; a replica joining later gets every row", async () => {
  const a = await logReplica(nc, 'lim', { file: tmp.file(), lines });
  await a.r.claim(1);
  await writeHistory(a.log, { seed: 3, steps: 3, after: () => a.r.flush() });
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info('SB_LOG_lim');
  await jsm.streams.update('SB_LOG_lim', {
    ...info.config,
    max_bytes: info.state.bytes + 3000,
    discard: DiscardPolicy.Old,
  });
  const b = await logReplica(nc, 'lim', { file: tmp.file(), lines }); // another planner starts
  expect(
    lines.filter((l) => /^log stream SB_LOG_lim had limits of its own \(max_bytes \d+, discard old\)/.test(l)),
  ).toHaveLength(1);
  expect((await jsm.streams.info('SB_LOG_lim')).config.max_bytes).toBe(-1);
  await writeHistory(a.log, { seed: 4, steps: 20, after: () => a.r.flush() });
  const f = b.r.follow();
  await caughtUpWith(b, a, 'the replica that joined after the limit');
  await f.stop();
  expect(replicaDigest(b.log)).toEqual(replicaDigest(a.log));
  expect((await jsm.streams.info('SB_LOG_lim')).state.first_seq).toBe(1);
  await b.r.close();
  await a.r.close();
  b.log.close();
  a.log.close();
}, 60_000);

// The log's snapshots live in an object store (stream OBJ_sb_logsnap_<group>) that was not looked
// at: max_bytes with discard old there dropped the chunks of the stored snapshot (its metadata
// stays), and a replica too far behind for the stream that read it waited for ever; with discard
// new (the object store's own policy) the next snapshot was refused. Taken off at open now, and
// said; a snapshot already missing chunks is refused in one line instead of read.
it("limits given to the log snapshots' object store are taken off when a replicator opens it, and said", async () => {
  const g = 'limsnap';
  const objects = `OBJ_${snapshotBucket(g)}`;
  const said: string[] = [];
  const open = async (log: EventLog) =>
    createLogReplicator({
      log,
      nc,
      group: g,
      replicas: 1,
      id: 'p',
      logger: (l) => said.push(l),
      snapshotEveryRows: 40,
    });
  const log = await openLog(tmp.file());
  let r = await open(log);
  await r.claim(1);
  log.appendEvents(Array.from({ length: 50 }, (_, i) => nodeEvent(`node-${i}-${'x'.repeat(200)}`, i + 1)));
  await r.flush();
  await expect.poll(() => said.some((l) => l.includes('snapshot at seq')), { timeout: 10_000 }).toBe(true);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(objects);
  await jsm.streams.update(objects, {
    ...info.config,
    max_bytes: Math.floor(info.state.bytes / 2),
    discard: DiscardPolicy.Old,
  });
  // the limit drops the stored snapshot's first chunks: a replica reading it waited for ever; now
  // it is refused in one line and not used (nothing older here: the stream is read instead)
  const store = await SnapshotStore.open({
    nc,
    jsm,
    group: g,
    stream: `SB_LOG_${g}`,
    replicas: 1,
    say: (l) => said.push(l),
  });
  await expect(store.newest(0)).resolves.toBeUndefined();
  expect(said).toContainEqual(
    expect.stringMatching(
      /^log snapshot seq-2 refused: 0 of its \d+ chunks are held \(dropped by a limit on stream OBJ_/,
    ),
  );
  await r.close();
  r = await open(log); // the planner restarts
  expect(said.filter((l) => l.startsWith(`snapshot store ${objects} had limits of its own`))).toEqual([
    expect.stringMatching(/\(max_bytes \d+, discard old\): .*taken off/),
  ]);
  expect((await jsm.streams.info(objects)).config).toMatchObject({ max_bytes: -1 });
  await r.close();
  await open(log).then((again) => again.close());
  expect(said.filter((l) => l.includes('had limits of its own'))).toHaveLength(1); // nothing left to take off
  log.close();
}, 60_000);
