import { describe, expect, it } from 'vitest';
import { decidePin, decideSync, decideUnpin } from '../../../libs/control/index.ts';

describe('data pin decisions', () => {
  const pin = { version: 3, hash: 'h3', kind: 'pin' as const };
  it('holds while pinned, publishes only real changes otherwise', () => {
    expect(decideSync({ pin, liveHash: 'h9', publishedHash: 'h3' })).toEqual({ action: 'hold', pinnedTo: 3 });
    expect(decideSync({ pin: undefined, liveHash: 'h9', publishedHash: 'h3' })).toEqual({ action: 'publish-live' });
    expect(decideSync({ pin: undefined, liveHash: 'h3', publishedHash: 'h3' })).toEqual({ action: 'none' });
    expect(decideSync({ pin: undefined, liveHash: 'h1', publishedHash: undefined })).toEqual({
      action: 'publish-live',
    });
  });
  it('pins with a new version only when content differs', () => {
    expect(decidePin({ targetHash: 'h3', publishedHash: 'h5' })).toEqual({ publish: true });
    expect(decidePin({ targetHash: 'h5', publishedHash: 'h5' })).toEqual({ publish: false });
  });
  it('unpins with a new version only when live content moved', () => {
    expect(decideUnpin({ pin, liveHash: 'h9', publishedHash: 'h3' })).toEqual({ publish: true });
    expect(decideUnpin({ pin, liveHash: 'h3', publishedHash: 'h3' })).toEqual({ publish: false });
    expect(() => decideUnpin({ pin: undefined, liveHash: 'h3', publishedHash: 'h3' })).toThrow(/not pinned/);
  });
});
