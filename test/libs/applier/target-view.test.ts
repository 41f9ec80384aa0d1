// TargetView's order after a restart (probe10 H1): an entry below what the previous process
// followed is refused, and while a key is refused no target at all is effective (not the other key's).
import { describe, expect, it } from 'vitest';
import { TargetView } from '../../../libs/applier/index.ts';

const t = (version: number, issued: number) => ({ version, configRevision: 0, issued, sig: '' });

describe('TargetView after a restart (probe10 H1)', () => {
  it('refuses an entry older than followed before, holds no target meanwhile, takes the same or a newer one', () => {
    const v = new TargetView('node.n1', { default: 200, 'node.n1': 150 });
    expect(v.observe('default', t(1, 100))).toEqual({
      refused: expect.stringMatching(/^target version 1 \(issued 100\) in default is older than .* \(issued 200\)/),
    });
    expect(v.observe('node.n1', t(3, 150))).toBe('newer'); // the entry followed before: taken
    expect(v.refusing()).toBe(true);
    expect(v.effective()).toBeUndefined(); // not the override alone while the default is refused
    expect(v.observe('default', t(1, 300))).toBe('newer'); // a rollback: a new, higher issued
    expect(v.effective()).toEqual({ version: 3, configRevision: 0 });
    expect(v.observe('default', t(2, 250))).toBe('not newer'); // a running view ignores old ones
    expect(v.followed()).toEqual({ default: 300, 'node.n1': 150 });
  });

  it('refuses nothing on a first start', () => {
    const v = new TargetView('node.n1');
    expect(v.observe('default', t(1, 1))).toBe('newer');
    expect(v.effective()).toEqual({ version: 1, configRevision: 0 });
  });
});
