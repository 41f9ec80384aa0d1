// settleInLanes: how NetlinkKernel feeds a bulk group to the netlink clients (bounded in JS).
import { describe, expect, it } from 'vitest';
import { settleInLanes } from '../../../../libs/dataplane/ipvs/netlink-kernel.ts';

describe('settleInLanes', () => {
  it('never has more than `limit` pending, runs every item once, outcomes in item order, failures do not stop the rest', async () => {
    let pending = 0;
    let most = 0;
    const ran: number[] = [];
    const out = await settleInLanes(
      Array.from({ length: 1000 }, (_, i) => i),
      async (i) => {
        pending++;
        most = Math.max(most, pending);
        ran.push(i);
        await new Promise((r) => setImmediate(r));
        pending--;
        if (i % 97 === 0) throw new Error(`no ${i}`);
      },
      16,
    );
    expect(most).toBe(16);
    expect([...ran].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(out).toHaveLength(1000);
    out.forEach((r, i) => {
      if (i % 97 === 0) expect(r).toMatchObject({ status: 'rejected', reason: new Error(`no ${i}`) });
      else expect(r.status).toBe('fulfilled');
    });
  });

  it('fewer items than lanes, and none', async () => {
    expect(await settleInLanes([1, 2], async () => {}, 16)).toEqual([
      { status: 'fulfilled', value: undefined },
      { status: 'fulfilled', value: undefined },
    ]);
    expect(await settleInLanes([], async () => {}, 16)).toEqual([]);
  });
});
