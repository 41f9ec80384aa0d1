// How a transaction too large for one datagram is cut into batches (splitBatches, pure): every
// batch fits the socket's send buffer, messages that must share a batch (a set and its elements
// by batch id, an anonymous set and its rule) are never cut apart, order holds, and the staged
// (hooking) messages come last in batches of their own. The kernel side (a small send buffer, as
// at the default wmem_max) is in test/netns/nft-small-send-buffer.test.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileFullLoad,
  gluedBytesFor,
  splitBatches,
} from '../../../../libs/dataplane/nftables/nft-netlink-runner.ts';
import { renderNftObjects } from '../../../../libs/dataplane/nftables/nft-objects.ts';
import type { NftMessage } from '../../../../libs/netlink/index.ts';
import { servicesWithEndpoints } from '../../../netns/support/node-state-builder.ts';

/** What the runner counts for a message in a batch (header and padding, rounded up). */
const cost = (m: NftMessage) => m.payload.length + 20;
const bytesOf = (b: readonly NftMessage[]) => b.reduce((a, m) => a + cost(m), 0);

/** The largest batch a socket grants at the kernel's default wmem_max (2 × 212,992), less the runner's 4 KiB. */
const DEFAULT_WMEM_BATCH = 2 * 212_992 - 4096;

/** Checks every promise splitBatches makes of `batches` cut from `c` at `maxBytes`. */
function expectSound(
  c: { messages: NftMessage[]; staged: boolean[]; withNext: boolean[] },
  batches: NftMessage[][],
  maxBytes: number,
): void {
  const flat = batches.flat();
  const index = new Map(c.messages.map((m, i) => [m, i]));
  const at = (m: NftMessage | undefined) => (m === undefined ? -1 : (index.get(m) ?? -1));
  // every message once; the unstaged in their order, then the staged in theirs
  const expected =
    batches.length === 1
      ? c.messages
      : [...c.messages.filter((_, i) => !c.staged[i]), ...c.messages.filter((_, i) => c.staged[i])];
  expect(flat).toEqual(expected);
  if (batches.length === 1) return;
  for (const b of batches) {
    expect(bytesOf(b)).toBeLessThanOrEqual(maxBytes);
    expect(b.length).toBeGreaterThan(0);
    // no batch mixes staged and unstaged messages
    expect(new Set(b.map((m) => c.staged[at(m)])).size).toBe(1);
    // a batch never ends on a message glued to the next
    expect(c.withNext[at(b.at(-1))]).not.toBe(true);
  }
}

describe('splitBatches', () => {
  it('cuts a whole load with large endpoint maps under the limit, never inside a map and its elements', () => {
    // 100 services × 600 endpoints: a map's declaration and its first elements by batch id are
    // glued (~36 KB each). Cutting inside such a run made batches up to ~26 KB over the limit,
    // past the 4 KiB the runner keeps under the send buffer: the kernel refused the datagram
    // (EMSGSIZE) and the load failed on every try.
    const c = compileFullLoad(
      'inet',
      't',
      renderNftObjects(servicesWithEndpoints(100, 600)),
      gluedBytesFor(DEFAULT_WMEM_BATCH),
    );
    expect(c.withNext.filter(Boolean).length).toBeGreaterThanOrEqual(100); // maps glued to their elements
    const batches = splitBatches(c, DEFAULT_WMEM_BATCH);
    expect(batches.length).toBeGreaterThan(5);
    expectSound(c, batches, DEFAULT_WMEM_BATCH);
  });

  it('glues no more than a quarter of a batch to a declaration: one service of 20,000 endpoints fits', () => {
    const glue = gluedBytesFor(DEFAULT_WMEM_BATCH);
    expect(glue).toBe(Math.floor(DEFAULT_WMEM_BATCH / 4));
    expect(gluedBytesFor(64 * 1024 * 1024)).toBe(1024 * 1024); // never more than 1 MiB
    const c = compileFullLoad('inet', 't', renderNftObjects(servicesWithEndpoints(1, 20_000)), glue);
    let run = 0;
    c.messages.forEach((m, i) => {
      run += cost(m);
      if (!c.withNext[i]) {
        expect(run).toBeLessThanOrEqual(glue + 70_000); // the cap is checked before a ~60 KB message is added
        run = 0;
      }
    });
    expectSound(c, splitBatches(c, DEFAULT_WMEM_BATCH), DEFAULT_WMEM_BATCH);
  });

  it('refuses, naming it, a run of glued messages larger than a whole batch, before anything is sent', () => {
    const c = compileFullLoad('inet', 't', renderNftObjects(servicesWithEndpoints(3, 4000)), 1024 * 1024);
    expect(() => splitBatches(c, 100_000)).toThrow(
      /^nftables batch: add map inet t endpoints-[^ ]+ \{ .* \} and the \d+ message\(s\) that must share its batch take \d+ bytes, more than one batch can carry \(100000: /,
    );
  });

  it('property: any sizes, glue and staging give sound batches', () => {
    const message = fc.record({
      size: fc.integer({ min: 0, max: 3000 }),
      glued: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 60 }),
        fc.array(message, { maxLength: 20 }),
        fc.integer({ min: 0, max: 12_000 }),
        (plain, hooking, extra) => {
          // staged messages follow the unstaged ones (as the compiler emits base chains and their
          // rules); a run's last message is never glued past its group
          const all = [...plain.map((m) => ({ ...m, stage: false })), ...hooking.map((m) => ({ ...m, stage: true }))];
          const c = {
            messages: all.map((m, i) => ({
              type: 0,
              flags: 0,
              payload: Buffer.alloc(m.size),
              operation: `op ${i}`,
            })),
            staged: all.map((m) => m.stage),
            withNext: all.map((m, i) => m.glued && all[i + 1]?.stage === m.stage),
          };
          // the largest glued run, and a limit from it up to 12 KB more
          let largest = 0;
          let run = 0;
          c.messages.forEach((m, i) => {
            run += cost(m);
            if (!c.withNext[i]) {
              largest = Math.max(largest, run);
              run = 0;
            }
          });
          const maxBytes = largest + extra;
          expectSound(c, splitBatches(c, maxBytes), maxBytes);
          if (largest > 20) expect(() => splitBatches(c, largest - 1)).toThrow(/more than one batch can carry/);
        },
      ),
      { numRuns: 300 },
    );
  });
});
