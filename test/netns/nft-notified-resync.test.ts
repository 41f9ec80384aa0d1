// A netlink resync after the ruleset generation moved reads back only what nf_tables'
// notifications named (NftChangeLog), and falls back to a whole read whenever they cannot vouch:
// a commit they cannot name (the table, an anonymous set), lost notifications (the listener's
// socket overflowed), a restart (no record of earlier commits), or a due periodic whole read.
// Every repair leaves `nft list table` as the first load had it. Real kernel, own netns.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { ListenerStep, NotifiedStep } from './support/nft-notified-scenarios.ts';

const SCENARIOS = fileURLToPath(new URL('./support/nft-notified-scenarios.ts', import.meta.url));

let ns: TestNetns;
beforeAll(async () => {
  ns = await TestNetns.create('nftnote');
});
afterAll(async () => {
  await ns?.destroy();
});

const step = (name: string, read: NotifiedStep['read'], extra: Partial<NotifiedStep> = {}) => ({
  step: name,
  read,
  writes: 0,
  verified: true,
  tableAsLoaded: true,
  ...extra,
});

describe('netlink resync from nf_tables notifications', () => {
  it('reads back only what other programs changed in our table, and repairs it', async () => {
    const steps = await ns.run<NotifiedStep[]>(SCENARIOS, 'notifiedResyncs', [], { timeoutMs: 120_000 });
    const cannotName = expect.stringMatching(/^commit \d+ changed what notifications cannot name$/);
    expect(steps).toEqual([
      step('nothing committed', 'skipped'),
      step('another table added', 'none'),
      step('a service-ips element deleted', 'scoped', { scope: '0 chains, 0 sets, 1 elements', writes: 1 }),
      step('an endpoint map slot deleted', 'scoped', { scope: '0 chains, 1 sets, 0 elements', writes: 1 }),
      // flush + its two rules
      step('a service chain flushed', 'scoped', { scope: '1 chains, 0 sets, 0 elements', writes: 3 }),
      // The digest alone would have kept the changed match; the notification makes it a refill.
      step('a rule match replaced, digest unchanged', 'scoped', { scope: '1 chains, 0 sets, 0 elements', writes: 3 }),
      // NEWCHAIN is doubt: a rename's names only the new chain, and adding a chain is a NEWCHAIN
      // too (the notification cannot tell them apart). Our own chains are created at or before
      // the known generation, so only a foreign NEWCHAIN costs a whole read: rare.
      step('one of our chains renamed', 'whole', { why: cannotName, writes: expect.any(Number) }),
      step('a foreign chain added to our table', 'whole', { why: cannotName, writes: 1 }),
      step('a rule with an anonymous set added', 'whole', { why: cannotName, writes: 1 }),
      step('nothing committed since', 'skipped'),
      step('another table deleted, whole read due', 'whole', {
        why: 'the table was last known whole over 60 s ago',
      }),
      step('our table deleted', 'whole', { why: cannotName, writes: expect.any(Number) }),
      step('after the reload', 'skipped'),
    ]);
    expect(steps.find((s) => s.step === 'our table deleted')!.writes).toBeGreaterThan(10);
  }, 180_000);

  it('reads the whole table after lost notifications and after a restart, then records again', async () => {
    const steps = await ns.run<NotifiedStep[]>(SCENARIOS, 'lostNotificationsAndRestart', [], { timeoutMs: 120_000 });
    expect(steps).toEqual([
      step('notifications overflowed', 'whole', {
        // The listener's exit on ENOBUFS: through its error handler (code 3), or the `netlink`
        // package's native abort (std::terminate) when the error comes while it receives.
        why: expect.stringMatching(/notification listener exited \((code 3: ENOBUFS|SIGABRT)/),
        writes: 1,
      }),
      step('another table changed after the overflow', 'none'),
      step('restarted applier adopts', 'whole'),
      step('after the restart, an element deleted', 'scoped', { scope: '0 chains, 0 sets, 1 elements', writes: 1 }),
    ]);
  }, 180_000);
});

describe('netlink resync when the notification listener cannot start', () => {
  for (const [what, execPath, why] of [
    ['a failed spawn (missing binary)', '/nonexistent/node', /notification listener failed \(ENOENT\)/],
    ['a child that exits before ready', '/bin/false', /notification listener exited \(code 1\)/],
  ] as const) {
    it(`${what}: applies succeed and verify, resyncs read the whole table, the start is retried later`, async () => {
      const steps = await ns.run<
        { step: string; notes: string[]; writes: number; verified: boolean; tableAsLoaded: boolean }[]
      >(SCENARIOS, 'listenerCannotStart', [execPath], { timeoutMs: 60_000 });
      const unavailable = expect.stringMatching(
        new RegExp(`^change notifications unavailable \\(${why.source}\\): resyncs read the whole table`),
      );
      const noRecord = expect.stringMatching(new RegExp(`^whole read: no notification record \\(${why.source}\\)`));
      expect(steps).toEqual([
        // The first apply's adopt read starts the listener (readBackAt → watch).
        {
          step: 'first apply',
          notes: ['created table', unavailable],
          writes: expect.any(Number),
          verified: true,
          tableAsLoaded: true,
        },
        // Within the retry delay: no new child, no note; the change applies and verifies.
        {
          step: 'an apply with the listener failed',
          notes: [],
          writes: expect.any(Number),
          verified: true,
          tableAsLoaded: false,
        },
        { step: 'back to the first state', notes: [], writes: expect.any(Number), verified: true, tableAsLoaded: true },
        {
          step: 'a foreign change, within the retry delay',
          notes: [noRecord, 'repaired drift in 0 chains'],
          writes: 1,
          verified: true,
          tableAsLoaded: true,
        },
        {
          step: 'a foreign change, after the retry delay',
          notes: [unavailable, noRecord, 'repaired drift in 0 chains'],
          writes: 1,
          verified: true,
          tableAsLoaded: true,
        },
      ]);
    }, 90_000);
  }
});
