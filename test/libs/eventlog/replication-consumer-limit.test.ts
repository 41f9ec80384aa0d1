import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogReplicator, type EventLog, type LogReplicator } from '../../../libs/eventlog/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { nodeEvent } from './support/node-event.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// A follower reads its group's log with one JetStream consumer. With the account's consumer limit
// reached it said `following failed (maximum consumers limit reached)`: the server's words, naming
// neither the limit nor what a group needs. Now it names both (docs/operations.md, "NATS limits"),
// keeps retrying, and follows once a consumer is free.

const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
beforeAll(async () => {
  nats = await startNatsServer({
    jetstream: true,
    // a config-mode account with JetStream limits: one consumer in all
    config:
      'accounts { A: { jetstream: { max_mem: 64M, max_file: 256M, max_streams: 10, max_consumers: 1 }, users: [{ user: u, password: p }] } }',
  });
  nc = await connect({ servers: nats.url, user: 'u', pass: 'p', maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

describe('a follower whose account may not make another consumer', () => {
  it('says which limit and what a group needs, retries, and follows once a consumer is free', async () => {
    const lines: string[] = [];
    const replica = async (id: string): Promise<{ log: EventLog; r: LogReplicator }> => {
      const log = await openLog(tmp.file());
      const r = await createLogReplicator({
        log,
        nc,
        group: 'lim',
        replicas: 1,
        logger: (l) => lines.push(`${id}: ${l}`),
        id,
        lagRefreshMs: 100,
      });
      return { log, r };
    };
    const a = await replica('a');
    await a.r.claim(1);
    a.log.appendEvents([nodeEvent('n1', 1)]);
    await a.r.flush();
    const b = await replica('b');
    const c = await replica('c');
    const fb = b.r.follow();
    await fb.caughtUp; // b holds the account's one consumer
    const fc = c.r.follow();
    let cCaughtUp = false;
    void fc.caughtUp.then(() => (cCaughtUp = true));
    await expect.poll(() => fc.problem(), { timeout: 10_000 }).toMatch(/^NATS refuses another JetStream consumer/);
    expect(fc.problem()).toContain('(JetStream error 10026: maximum consumers limit reached)');
    expect(fc.problem()).toContain('a group of N planners holds N - 1');
    expect(lines.find((l) => l.startsWith('c: ') && l.includes('following failed'))).toContain(
      'NATS refuses another JetStream consumer: the planner',
    );
    expect(cCaughtUp).toBe(false);
    // b stops following (a planner left the group): its consumer goes, c's next try takes it
    await fb.stop();
    await expect.poll(() => cCaughtUp, { timeout: 15_000 }).toBe(true);
    await expect.poll(() => fc.problem() ?? null, { timeout: 10_000 }).toBeNull();
    await fc.stop();
  }, 40_000);
});
