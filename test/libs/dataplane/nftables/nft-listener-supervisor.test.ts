// The supervisor of the change-notification listener (node10 L1): restarts after 500 ms, doubling
// to 30 s while restarts fail or the listener dies again soon, back to 500 ms after a healthy
// period; one line when it dies and one when it is back; a full resync asked after each restart.
// Fake timers and a scripted start; the real child on a real kernel:
// test/netns/dataplane-fault-repair.test.ts, "the notification listener killed".
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NftListenerSupervisor } from '../../../../libs/dataplane/nftables/nft-listener-supervisor.ts';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function setup() {
  const t0 = Date.now(); // faked: it moves with the timers
  const now = () => Date.now() - t0;
  const lines: string[] = [];
  const backs: { downMs: number; why: string }[] = [];
  const starts: number[] = [];
  let failing = 0;
  const sup = new NftListenerSupervisor({
    clock: now,
    say: (l) => lines.push(l),
    onBack: (downMs, why) => backs.push({ downMs, why }),
    start: async () => {
      starts.push(now());
      if (failing > 0) {
        failing--;
        throw new Error('notification listener exited (code 3)');
      }
    },
  });
  const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);
  return { sup, lines, backs, starts, advance, fail: (n: number) => (failing = n) };
}

describe('NftListenerSupervisor', () => {
  it('restarts after 500 ms, says it once on each side, and asks for the full resync', async () => {
    const t = setup();
    t.sup.lost('notification listener exited (SIGKILL)');
    expect(t.sup.down).toBe('notification listener exited (SIGKILL)');
    expect(t.lines).toEqual([
      'nftables change-notification listener down (notification listener exited (SIGKILL)): restarting in 500 ms; a full resync follows its restart',
    ]);
    await t.advance(499);
    expect(t.starts).toEqual([]);
    await t.advance(1);
    expect(t.starts).toEqual([500]);
    expect(t.sup.down).toBeUndefined();
    expect(t.backs).toEqual([{ downMs: 500, why: 'notification listener exited (SIGKILL)' }]);
    expect(t.lines[1]).toBe(
      'nftables change-notification listener back after 500 ms (1 restart attempt; lost: notification listener exited (SIGKILL)): full resync',
    );
    expect(t.lines).toHaveLength(2);
  });

  it('doubles the delay while restarts fail, up to 30 s, with no line per failed attempt', async () => {
    const t = setup();
    t.fail(8);
    t.sup.lost('gone');
    await t.advance(200_000);
    const gaps = t.starts.map((s, i) => s - (i === 0 ? 0 : t.starts[i - 1]!));
    expect(gaps).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect(t.backs).toHaveLength(1);
    expect(t.lines).toHaveLength(2);
    expect(t.lines[1]).toMatch(
      /^nftables change-notification listener back after 121500 ms \(9 restart attempts; lost: gone\)/,
    );
  });

  it('a death soon after a restart waits longer; one after a healthy period starts again at 500 ms', async () => {
    const t = setup();
    t.sup.lost('first');
    await t.advance(500);
    await t.advance(1000); // up 1 s only
    t.sup.lost('second');
    expect(t.lines.at(-1)).toMatch(/restarting in 1000 ms/);
    await t.advance(1000);
    expect(t.backs).toHaveLength(2);
    await t.advance(60_000); // healthy for a minute
    t.sup.lost('third');
    expect(t.lines.at(-1)).toMatch(/restarting in 500 ms/);
    await t.advance(500);
    expect(t.backs.map((b) => b.why)).toEqual(['first', 'second', 'third']);
  });

  it('a start by someone else ends the outage (resync asked once); losses while down say nothing more; close stops it', async () => {
    const t = setup();
    t.sup.lost('a');
    t.sup.lost('b'); // the same outage
    t.sup.started();
    expect(t.backs).toEqual([{ downMs: 0, why: 'a' }]);
    await t.advance(5000);
    expect(t.starts).toEqual([]); // no restart of its own after that
    expect(t.lines).toHaveLength(2);
    t.sup.started(); // not down: nothing
    expect(t.backs).toHaveLength(1);
    t.sup.lost('c');
    t.sup.close();
    await t.advance(60_000);
    expect(t.starts).toEqual([]);
  });
});
