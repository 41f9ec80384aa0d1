import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DataHashTree } from '../../../libs/planner/data-hash-tree.ts';
import { NodeStateHashTree } from '../../../libs/planner/node-state-hash.ts';

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** FNV-1a over UTF-16 code units, as docs/versioning.md defines the bucket of a key. */
function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % 256;
}

/**
 * The hash definitions of docs/versioning.md written out plainly (whole-set, strings joined),
 * independent of BucketHashTree's incremental buffers: the tree must always give the same root.
 */
function reference(items: Map<string, string>, tag: string, groupSize: number): string {
  const buckets: string[][] = Array.from({ length: 256 }, () => []);
  for (const k of items.keys()) buckets[bucketOf(k)]!.push(k);
  const bucketHashes = buckets.map((keys) =>
    sha(
      keys
        .sort()
        .map((k) => `${k}\t${items.get(k)}\n`)
        .join(''),
    ),
  );
  if (!groupSize) return sha(tag + bucketHashes.join('\n'));
  const groups: string[] = [];
  for (let g = 0; g < 256 / groupSize; g++)
    groups.push(sha(bucketHashes.slice(g * groupSize, (g + 1) * groupSize).join('\n')));
  return sha(tag + groups.join('\n'));
}

describe('BucketHashTree roots equal the documented definitions', () => {
  const kinds = [
    { name: 'data hash', make: () => new DataHashTree(), tag: 'switchboard-data-v1\n', groupSize: 0 },
    { name: 'node state hash', make: () => new NodeStateHashTree(), tag: 'switchboard-node-state-v2\n', groupSize: 16 },
  ];
  for (const k of kinds) {
    it(`${k.name}: empty, then after every set/remove of a random sequence`, () => {
      let seed = 7;
      const rand = (n: number) => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed >>> 16) % n;
      };
      const tree = k.make();
      const items = new Map<string, string>();
      expect(tree.root()).toBe(reference(items, k.tag, k.groupSize));
      for (let step = 0; step < 600; step++) {
        const key = `svc:ns-${rand(5)}/s${rand(400)}`;
        if (rand(4) === 0) {
          items.delete(key);
          tree.set(key, undefined);
        } else {
          const v = sha(String(rand(1000)));
          items.set(key, v);
          tree.set(key, v);
        }
        // several changes between roots too: only touched buckets are rehashed
        if (rand(3) === 0) expect(tree.root()).toBe(reference(items, k.tag, k.groupSize));
      }
      expect(tree.root()).toBe(reference(items, k.tag, k.groupSize));
      expect(items.size).toBeGreaterThan(100);
    });
  }

  for (const k of kinds) {
    it(`${k.name}: overlayRoot equals the root of the items with the changes applied, and leaves the tree as it was`, () => {
      let seed = 11;
      const rand = (n: number) => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed >>> 16) % n;
      };
      const tree = k.make();
      const items = new Map<string, string>();
      for (let step = 0; step < 300; step++) {
        const key = `vs:10.96.${rand(3)}.${rand(200)}`;
        const v = sha(String(rand(1000)));
        items.set(key, v);
        tree.set(key, v);
        if (rand(10) !== 0) continue;
        // replace, remove (present or not), add; a key twice: the last one counts
        const changes: [string, string | undefined][] = [];
        for (let i = 0; i < 1 + rand(12); i++) {
          const c = `vs:10.96.${rand(3)}.${rand(220)}`;
          changes.push([c, rand(3) === 0 ? undefined : sha(`o${rand(1000)}`)]);
        }
        const expected = new Map(items);
        for (const [c, cv] of changes) {
          if (cv === undefined) expected.delete(c);
          else expected.set(c, cv);
        }
        expect(tree.overlayRoot(changes)).toBe(reference(expected, k.tag, k.groupSize));
        expect(tree.overlayRoot([])).toBe(reference(items, k.tag, k.groupSize));
        expect(tree.root()).toBe(reference(items, k.tag, k.groupSize));
      }
    });
  }

  // rootSteps run in steps by the planner's build: one left unfinished (a newer version's update
  // sets items between its steps) must leave no bucket or group stale for the next root
  for (const k of kinds) {
    it(`${k.name}: rootSteps left unfinished, items set, then root() equals the definition`, () => {
      const tree = k.make();
      const items = new Map<string, string>();
      const setEvery = (step: number, from: number, tag: string) => {
        for (let i = from; i < 2000; i += step) {
          items.set(`entry:s${i}`, sha(`${tag}/${i}`));
          tree.set(`entry:s${i}`, sha(`${tag}/${i}`));
        }
      };
      for (let round = 0; round < 3; round++) {
        setEvery(1, 0, `a${round}`); // every bucket dirty
        const steps = tree.rootSteps();
        // all but the last buckets hashed (16 a step): most groups hashed only by this run
        for (let s = 0; s < 15 - round; s++) expect(steps.next().done).toBe(false);
        setEvery(1999, round, `b${round}`);
        expect(tree.root()).toBe(reference(items, k.tag, k.groupSize));
      }
      const steps = tree.overlayRootSteps([['entry:new', '1']]);
      let n = 0;
      for (let r = steps.next(); !r.done; r = steps.next()) n += 1;
      expect(n).toBe(0); // nothing to rehash but one bucket: no step between
    });
  }
});
