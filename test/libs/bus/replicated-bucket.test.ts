// probe5 H9: a bucket that exists keeps its first configuration when it is "created" again, so a
// group restarted with another --lease-ttl kept the old key lifetime. replicatedBucket brings it
// to the TTL asked, up or down (the duplicate window follows it down: it may not exceed it).
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { expect, it } from 'vitest';
import { replicatedBucket } from '../../../libs/bus/index.ts';
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
