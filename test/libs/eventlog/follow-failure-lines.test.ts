import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logStreamName } from '../../../libs/eventlog/index.ts';
import { FailureLines } from '../../../libs/eventlog/failure-lines.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { caughtUpWith, logReplica, writeHistory } from './support/replicated-history.ts';
import { tempDir } from './support/temp-log.ts';

// disk10: a follower whose catch-up kept failing said "following failed (…); retrying" at every
// retry. Now: once when it starts failing, then at most once a minute with a count, once when it
// works again.

describe('FailureLines (pure, a hand-moved clock)', () => {
  it('says the first failure, then one line a minute with the count, then the recovery', () => {
    const l = new FailureLines('following');
    const said: string[] = [];
    const say = (x: string | undefined) => void (x && said.push(x));
    // 5 minutes of a failure every second
    for (let t = 0; t < 300_000; t += 1000) say(l.failed('disk I/O error', t));
    say(l.worked(300_500));
    expect(said).toEqual([
      'following failed (disk I/O error); retrying (said again at most once a minute while it fails)',
      'following still failing (disk I/O error): 60 failures since the last line, 61 in 60 s; retrying',
      'following still failing (disk I/O error): 60 failures since the last line, 121 in 120 s; retrying',
      'following still failing (disk I/O error): 60 failures since the last line, 181 in 180 s; retrying',
      'following still failing (disk I/O error): 60 failures since the last line, 241 in 240 s; retrying',
      'following works again after 300 failures in 301 s',
    ]);
    // working: nothing to say
    expect(l.worked(301_000)).toBeUndefined();
    // failing and working by turns (a consumer stalling every 5 s): about one of each a minute
    said.length = 0;
    const turns = new FailureLines('following');
    for (let t = 0; t < 120_000; t += 5000) {
      say(turns.failed('the consumer stalled or ended', t));
      say(turns.worked(t + 10));
    }
    expect(said).toEqual([
      'following failed (the consumer stalled or ended); retrying (said again at most once a minute while it fails)',
      'following works again after 1 failure in 0 s',
      'following failed (the consumer stalled or ended); retrying (said again at most once a minute while it fails)',
      'following works again after 1 failure in 0 s',
    ]);
    // a run that started quietly (within a minute of the last line) is said once the minute is up, with its count
    const q = new FailureLines('following');
    expect(q.failed('a', 0)).toBeDefined();
    expect(q.worked(1000)).toBeDefined();
    for (let t = 2000; t < 61_000; t += 1000) expect(q.failed('b', t)).toBeUndefined();
    expect(q.failed('b', 61_000)).toBe(
      'following failed (b) (60 in 59 s); retrying (said again at most once a minute while it fails)',
    );
  });
});

describe('a follower whose catch-up keeps failing (nats-server)', () => {
  const tmp = tempDir();
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    tmp.cleanup();
  });

  it('says it once while it fails again and again, and once when it works again', async () => {
    const lines: string[] = [];
    const a = await logReplica(nc, 'quiet', { file: tmp.file(), lines });
    const b = await logReplica(nc, 'quiet', { file: tmp.file(), lines });
    await a.r.claim(1);
    await writeHistory(a.log, { seed: 3, steps: 4, after: () => a.r.flush() });
    let f = b.r.follow();
    try {
      await f.caughtUp;
      await f.stop();
      // the stream gone (an operator, a store lost): each catch-up fails until the leader makes it again
      await (await jetstreamManager(nc)).streams.delete(logStreamName('quiet'));
      f = b.r.follow();
      // problem() is set from the second failure in a row on; then past the third retry's pause (1 s)
      const end = Date.now() + 10_000;
      while (f.problem() === undefined && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(f.problem()).toMatch(/not found/);
      await new Promise((r) => setTimeout(r, 1600));
      await writeHistory(a.log, { seed: 4, steps: 2, after: () => a.r.flush() }); // makes the stream again
      await caughtUpWith(b, a, 'after the stream was made again');
      const following = lines.filter((l) => l.includes(': following'));
      expect(following).toEqual([
        expect.stringMatching(/^log stream SB_LOG_quiet: following failed \(.*\); retrying \(said again/),
        expect.stringMatching(/^log stream SB_LOG_quiet: following works again after [3-9] failures in \d+ s$/),
      ]);
    } finally {
      await f.stop();
      await b.r.close();
      await a.r.close();
      b.log.close();
      a.log.close();
    }
  }, 30_000);
});
