// A whole-table load larger than one batch through a socket with the send buffer a node gets at
// the kernel's default wmem_max (2 × 212,992 bytes): every batch fits it, and the table reads back
// exactly as the same load through a larger buffer. Before, a batch was cut inside a map's glued
// run (its declaration and first elements by batch id) and overshot the buffer: the kernel
// refused the datagram (EMSGSIZE) and the load failed on every try. Real kernel, own netns.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import type { loadThroughSmallSendBuffer } from './support/nft-small-send-buffer-scenario.ts';

const SCENARIO = fileURLToPath(new URL('./support/nft-small-send-buffer-scenario.ts', import.meta.url));
let ns: TestNetns;
beforeAll(async () => {
  ns = await TestNetns.create('nftsndbuf');
});
afterAll(async () => {
  await ns?.destroy();
});

it('large endpoint maps load whole through a default-sized send buffer and read back as through a large one', async () => {
  const results = await ns.run<Awaited<ReturnType<typeof loadThroughSmallSendBuffer>>>(
    SCENARIO,
    'loadThroughSmallSendBuffer',
    [
      [
        [100, 600], // 60,000 endpoints in maps of ~36 KB each
        [1, 20_000], // one map larger than a batch: glued in part, the rest by name
      ],
    ],
    { timeoutMs: 120_000 },
  );
  for (const r of results) {
    expect(r.maxBatchBytes, 'the socket got the default-sized buffer').toBeLessThan(1024 * 1024);
    expect(r.loaded, `${r.services} × ${r.endpoints}`).toBe('loaded');
    expect(r.smallBatches).toBeGreaterThan(1);
    expect(r.small).not.toBe('absent');
    expect(r.small).toBe(r.large);
  }
  expect(results.map((r) => [r.services, r.endpoints])).toEqual([
    [100, 600],
    [1, 20_000],
  ]);
}, 150_000);
