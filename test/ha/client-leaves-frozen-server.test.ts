import { describe, expect, it } from 'vitest';
import { connectBus } from '../../libs/bus/index.ts';
import { clusterWithFreeze } from './cluster-with-freeze.ts';

/**
 * A frozen nats-server (SIGSTOP: its sockets stay open, nothing is answered, nobody is told) is
 * noticed by its clients only through unanswered PINGs. With the NATS client's defaults (a PING
 * every 2 minutes, 2 outstanding) a planner or applier stayed attached to it for minutes; every
 * component connects through connectBus, which PINGs every 2 s and drops the server after 2
 * unanswered: it must be on a live server and answering within a few seconds.
 */
const nats = clusterWithFreeze();

/** Stale after 2 unanswered PINGs (4-6 s), a reconnect, and 4 s for a loaded host. */
const BOUND_MS = 10_000;

describe('a client attached to a nats-server that freezes', () => {
  it('moves to a live server of the list within seconds, and its requests are answered there', async () => {
    const servers = nats.cluster().servers;
    const nc = nats.keep(await connectBus({ servers: nats.cluster().urls.split(','), name: 'frozen-client' }));
    const attached = servers.findIndex((s) => s.port === Number(nc.getServer().split(':').pop()));
    expect(attached).toBeGreaterThanOrEqual(0);
    // a responder on another live server: a request answered proves the client is back in the cluster
    const answering = servers.findIndex((_, i) => i !== attached);
    const responder = nats.keep(await connectBus({ servers: servers[answering]!.url, name: 'responder' }));
    responder.subscribe('frozen.echo', { callback: (_e, m) => void m.respond('here') });
    await responder.flush();
    const echo = () =>
      nc.request('frozen.echo', '', { timeout: 1000 }).then(
        (m) => m.string(),
        (e: Error) => e.message,
      );
    await expect.poll(echo, { timeout: 10_000, interval: 100 }).toBe('here'); // interest crosses the routes

    nats.freeze(servers[attached]!);
    const t0 = Date.now();
    await expect
      .poll(
        async () => {
          const port = Number(nc.getServer().split(':').pop());
          if (port === servers[attached]!.port) return 'still attached to the frozen server';
          return (await echo()) === 'here' ? 'moved and answered' : 'moved, no answer yet';
        },
        { timeout: 20_000, interval: 200 },
      )
      .toBe('moved and answered');
    const took = Date.now() - t0;
    console.log(`left the frozen server and answered in ${took} ms`);
    expect(took).toBeLessThan(BOUND_MS);
  }, 60_000);
});
