import { describe, expect, it } from 'vitest';
import { Backoff, retryDelayMs } from '../../../libs/kube/index.ts';

describe('Backoff', () => {
  it('grows exponentially up to the cap and resets', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5, random: () => 0 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(b.failures).toBe(6);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('waits as long as a Retry-After asks, never less than the backoff, at most the cap', () => {
    expect(retryDelayMs(600, undefined)).toBe(600);
    expect(retryDelayMs(600, 5)).toBe(5000);
    expect(retryDelayMs(8000, 5)).toBe(8000);
    expect(retryDelayMs(600, 3600)).toBe(60_000);
    expect(retryDelayMs(600, 3600, 10_000)).toBe(10_000);
    expect(retryDelayMs(600, 0)).toBe(600);
  });

  it('jitters down by at most the jitter fraction', () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0.9 });
    expect(b.next()).toBe(550);
    const c = new Backoff({ initialMs: 1000, maxMs: 1000, jitter: 0.5, random: () => 0.5 });
    expect(c.next()).toBe(750);
  });

  it('rejects nonsense options', () => {
    expect(() => new Backoff({ initialMs: 10, maxMs: 5 })).toThrow(/invalid backoff/);
    expect(() => new Backoff({ jitter: 2 })).toThrow(/invalid backoff/);
  });
});
