import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directGet, leaderGet, type DirectGot } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

// A planner's own reads of the versions stream go to the stream's leader (leaderGet) rather than
// to any replica (directGet, which a frozen replica may take and never answer). Both must read the
// same stored messages the same way: compared here query by query on a real nats-server.

let nats: NatsServerHandle;
let nc: NatsConnection;
const STREAM = 'LG_TEST';

beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: ['lg.>'], allow_direct: true });
  const js = jetstream(nc);
  const h = headers();
  h.set('Sb-Version', '7');
  h.set('Sb-Sig', 'c2lnbmF0dXJl+/=');
  h.append('Sb-Sig', 'second value');
  await js.publish('lg.a', new TextEncoder().encode('{"first":1}'), { headers: h });
  await js.publish('lg.b', new Uint8Array(0)); // no headers, no payload
  await js.publish('lg.a', new TextEncoder().encode('zweite ✓'), { headers: h });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

/** What a reader sees of a result: the fields and the headers it asks for. */
function seen(r: DirectGot) {
  if (!r.ok) return { ok: false, missing: r.missing, absentStream: r.absentStream ?? false, error: r.error };
  return {
    ok: true,
    seq: r.seq,
    subject: r.subject,
    data: new TextDecoder().decode(r.data),
    version: r.header('Sb-Version'),
    sig: r.header('Sb-Sig'),
    absent: r.header('Sb-Nothing'),
  };
}

describe('leaderGet reads what directGet reads', () => {
  const queries: [string, Parameters<typeof directGet>[2]][] = [
    ['the newest on a subject', { last: 'lg.a' }],
    ['the newest on a subject without headers or payload', { last: 'lg.b' }],
    ['the newest on a subject nothing was stored on', { last: 'lg.none' }],
    ['the first on a subject at or after seq 1', { next: 'lg.a', seq: 1 }],
    ['the first on a subject at or after seq 2', { next: 'lg.a', seq: 2 }],
    ['past the last on a subject', { next: 'lg.a', seq: 4 }],
    ['by seq', { seq: 2 }],
    ['a seq not stored', { seq: 99 }],
  ];
  for (const [what, q] of queries)
    it(what, async () => {
      const direct = seen(await directGet(nc, STREAM, q, 2000));
      expect(seen(await leaderGet(nc, STREAM, q, 2000))).toEqual(direct);
    });

  it('a stream that does not exist: missing, absentStream (the JetStream API says so at once)', async () => {
    expect(seen(await leaderGet(nc, 'LG_NONE', { last: 'lg.a' }, 2000))).toEqual({
      ok: false,
      missing: true,
      absentStream: true,
      error: 'stream LG_NONE does not exist',
    });
  });

  it('a request nobody answers in time: not missing, the cause kept (transient)', async () => {
    const silent: Parameters<typeof leaderGet>[0] = {
      request: () => Promise.reject(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })),
    };
    const r = await leaderGet(silent, STREAM, { last: 'lg.a' }, 10);
    expect(r).toMatchObject({ ok: false, missing: false, error: 'lg.a: timeout' });
    expect(r.ok === false && r.cause).toBeInstanceOf(Error);
  });

  it('a reply that is not what the JetStream API sends is a failure naming the subject, never a message', async () => {
    const replying = (data: string): Parameters<typeof leaderGet>[0] => ({
      request: async () => ({ data: new TextEncoder().encode(data), headers: undefined }),
    });
    const get = (data: string) => leaderGet(replying(data), STREAM, { last: 'lg.a' }, 10);
    expect(await get('not json')).toEqual({ ok: false, missing: false, error: 'lg.a: reply is not JSON' });
    expect(await get('{"type":"x"}')).toEqual({ ok: false, missing: false, error: 'lg.a: reply without a message' });
    expect(await get('{"message":{"subject":"lg.a","seq":"7"}}')).toEqual({
      ok: false,
      missing: false,
      error: 'lg.a: reply without a message',
    });
    expect(await get('{"message":{"subject":"lg.other","seq":7}}')).toEqual({
      ok: false,
      missing: false,
      error: 'lg.a: reply is for lg.other',
    });
    expect(await get('{"error":{"code":500,"err_code":10999,"description":"boom"}}')).toEqual({
      ok: false,
      missing: false,
      error: 'lg.a: 500 boom',
    });
  });
});
