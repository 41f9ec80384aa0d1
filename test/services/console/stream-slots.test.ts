import { describe, expect, it } from 'vitest';
import { StreamSlots } from '../../../services/console/stream-slots.ts';

describe('console event stream slots', () => {
  it('per identity 429, in all 503, each with its one-line reason; a release frees the slot once', () => {
    const slots = new StreamSlots({ perIdentity: 2, total: 3 });
    const a1 = slots.take('alice');
    const a2 = slots.take('alice');
    expect(slots.take('alice')).toEqual({
      code: 429,
      reason: 'alice already has 2 console event streams open (at most 2 per token identity); close one',
    });
    const b1 = slots.take('bob'); // alice's share does not stop bob
    expect('release' in b1).toBe(true);
    expect(slots.take('carol')).toEqual({
      code: 503,
      reason: 'the planner already serves 3 console event streams (at most 3); try again later',
    });
    if (!('release' in a1) || !('release' in a2)) throw new Error('alice had slots');
    a1.release();
    a1.release(); // twice (the stream's own end, then its socket's close) frees one slot
    expect(slots.open('alice')).toBe(1);
    expect(slots.open()).toBe(2);
    expect('release' in slots.take('carol')).toBe(true);
    expect(slots.take('alice')).toMatchObject({ code: 503 });
  });

  it('defaults: 10 per identity, 100 in all', () => {
    const slots = new StreamSlots();
    for (let i = 0; i < 10; i++) expect('release' in slots.take('wall')).toBe(true);
    expect(slots.take('wall')).toMatchObject({ code: 429 });
    for (let i = 0; i < 90; i++) expect('release' in slots.take(`v${i}`)).toBe(true);
    expect(slots.take('late')).toMatchObject({ code: 503 });
  });
});
