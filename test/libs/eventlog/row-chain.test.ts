import { describe, expect, it } from 'vitest';
import { GENESIS_HASH, chainHash } from '../../../libs/eventlog/index.ts';
import { prng } from './support/random-history.ts';

describe('chainHash', () => {
  it('over the first `count` fields is the link of those fields alone (a row may carry its link after them)', () => {
    const rnd = prng(1115);
    const value = (): string | number | null => {
      const r = rnd();
      return r < 0.1 ? null : r < 0.4 ? Math.floor(rnd() * 1e6) : 'x'.repeat(Math.floor(rnd() * 5)) + String(rnd());
    };
    let prev = GENESIS_HASH;
    for (let n = 0; n < 300; n++) {
      const fields = Array.from({ length: 1 + Math.floor(rnd() * 12) }, value);
      const link = chainHash(prev, fields);
      expect(chainHash(prev, [...fields, value(), 'tail'], fields.length)).toBe(link);
      expect(chainHash(prev, fields, fields.length)).toBe(link);
      prev = link;
    }
  });
});
