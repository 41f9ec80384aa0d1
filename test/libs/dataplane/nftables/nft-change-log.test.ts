import { describe, expect, it } from 'vitest';
import { NftChangeLog, type NftChangeEntry } from '../../../../libs/dataplane/nftables/nft-change-log.ts';
import type { NftNotification } from '../../../../libs/netlink/index.ts';

const INET = 1;
const classify = (n: Exclude<NftNotification, { kind: 'gen' }>): NftChangeEntry => {
  if (n.kind === 'chain') return { chain: n.name };
  if (n.kind === 'set') return { set: n.name };
  if (n.kind === 'elements')
    return n.name === 'service-ips' ? { elements: { set: n.name, keys: ['k1'] } } : { set: n.name };
  return 'doubt';
};
const log = () => new NftChangeLog(INET, 'sb', classify);
const gen = (g: number): NftNotification => ({ kind: 'gen', gen: g });
const chain = (name: string, table = 'sb', family = INET): NftNotification => ({ kind: 'chain', family, table, name });
const set = (name: string): NftNotification => ({ kind: 'set', family: INET, table: 'sb', name });
const elements = (name: string): NftNotification => ({
  kind: 'elements',
  family: INET,
  table: 'sb',
  name,
  elements: [],
});
const table = (): NftNotification => ({ kind: 'table', family: INET, table: 'sb' });
const changes = (chains: string[], sets: string[], els: { set: string; key: string }[], commits: number) => ({
  chains: new Set(chains),
  sets: new Set(sets),
  elements: els,
  commits,
});

describe('NftChangeLog', () => {
  it('names the chains, sets and elements of our table that the commits in a range changed', () => {
    const l = log();
    l.begin(10);
    for (const n of [
      chain('a'),
      chain('x', 'other'),
      chain('y', 'sb', 2),
      gen(11),
      set('m'),
      elements('service-ips'),
      gen(12),
      gen(13),
    ])
      l.note(n);
    expect(l.changesSince(10, 13)).toEqual(changes(['a'], ['m'], [{ set: 'service-ips', key: 'k1' }], 3));
    // Commits up to `since` are forgotten once asked from there.
    expect(l.changesSince(11, 13)).toEqual(changes([], ['m'], [{ set: 'service-ips', key: 'k1' }], 2));
    expect(l.changesSince(10, 13)).toEqual({ unknown: 'no notifications of generation 11' });
  });

  it('reads an element key once when its whole set is re-read anyway', () => {
    const l = log();
    l.begin(1);
    const el: NftNotification = { kind: 'elements', family: INET, table: 'sb', name: 'service-ips', elements: [] };
    for (const n of [el, gen(2), set('service-ips'), gen(3)]) l.note(n);
    expect(l.changesSince(1, 3)).toEqual(changes([], ['service-ips'], [], 2));
  });

  it('answers waiting until the NEWGEN of the asked generation has arrived', async () => {
    const l = log();
    l.begin(5);
    l.note(chain('a'));
    expect(l.changesSince(5, 6)).toBe('waiting');
    const settled = l.settled(5_000);
    l.note(gen(6));
    await settled;
    expect(l.changesSince(5, 6)).toEqual(changes(['a'], [], [], 1));
  });

  it('does not vouch for a range with a commit it cannot name', () => {
    const l = log();
    l.begin(1);
    for (const n of [table(), gen(2), chain('a'), gen(3)]) l.note(n);
    expect(l.changesSince(1, 3)).toEqual({ unknown: 'commit 2 changed what notifications cannot name' });
    expect(l.changesSince(2, 3)).toEqual(changes(['a'], [], [], 1));
  });

  it('turns a commit naming too many objects into a doubt', () => {
    const l = log();
    l.begin(1);
    for (let i = 0; i <= 2000; i++) l.note(chain(`c${i}`));
    l.note(gen(2));
    expect(l.changesSince(1, 2)).toEqual({ unknown: 'commit 2 changed what notifications cannot name' });
  });

  it('loses coverage on a loss, and on a gap in the generations, until begun again', () => {
    const l = log();
    l.begin(1);
    l.note(gen(2));
    l.lose('notification listener exited (ENOBUFS)');
    l.note(gen(3));
    expect(l.changesSince(1, 3)).toEqual({
      unknown: 'no notification record (notification listener exited (ENOBUFS))',
    });
    l.begin(3);
    expect(l.changesSince(1, 3)).toEqual({
      unknown: 'notifications recorded only after generation 3 (notification listener exited (ENOBUFS))',
    });
    l.note(chain('a'));
    l.note(gen(5)); // 4 never came
    expect(l.covering).toBe(false);
    expect(l.changesSince(3, 5)).toEqual({
      unknown: 'no notification record (notifications skipped from generation 3 to 5)',
    });
  });

  it('keeps commits that arrive before coverage begins when they come after its generation', () => {
    // The listener can deliver commit 8 before the GETGEN that answered 7 resolves.
    const l = log();
    for (const n of [chain('old'), gen(7), chain('a'), gen(8)]) l.note(n);
    l.begin(7);
    expect(l.changesSince(7, 8)).toEqual(changes(['a'], [], [], 1));
    // A late notification of a commit before the coverage is ignored.
    l.note(gen(6));
    l.note(gen(9));
    expect(l.changesSince(8, 9)).toEqual(changes([], [], [], 1));
  });

  it('follows the 32-bit generation across its wrap (which skips 0)', () => {
    const l = log();
    l.begin(0xffff_fffe);
    for (const n of [gen(0xffff_ffff), chain('a'), gen(1)]) l.note(n);
    expect(l.covering).toBe(true);
    expect(l.changesSince(0xffff_fffe, 1)).toEqual(changes(['a'], [], [], 2));
  });
});
