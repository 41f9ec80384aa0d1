import type { ApplyResult, Dataplane, DataplaneMode } from '../../../libs/dataplane/index.ts';

/** An apply or resync that verified and wrote nothing. */
export const VERIFIED: ApplyResult = { kernelWrites: 0, verified: true, durationMs: 0, notes: [] };

/**
 * Stands for our dataplane of `mode` in tests of a wrapper (a node check, the take-over): every
 * call verifies and writes nothing; the real dataplane is not what those tests are about.
 */
export const fakeDataplane = (mode: DataplaneMode): Dataplane => ({
  mode,
  apply: async () => VERIFIED,
  resync: async () => VERIFIED,
  cleanup: async () => VERIFIED,
  close: async () => {},
});

/** iptables-save text as a sorted list of chain declarations and rules (no counters, no comments). */
export const saveLines = (save: string) =>
  save
    .split('\n')
    .filter((l) => /^(\*|:|-A )/.test(l))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
    .sort();
