import { JetStreamApiError } from '@nats-io/jetstream';
import { TimeoutError } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import {
  consumerLimitRefusal,
  describeJetStreamFailure,
  explainJetStreamFailure,
  namingJetStreamSilence,
} from '../../../libs/bus/index.ts';

/**
 * JetStream's refusals in words, and which last until an operator acts (probe8 J1); an unanswered
 * request told apart by a core NATS PING (probe8 J2). Pure: errors built as the client builds them
 * from a server's answer (codes and texts of nats-server's server/errors.json), a fake connection.
 */
const apiError = (status: number, code: number, description: string) =>
  new JetStreamApiError({ code: status, err_code: code, description });

describe('describeJetStreamFailure', () => {
  it('names the storage and account limits, and says they last', () => {
    expect(describeJetStreamFailure(apiError(503, 10023, 'insufficient resources'))).toEqual({
      cause:
        'JetStream storage is full on the server (its max_file_store or max_mem_store, or the disk, is used up) (JetStream error 10023: insufficient resources)',
      lasting: true,
    });
    for (const [status, code, text] of [
      [400, 10002, 'resource limits exceeded for account'],
      [500, 10028, 'insufficient memory resources available'],
      [500, 10047, 'insufficient storage resources available'],
      [503, 10077, 'maximum bytes exceeded'],
      [503, 10039, 'JetStream not enabled for account'],
      [503, 10076, 'JetStream not enabled'],
      [400, 10026, 'maximum consumers limit reached'],
    ] as const) {
      const f = describeJetStreamFailure(apiError(status, code, text));
      expect(f.lasting, `${code}`).toBe(true);
      expect(f.cause).toMatch(new RegExp(`\\(JetStream error ${code}: ${text}\\)$`));
    }
  });

  it('an election or a lost quorum clears by itself; an unknown code lasts unless it is a 503', () => {
    expect(describeJetStreamFailure(apiError(503, 10008, 'JetStream system temporarily unavailable')).lasting).toBe(
      false,
    );
    expect(describeJetStreamFailure(apiError(500, 10009, 'JetStream cluster can not handle request'))).toEqual({
      cause:
        'the JetStream cluster cannot handle the request (no leader: an election, or no quorum) (JetStream error 10009: JetStream cluster can not handle request)',
      lasting: false,
    });
    expect(describeJetStreamFailure(apiError(400, 19999, 'something new'))).toEqual({
      cause: 'JetStream refused it (JetStream error 19999: something new)',
      lasting: true,
    });
    expect(describeJetStreamFailure(apiError(503, 19998, 'not now')).lasting).toBe(false);
  });

  it('looks through wrappers; no responders means nothing serves JetStream; a timeout alone cannot be told', () => {
    const wrapped = new Error('opening the lease', { cause: apiError(503, 10023, 'insufficient resources') });
    expect(describeJetStreamFailure(wrapped)).toMatchObject({ lasting: true, cause: /^JetStream storage is full/ });
    // what the client throws for a request with no responders (its JetStreamNotEnabled, not exported)
    const notEnabled = Object.assign(new Error('jetstream is not enabled'), { name: 'JetStreamNotEnabled' });
    expect(describeJetStreamFailure(notEnabled)).toEqual({
      cause:
        'nothing answers for JetStream (no responders: JetStream is not enabled on the server, or the stream is gone)',
      lasting: true,
    });
    expect(describeJetStreamFailure(new TimeoutError())).toEqual({
      cause: 'no answer from JetStream in time',
      lasting: false,
    });
    expect(describeJetStreamFailure(new Error('disk on fire'))).toEqual({ cause: 'disk on fire', lasting: false });
  });
});

describe('consumerLimitRefusal', () => {
  it("names the account's consumer limit and what a group needs, through wrappers; other errors are not it", () => {
    const refused = new Error('catching up', { cause: apiError(400, 10026, 'maximum consumers limit reached') });
    expect(consumerLimitRefusal(refused)).toMatch(
      /^NATS refuses another JetStream consumer: .*\(JetStream error 10026: maximum consumers limit reached\); a group of N planners holds N - 1 .*"NATS limits"\)$/,
    );
    expect(consumerLimitRefusal(apiError(400, 10027, 'maximum number of streams reached'))).toBeUndefined();
    expect(consumerLimitRefusal(new Error('maximum consumers limit reached'))).toBeUndefined();
  });
});

describe('explainJetStreamFailure: a core NATS PING after a JetStream timeout', () => {
  const core = (answers: boolean) => ({
    rtt: () => (answers ? Promise.resolve(1) : new Promise<number>(() => {})),
    getServer: () => '127.0.0.1:4222',
  });

  it('core answers: JetStream is not answering on that server', async () => {
    expect(await explainJetStreamFailure(new TimeoutError(), core(true))).toEqual({
      cause: 'JetStream not answering on 127.0.0.1:4222 while core NATS does',
      lasting: false,
    });
    const named = (await namingJetStreamSilence(new Error('x', { cause: new TimeoutError() }), core(true))) as Error;
    expect(named.message).toBe('JetStream not answering on 127.0.0.1:4222 while core NATS does');
    expect((named.cause as Error).cause).toBeInstanceOf(TimeoutError); // still a timeout underneath (retried)
  });

  it('core silent too: the server or the link is gone; refusals are not probed', async () => {
    expect(await explainJetStreamFailure(new TimeoutError(), core(false), 50)).toEqual({
      cause: 'no answer from NATS on 127.0.0.1:4222 (not even a core NATS PING within 50 ms)',
      lasting: false,
    });
    const timeout = new TimeoutError();
    expect(await namingJetStreamSilence(timeout, core(false), 50)).toBe(timeout);
    const refused = apiError(503, 10023, 'insufficient resources');
    let pinged = false;
    const f = await explainJetStreamFailure(refused, {
      rtt: () => {
        pinged = true;
        return Promise.resolve(1);
      },
      getServer: () => 'x',
    });
    expect(f.lasting).toBe(true);
    expect(pinged).toBe(false);
  });
});
