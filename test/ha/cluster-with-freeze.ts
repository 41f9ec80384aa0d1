import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { freezeNats } from '../libs/bus/nats-freeze.ts';
import type { NatsServerHandle } from '../support/nats-server.ts';
import { startNatsCluster, type NatsClusterHandle } from '../support/nats-cluster.ts';

/**
 * A test file's 3-server JetStream cluster (made before its tests), the connections its tests
 * open (`keep`) and the server they freeze (`freeze`, SIGSTOP): after the file's tests the server
 * is thawed, the connections closed and the cluster stopped, even when a test failed.
 */
export function clusterWithFreeze(): {
  cluster(): NatsClusterHandle;
  keep(nc: NatsConnection): NatsConnection;
  freeze(server: NatsServerHandle): void;
} {
  let cluster: NatsClusterHandle | undefined;
  const conns: NatsConnection[] = [];
  let thaw = () => {};
  beforeAll(async () => {
    cluster = await startNatsCluster();
  }, 60_000);
  afterAll(async () => {
    thaw();
    for (const nc of conns) await nc.close().catch(() => undefined);
    await cluster?.stop();
  });
  return {
    cluster: () => cluster!,
    keep(nc) {
      conns.push(nc);
      return nc;
    },
    freeze(server) {
      thaw = freezeNats(server).thaw;
    },
  };
}
