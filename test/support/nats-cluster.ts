import { connect } from '@nats-io/transport-node';
import { jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { freePort, startNatsServer, type NatsServerHandle } from './nats-server.ts';

/**
 * A real JetStream cluster of `size` nats-servers (default 3) on loopback: each its own free
 * client port, cluster port and store dir (startNatsServer's temp dir), routes on 127.0.0.1 to the
 * others, one cluster name. `ready()` waits until JetStream has a meta leader (streams can be made).
 * Servers are started and stopped by PID through their handles; `stop()` removes every dir, and
 * every process is killed when the test process exits (nats-server.ts), so a failing test leaves
 * nothing behind.
 */
export interface NatsClusterHandle {
  readonly servers: readonly NatsServerHandle[];
  /** All client URLs, comma-separated, as the components take them (--nats URL,URL,URL). */
  readonly urls: string;
  /** Waits until the cluster's JetStream answers (a meta leader is elected). */
  ready(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  readonly size?: number;
  /** Extra config text for every server (authorization, accounts, ...). */
  readonly config?: string;
  /** A user allowed to ask for JetStream account info, when `config` sets authorization. */
  readonly auth?: { readonly user: string; readonly pass: string };
  /** Return as soon as the servers listen, before JetStream has a meta leader (default: wait). */
  readonly waitReady?: boolean;
}

export async function startNatsCluster(o: NatsClusterOptions = {}): Promise<NatsClusterHandle> {
  const size = o.size ?? 3;
  const name = `sb-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const routePorts: number[] = [];
  while (routePorts.length < size) {
    const p = await freePort();
    if (!routePorts.includes(p)) routePorts.push(p);
  }
  const servers: NatsServerHandle[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  try {
    // Started together: a server with routes to peers not yet up keeps retrying them.
    const started = await Promise.all(
      routePorts.map((routePort, i) =>
        startNatsServer({
          jetstream: true,
          config: [
            `server_name: ${JSON.stringify(`${name}-n${i + 1}`)}`,
            'cluster {',
            `  name: ${JSON.stringify(name)}`,
            `  listen: "127.0.0.1:${routePort}"`,
            `  routes: [${routePorts
              .filter((p) => p !== routePort)
              .map((p) => JSON.stringify(`nats-route://127.0.0.1:${p}`))
              .join(', ')}]`,
            '}',
            o.config ?? '',
          ].join('\n'),
        }),
      ),
    );
    servers.push(...started);
  } catch (e) {
    await stop();
    throw e;
  }
  const urls = servers.map((s) => s.url).join(',');
  const handle: NatsClusterHandle = {
    servers,
    urls,
    async ready(timeoutMs = 30_000) {
      await waitForJetStream(
        servers.map((s) => s.url),
        timeoutMs,
        o.auth,
      );
    },
    stop,
  };
  try {
    if (o.waitReady !== false) await handle.ready();
  } catch (e) {
    await stop();
    throw e;
  }
  return handle;
}

/**
 * Polls account info until JetStream answers: a fresh cluster needs a meta leader elected, and a
 * restarted member needs its peers. Polling because there is no event for "meta leader elected".
 */
export async function waitForJetStream(
  urls: string[],
  timeoutMs: number,
  auth?: { user: string; pass: string },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const nc = await connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 200, ...auth });
  try {
    let last = '';
    for (;;) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2000 });
        await jsm.getAccountInfo();
        if (urls.length < 2 || (await placesEveryReplica(jsm, urls.length))) return;
        last = `a stream of ${urls.length} replicas cannot be placed yet`;
      } catch (e) {
        last = (e as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`JetStream cluster not ready in ${timeoutMs} ms: ${last}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await nc.close();
  }
}

/**
 * Whether the meta group places a stream on every server: a meta leader answers account info
 * while the other servers are still joining, and a test's R3 stream then met "no suitable peers
 * for placement" (a fresh-clone CI at load 14). A scratch memory stream is made and removed.
 */
async function placesEveryReplica(jsm: JetStreamManager, replicas: number): Promise<boolean> {
  const name = `SB_TEST_PLACEMENT_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  try {
    await jsm.streams.add({
      name,
      subjects: [`sb-test-placement.${name}`],
      num_replicas: replicas,
      storage: StorageType.Memory,
    });
  } catch (e) {
    // a user not allowed to make streams cannot tell: account info answering is all it can wait for
    return /permission|authorization/i.test((e as Error).message);
  }
  await jsm.streams.delete(name).catch(() => undefined);
  return true;
}
