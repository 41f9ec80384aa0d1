// What the ipvs dataplane's set sizing rests on (test/libs/dataplane/ipvs/ipset-room.test.ts, whose
// fake kernel refuses an entry past maxelem as this one does), against this host's kernel in a
// netns the test creates: a hash set made with the default maxelem takes 65,536 entries (or a few
// more) and then refuses (IPSET_ERR_HASH_FULL); one made with room takes more; a swap exchanges the two sets under
// their names, each with its own maxelem.
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test } from 'vitest';
import { TestNetns } from './support/netns.ts';

const SCENARIOS = fileURLToPath(new URL('./support/ipset-scenarios.ts', import.meta.url));
let ns: TestNetns | undefined;
afterEach(async () => {
  await ns?.destroy();
  ns = undefined;
});

test('maxelem: the default holds 65,536 entries, a set made with room more; a swap moves the sizes with the sets', async () => {
  ns = await TestNetns.create('ipsetroom');
  const r = await ns.run<Record<string, unknown>>(SCENARIOS, 'setRoom', [], { timeoutMs: 120_000 });
  // the kernel checks the count per region of the hash, so it may take an entry or a few more
  // than maxelem before it refuses (65,536 or 65,537 in runs here); never thousands more
  const taken = r.taken as number;
  expect(r.refused).toBe('IPSET_ERR_HASH_FULL');
  expect(taken).toBeGreaterThanOrEqual(65_536);
  expect(taken).toBeLessThan(65_600);
  expect(r.before).toEqual({
    defaultSize: { maxElem: 65_536, entries: taken },
    withRoom: { maxElem: 262_144, entries: 70_000 },
  });
  expect(r.swapped).toEqual({
    defaultSize: { maxElem: 262_144, entries: 70_000 },
    withRoom: { maxElem: 65_536, entries: taken },
  });
}, 150_000);
