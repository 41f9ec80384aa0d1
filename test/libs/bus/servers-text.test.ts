import { describe, expect, it } from 'vitest';
import { connectBus, serversText, watchConnectionRefusals } from '../../../libs/bus/index.ts';
import { startNatsServer } from '../../support/nats-server.ts';

/** A password in a server URL is a node's credential: never in errors, logs or health answers (review3 L2). */
describe('server URLs as text', () => {
  it('keep scheme, host and port, and hide user info', () => {
    expect(serversText(['nats://node-a:S3cret@10.0.0.1:4222', 'tls://tok@h:1', 'nats://h:4222'])).toBe(
      'nats://***@10.0.0.1:4222,tls://***@h:1,nats://h:4222',
    );
    expect(serversText('nats://127.0.0.1:4222')).toBe('nats://127.0.0.1:4222');
  });

  it('a failed connect names the server without the password', async () => {
    const e = (await connectBus({ servers: 'nats://node-a:S3cretPassw0rd@127.0.0.1:1', name: 't' }).catch(
      (x: unknown) => x,
    )) as Error;
    expect(e.message).toMatch(/^NATS at nats:\/\/\*\*\*@127\.0\.0\.1:1: /);
    expect(e.message).not.toContain('S3cret');
  });

  it('a connection the server refuses for a limit names the limit, not a timeout (probe19 P19-3)', async () => {
    const nats = await startNatsServer({
      config: 'max_connections: 1\nauthorization { users = [ { user: node-a, password: S3cretPassw0rd } ] }',
    });
    const auth = { user: 'node-a', password: 'S3cretPassw0rd' };
    const first = await connectBus({ servers: nats.url, name: 'first', auth });
    try {
      const e = (await connectBus({ servers: nats.url, name: 'second', auth }).catch((x: unknown) => x)) as Error;
      // before: "NATS at nats://127.0.0.1:PORT: timeout"
      expect(e.message).toBe(`NATS at ${nats.url}: the server refuses this connection: maximum connections exceeded`);
    } finally {
      await first.close();
      await nats.stop();
    }
  }, 20_000);

  it('after a drop, the limit refusing the reconnect is told, and its end (probe19 P19-3)', async () => {
    const nats = await startNatsServer({ config: 'max_connections: 2' });
    const told = new Map<string, (string | undefined)[]>();
    const conns = await Promise.all(
      ['a', 'b'].map(async (name) => {
        // retries 250 ms apart, not the backoff to 5 s: the test waits on them
        const nc = await connectBus({ servers: nats.url, name, extra: { reconnectDelayHandler: () => 250 } });
        told.set(name, []);
        watchConnectionRefusals(nc, (r) => told.get(name)!.push(r));
        return nc;
      }),
    );
    try {
      // NATS restarts with room for one: whichever reconnects second is refused, and says so
      await nats.reconfigure('max_connections: 1');
      await nats.restart();
      const refused = () => [...told].find(([, t]) => t.includes('maximum connections exceeded'))?.[0];
      await expect.poll(refused, { timeout: 10_000 }).toBeDefined();
      // raised again: it is back, and told so
      await nats.reconfigure('max_connections: 2');
      await expect.poll(() => told.get(refused()!)!.at(-1), { timeout: 10_000 }).toBeUndefined();
      expect(conns.every((nc) => !nc.isClosed())).toBe(true);
    } finally {
      await Promise.all(conns.map((nc) => nc.close()));
      await nats.stop();
    }
  }, 20_000);
});
