// The notification listener child killed while it runs (SIGKILL: the OOM killer, an operator):
// applies and resyncs never fail because of it, the record restarts with a new child at the next
// apply or resync (or by the supervisor, node10 L1), the change made while it was dead is found by
// a whole read that names the exit, and resyncs are scoped again once the new child records.
// Real kernel, own netns.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { ListenerKillStep } from './support/nft-listener-scenarios.ts';

const SCENARIOS = fileURLToPath(new URL('./support/nft-listener-scenarios.ts', import.meta.url));

let ns: TestNetns;
beforeAll(async () => {
  ns = await TestNetns.create('nftlisten');
});
afterAll(async () => {
  await ns?.destroy();
});

describe('nftables change-notification listener killed while it runs', () => {
  it('applies and resyncs succeed; the exit is named by the next whole read; a new child records from then on', async () => {
    const steps = await ns.run<ListenerKillStep[]>(SCENARIOS, 'runningListenerKilled', [], { timeoutMs: 120_000 });
    const [first, killed, dead, recording, applyAfterKill, back, afterApply, recordingAgain] = steps;
    expect(first!.child).toBeGreaterThan(0);
    expect(killed!.child).toBe(first!.child);
    expect(dead).toMatchObject({ writes: 1, verified: true, tableAsLoaded: true });
    expect(dead!.notes).toEqual(
      expect.arrayContaining([expect.stringMatching(/^whole read: .*notification listener exited \(SIGKILL\)/)]),
    );
    expect(dead!.child).toBeGreaterThan(0);
    expect(dead!.child).not.toBe(killed!.child); // restarted by that resync
    expect(recording).toMatchObject({ writes: 1, verified: true, tableAsLoaded: true, child: dead!.child });
    expect(recording!.notes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/read back what notifications named \(0 chains, 0 sets, 1 elements\)/),
      ]),
    );
    // An apply right after a kill: never fails for it, verifies, and restarts the record.
    expect(applyAfterKill).toMatchObject({ verified: true, tableAsLoaded: false });
    expect(applyAfterKill!.writes).toBeGreaterThan(0);
    expect(applyAfterKill!.child).toBeGreaterThan(0);
    expect(applyAfterKill!.child).not.toBe(dead!.child);
    expect(back).toMatchObject({ verified: true, tableAsLoaded: true });
    // The first resync after a kill reads the whole table even when applies came between (they
    // read back only what they touched): the full read a restart promises (node10 L1).
    expect(afterApply).toMatchObject({ writes: 1, verified: true, tableAsLoaded: true });
    expect(afterApply!.notes).toEqual(
      expect.arrayContaining([
        'whole read: the notification listener was lost (notification listener exited (SIGKILL))',
      ]),
    );
    // ... and the record the apply restarted vouches from then on.
    expect(recordingAgain).toMatchObject({ writes: 1, verified: true, tableAsLoaded: true });
    expect(recordingAgain!.notes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/read back what notifications named \(0 chains, 0 sets, 1 elements\)/),
      ]),
    );
    expect(steps.map((s) => s.step)).toEqual([
      'first apply',
      'listener killed',
      'a foreign change while it was dead',
      'a foreign change, the new child recording',
      'an apply right after a kill',
      'back to the first state',
      'a foreign change after the apply restarted it',
      'a foreign change after that whole read',
    ]);
  }, 180_000);
});
