import { describe, expect, it } from 'vitest';
import { formatWaves, parseWaves } from '../../../libs/control/parse-waves.ts';
import { planWaves } from '../../../libs/control/plan-waves.ts';

const fleet = (n: number) => Array.from({ length: n }, (_, i) => `node-${String(i).padStart(2, '0')}`);

describe('parseWaves', () => {
  it('reads counts and percentages', () => {
    expect(parseWaves('1, 10%,50%,100%')).toEqual([
      { kind: 'count', n: 1 },
      { kind: 'percent', p: 10 },
      { kind: 'percent', p: 50 },
      { kind: 'percent', p: 100 },
    ]);
    expect(formatWaves(parseWaves('1,10%,100%'))).toBe('1,10%,100%');
  });
  it.each(['', '0', '-1', '150%', 'ten', '0%'])('rejects %j', (s) => {
    expect(() => parseWaves(s)).toThrow(/waves/);
  });
});

describe('planWaves', () => {
  it('makes cumulative, sorted, deduplicated waves ending with the whole fleet', () => {
    const waves = planWaves(fleet(20).reverse(), parseWaves('1,10%,50%,100%'));
    expect(waves.map((w) => w.length)).toEqual([1, 2, 10, 20]);
    expect(waves[0]).toEqual(['node-00']);
    for (let i = 1; i < waves.length; i++) expect(waves[i]!.slice(0, waves[i - 1]!.length)).toEqual(waves[i - 1]);
  });
  it('drops waves that add nobody and covers the fleet even when specs stop short', () => {
    expect(planWaves(fleet(3), parseWaves('1,10%,20%,50%')).map((w) => w.length)).toEqual([1, 2, 3]);
    expect(planWaves(fleet(3), parseWaves('5'))).toEqual([fleet(3)]);
  });
  it('gives no wave for an empty fleet', () => {
    expect(planWaves([], parseWaves('1,100%'))).toEqual([]);
  });
});
