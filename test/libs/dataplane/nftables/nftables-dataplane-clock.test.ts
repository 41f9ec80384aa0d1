// The periodic whole read (wholeReadEveryMs) runs on a monotonic clock: a wall clock stepped back
// (NTP, an operator) must not postpone it, nor one stepped forward bring it early.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NftablesDataplane } from '../../../../libs/dataplane/nftables/index.ts';
import { nodeState } from '../../../netns/support/node-state-builder.ts';
import { GenerationRunner } from './generation-runner.ts';

const state = nodeState([{ servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:8080'] }]);
const whole = (notes: readonly string[]) =>
  notes.some((n) => n.startsWith('whole read: the table was last known whole'));

afterEach(() => {
  vi.restoreAllMocks();
});

describe('NftablesDataplane periodic whole read', () => {
  it('follows the monotonic clock, not the wall clock', async () => {
    // Both clocks stepped by offsets, installed before the dataplane takes its default clock.
    let wallStep = 0;
    let monoStep = 0;
    const realWall = Date.now.bind(Date);
    const realMono = performance.now.bind(performance);
    vi.spyOn(Date, 'now').mockImplementation(() => realWall() + wallStep);
    vi.spyOn(performance, 'now').mockImplementation(() => realMono() + monoStep);
    const runner = new GenerationRunner();
    const dp = new NftablesDataplane({ runner, wholeReadEveryMs: 60_000 });
    await dp.apply(state);
    // The wall clock jumps an hour ahead; no time passes: no whole read.
    wallStep = 3_600_000;
    runner.gen++; // another program's commit, to another table
    const early = await dp.resync();
    expect(early.notes.join(' | ')).toContain('none to our table');
    // 61 s pass, while the wall clock is stepped an hour back: the whole read is due.
    wallStep = -3_600_000;
    monoStep = 61_000;
    runner.gen++;
    const due = await dp.resync();
    expect(whole(due.notes)).toBe(true);
  });
});
