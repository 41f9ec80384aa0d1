// How the nftables dataplane lives with its change-notification listener (runner.watch), on the
// fake kernel: a retry after a failed start holds an apply at most listenerRetryWaitMs and then
// goes on in the background; its recovery is noted; a start stopped by our own large transaction
// is no failure; and a start in flight is never waited for twice. The real child on a real kernel:
// test/netns/nft-listener-lifecycle.test.ts.
import { describe, expect, it } from 'vitest';
import { NftablesDataplane } from '../../../../libs/dataplane/nftables/index.ts';
import { ListenerStoppedError } from '../../../../libs/dataplane/nftables/nft-notification-listener.ts';
import { nodeState } from '../../../netns/support/node-state-builder.ts';
import { GenerationRunner } from './generation-runner.ts';

/** The fake kernel with a generation, a change record naming nothing of ours, and a scripted watch. */
class WatchedRunner extends GenerationRunner {
  /** Each watch call takes the next answer: 'ok', an Error to reject with, or 'hang' (settled by release()). */
  answers: ('ok' | 'hang' | Error)[] = [];
  calls = 0;
  private hung: { res: () => void; rej: (e: Error) => void } | undefined;
  watch(): Promise<void> {
    this.calls++;
    const a = this.answers.shift() ?? 'ok';
    if (a === 'ok') return Promise.resolve();
    if (a instanceof Error) return Promise.reject(a);
    return new Promise((res, rej) => (this.hung = { res, rej }));
  }
  release(e?: Error): void {
    if (e) this.hung?.rej(e);
    else this.hung?.res();
    this.hung = undefined;
  }
}

const state = (endpoints: string[]) =>
  nodeState([{ servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints }]);
const A = state(['10.1.0.1:8080']);
const B = state(['10.1.0.1:8080', '10.1.0.2:8080']);
const timed = async <T>(p: Promise<T>): Promise<{ ms: number; r: T }> => {
  const t0 = performance.now();
  const r = await p;
  return { ms: performance.now() - t0, r };
};

describe('nftables dataplane and its notification listener', () => {
  it('a retry after a failed start holds an apply at most the retry wait, goes on in the background, and its recovery is noted', async () => {
    let clock = 0;
    const runner = new WatchedRunner();
    runner.answers = [new Error('notification listener exited (code 1)'), 'hang'];
    const dp = new NftablesDataplane({ runner, clock: () => clock, listenerRetryWaitMs: 200 });
    const first = await dp.apply(A);
    expect(first.notes).toContain(
      'change notifications unavailable (notification listener exited (code 1)): resyncs read the whole table until the listener starts (retried in 60 s)',
    );
    clock += 61_000;
    // The retry hangs (a child that never says ready): the apply waits 200 ms, not the 10 s ready timeout.
    const { ms, r: second } = await timed(dp.apply(B));
    expect(ms).toBeLessThan(2000);
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(second.verified).toBe(true);
    expect(second.notes).toContain(
      "change notifications: the listener's retry is not ready after 200 ms; carrying on without it (resyncs read the whole table until it is)",
    );
    // Still starting: the next calls do not wait for it again, nor start another.
    const { ms: again } = await timed(dp.apply(A));
    expect(again).toBeLessThan(150);
    expect(runner.calls).toBe(2);
    runner.release(); // it became ready
    await new Promise((r) => setImmediate(r));
    const after = await dp.resync();
    expect(
      after.notes.some((n) =>
        /^change notifications available again: the listener started \(\d+ ms; it had failed: notification listener exited \(code 1\)\)/.test(
          n,
        ),
      ),
    ).toBe(true);
    // Healthy again: the next call asks the runner (cheap when running) and notes nothing.
    runner.gen++;
    const next = await dp.resync();
    expect(next.notes.filter((n) => n.startsWith('change notifications'))).toEqual([]);
    expect(next.notes.join(' | ')).toContain('none to our table');
  });

  it('a retry that fails in the background is noted at the next call and tried again a minute later', async () => {
    let clock = 0;
    const runner = new WatchedRunner();
    runner.answers = [new Error('notification listener failed (EAGAIN)'), 'hang'];
    const dp = new NftablesDataplane({ runner, clock: () => clock, listenerRetryWaitMs: 50 });
    await dp.apply(A);
    clock += 61_000;
    await dp.apply(B);
    runner.release(new Error('notification listener not ready after 10000 ms'));
    await new Promise((r) => setImmediate(r));
    const r = await dp.apply(A);
    expect(r.notes).toContain(
      'change notifications unavailable (notification listener not ready after 10000 ms): resyncs read the whole table until the listener starts (retried in 60 s)',
    );
    expect(runner.calls).toBe(2);
    clock += 61_000;
    await dp.apply(B);
    expect(runner.calls).toBe(3);
  });

  it('a start stopped by our own large transaction is no failure: no note, and the next call starts it again', async () => {
    const runner = new WatchedRunner();
    const dp = new NftablesDataplane({ runner });
    await dp.apply(A);
    const before = runner.calls;
    runner.answers = [new ListenerStoppedError('our own transaction of 9000 messages ran unmonitored')];
    const r = await dp.apply(B); // its watch was stopped
    expect(r.notes.filter((n) => n.startsWith('change notifications'))).toEqual([]);
    await dp.apply(A); // no retry delay: asked again at once
    expect(runner.calls).toBe(before + 2);
  });
});
