import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplicasRefused, isTransientJetStreamError, retryTransient } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

/** Which failures a startup step or the log replicator waits out, on errors a real nats-server gives. */
let server: NatsServerHandle;
let plain: NatsServerHandle;
let nc: NatsConnection;
let ncPlain: NatsConnection;
beforeAll(async () => {
  server = await startNatsServer({ jetstream: true });
  plain = await startNatsServer({ jetstream: false });
  nc = await connect({ servers: server.url });
  ncPlain = await connect({ servers: plain.url });
});
afterAll(async () => {
  await nc?.close();
  await ncPlain?.close();
  await server?.stop();
  await plain?.stop();
});

describe('transient JetStream failures', () => {
  it('no responders (JetStream not up on that server) and an unanswered request are transient, wrapped or not', async () => {
    const noResponders = await ncPlain.request('$JS.API.INFO', undefined, { timeout: 500 }).catch((e: unknown) => e);
    expect(isTransientJetStreamError(noResponders)).toBe(true);
    const sub = nc.subscribe('sb.test.silent'); // a responder that never answers
    const timedOut = await nc.request('sb.test.silent', undefined, { timeout: 100 }).catch((e: unknown) => e);
    sub.unsubscribe();
    expect(isTransientJetStreamError(timedOut)).toBe(true);
    expect(isTransientJetStreamError(new Error('opening the log stream: cannot create it', { cause: timedOut }))).toBe(
      true,
    );
  });

  it('an API refusal (stream not found), a replicas refusal and a plain error are not', async () => {
    const jsm = await jetstreamManager(nc);
    const notFound = await jsm.streams.info('NO_SUCH_STREAM').catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(JetStreamApiError);
    expect(isTransientJetStreamError(notFound)).toBe(false);
    expect(isTransientJetStreamError(new ReplicasRefused('--replicas 5: larger than the NATS cluster'))).toBe(false);
    expect(isTransientJetStreamError(new Error('permissions violation for publish'))).toBe(false);
    expect(isTransientJetStreamError('timeout')).toBe(false); // not an Error at all
  });

  it('retryTransient backs off (doubling, capped) and gives up with the last error once the time is spent', async () => {
    let t = 0;
    const pauses: number[] = [];
    let calls = 0;
    const e = await retryTransient(
      async () => {
        calls++;
        throw new Error('timeout');
      },
      {
        withinMs: 5000,
        pauseMs: 250,
        maxPauseMs: 1000,
        now: () => t,
        sleep: async (ms) => {
          pauses.push(ms);
          t += ms;
        },
      },
    ).catch((x: unknown) => x);
    expect((e as Error).message).toBe('timeout');
    expect(pauses).toEqual([250, 500, 1000, 1000, 1000, 1000]);
    expect(calls).toBe(7);
  });
});
