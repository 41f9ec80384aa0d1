// probe5 H9: a bucket that exists keeps its first configuration when it is "created" again, so a
// group restarted with another --lease-ttl kept the old key lifetime. replicatedBucket brings it
// to the TTL asked, up or down (the duplicate window follows it down: it may not exceed it).
import { DiscardPolicy, jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { expect, it } from 'vitest';
import { GroupMembers, LeaderLease, leaseBucket, membersBucket, replicatedBucket } from '../../../libs/bus/index.ts';
import { startNatsServer } from '../../support/nats-server.ts';

it('an existing bucket takes the key lifetime asked at each open, up and down', async () => {
  const server = await startNatsServer({ jetstream: true });
  const nc = await connect({ servers: server.url });
  try {
    const jsm = await jetstreamManager(nc);
    const config = async () => (await jsm.streams.info('KV_sb_lease_g')).config;
    await replicatedBucket(nc, 'sb_lease_g', { history: 1, ttl: 6000 });
    expect((await config()).max_age).toBe(nanos(6000));
    const kv = await replicatedBucket(nc, 'sb_lease_g', { history: 1, ttl: 15_000 });
    expect((await config()).max_age).toBe(nanos(15_000));
    await replicatedBucket(nc, 'sb_lease_g', { history: 1, ttl: 2000 });
    const down = await config();
    expect(down.max_age).toBe(nanos(2000));
    expect(down.duplicate_window).toBeLessThanOrEqual(nanos(2000));
    expect(down.max_msgs_per_subject).toBe(1); // the rest of the configuration is kept
    await kv.put('leader', 'a'); // the bucket still works
    expect((await kv.get('leader'))?.string()).toBe('a');
  } finally {
    await nc.close();
    await server.stop();
  }
});

// probe17 N1: limits someone gave a bucket's stream (max_bytes with discard old drops the oldest
// entries: in sb_targets the config revisions, written once) are taken off at the next open, and said.
it('an existing bucket loses limits given to it since (max_bytes, max_msgs, another history), saying so; its entries stay', async () => {
  const server = await startNatsServer({ jetstream: true });
  const nc = await connect({ servers: server.url });
  try {
    const jsm = await jetstreamManager(nc);
    const kv = await replicatedBucket(nc, 'sb_targets', { history: 5 });
    await kv.put('config.1', 'x'.repeat(500)); // written once, read by every node for ever
    const info = await jsm.streams.info('KV_sb_targets');
    await jsm.streams.update('KV_sb_targets', {
      ...info.config,
      max_bytes: 4000,
      max_msgs: 50,
      max_msgs_per_subject: 2,
      discard: DiscardPolicy.Old,
    });
    const said: string[] = [];
    const again = await replicatedBucket(nc, 'sb_targets', { history: 5, onLimitsReset: (l) => said.push(l) });
    expect(said).toEqual([
      expect.stringMatching(
        /^bucket sb_targets had limits of its own \(max_bytes 4000, max_msgs 50, max_msgs_per_subject 2, discard old\): .*taken off/,
      ),
    ]);
    expect((await jsm.streams.info('KV_sb_targets')).config).toMatchObject({
      max_bytes: -1,
      max_msgs: -1,
      max_msgs_per_subject: 5,
    });
    for (let i = 0; i < 30; i++) await again.put('default', `target ${i} ${'y'.repeat(300)}`);
    expect((await again.get('config.1'))?.string()).toBe('x'.repeat(500));
    await replicatedBucket(nc, 'sb_targets', { history: 5, onLimitsReset: (l) => said.push(l) });
    expect(said).toHaveLength(1); // nothing left to take off
  } finally {
    await nc.close();
    await server.stop();
  }
});

// The lease and members buckets had their limits taken off at open too, but without a word (the
// targets bucket, the versions stream and the log stream said so on the planner's stderr).
it('the lease and members buckets say, as the others do, that limits given to them were taken off', async () => {
  const server = await startNatsServer({ jetstream: true });
  const nc = await connect({ servers: server.url });
  const said: string[] = [];
  const onLimitsReset = (l: string) => said.push(l);
  const self = () => ({ id: 'p1', leader: false, term: 0, lagRows: 0 });
  try {
    const jsm = await jetstreamManager(nc);
    await (await LeaderLease.open({ nc, group: 'lim', id: 'p1', ttlMs: 2000 })).close();
    await (await GroupMembers.open({ nc, group: 'lim', ttlMs: 2000, self })).close();
    for (const bucket of [leaseBucket('lim'), membersBucket('lim')]) {
      const info = await jsm.streams.info(`KV_${bucket}`);
      await jsm.streams.update(`KV_${bucket}`, { ...info.config, max_bytes: 2000, discard: DiscardPolicy.Old });
    }
    const lease = await LeaderLease.open({ nc, group: 'lim', id: 'p1', ttlMs: 2000, onLimitsReset });
    const members = await GroupMembers.open({ nc, group: 'lim', ttlMs: 2000, self, onLimitsReset });
    expect(said).toEqual([
      expect.stringMatching(
        /^bucket sb_lease_lim had limits of its own \(max_bytes 2000, discard old\): .*; taken off \(bound JetStream's disk with max_file_store\)$/,
      ),
      expect.stringMatching(
        /^bucket sb_members_lim had limits of its own \(max_bytes 2000, discard old\): .*; taken off/,
      ),
    ]);
    for (const bucket of [leaseBucket('lim'), membersBucket('lim')])
      expect((await jsm.streams.info(`KV_${bucket}`)).config.max_bytes).toBe(-1);
    await members.close();
    await lease.close();
  } finally {
    await nc.close();
    await server.stop();
  }
});
