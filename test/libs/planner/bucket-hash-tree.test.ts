import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OverlayMemo, type IdentifiedItems } from '../../../libs/planner/bucket-hash-tree.ts';
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

  // The planner keeps one memo per node across versions: each later overlay reuses the buckets
  // where neither the node's changes nor the tree's items moved. Several callers (nodes) share the
  // tree; items are set between their overlays; a caller's changes drift a little or stay; an
  // overlay is sometimes left unfinished. Every root must still be the definition's.
  it('node state hash: overlayRoot with a memo per caller equals the definition across sets, drifting changes and unfinished runs', () => {
    let seed = 23;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 16) % n;
    };
    const tree = new NodeStateHashTree();
    const items = new Map<string, string>();
    for (let i = 0; i < 3000; i++) {
      const key = `vs:10.96.${rand(8)}.${rand(250)}`;
      items.set(key, sha(`i${i}`));
      tree.set(key, items.get(key)!);
    }
    const callers = Array.from({ length: 4 }, (_, c) => ({
      memo: new OverlayMemo(),
      changes: new Map<string, string | undefined>(
        Array.from({ length: 200 }, (_, i) => [`entry:n${c}:${i}`, '1'] as [string, string | undefined]),
      ),
    }));
    let reused = 0;
    let unfinished = 0;
    for (let round = 0; round < 40; round++) {
      // the shared items move in a few buckets (sometimes none)
      for (let i = rand(4); i > 0; i--) {
        const key = `vs:10.96.${rand(8)}.${rand(250)}`;
        if (rand(4) === 0) {
          items.delete(key);
          tree.set(key, undefined);
        } else {
          items.set(key, sha(`r${round}/${i}`));
          tree.set(key, items.get(key)!);
        }
      }
      for (const caller of callers) {
        // its own changes: mostly the same, some replaced, removed (of a shared item too) or added
        for (let i = rand(3); i > 0; i--) {
          const r = rand(4);
          if (r === 0) caller.changes.delete([...caller.changes.keys()][rand(caller.changes.size)]!);
          else if (r === 1) caller.changes.set([...items.keys()][rand(items.size)]!, undefined);
          else caller.changes.set(`entry:x${rand(1000)}`, sha(`c${round}`));
        }
        if (rand(8) === 0) {
          // many of its changes move, then an overlay is left unfinished after its first 16
          // buckets (a newer version superseded it); the next one, with the same changes and
          // nothing set, must not take those buckets' groups from the memo
          for (let i = 0; i < 60; i++) caller.changes.set(`entry:m${rand(5000)}`, sha(`m${round}`));
          const steps = tree.overlayRootSteps(caller.changes, caller.memo);
          expect(steps.next().done).toBe(false);
          steps.return('');
          unfinished += 1;
        }
        const expected = new Map(items);
        for (const [k, v] of caller.changes) {
          if (v === undefined) expected.delete(k);
          else expected.set(k, v);
        }
        expect(tree.overlayRoot(caller.changes, caller.memo)).toBe(
          reference(expected, 'switchboard-node-state-v2\n', 16),
        );
        expect(caller.memo.bucketsHashed).toBeLessThanOrEqual(256);
        if (caller.memo.bucketsHashed < 20) reused += 1;
      }
      expect(tree.root()).toBe(reference(items, 'switchboard-node-state-v2\n', 16));
    }
    // the memo does save work: most overlays after the first hash few buckets again
    expect(reused).toBeGreaterThan(100);
    expect(unfinished).toBeGreaterThan(5);
    // exactly what moved is hashed again: one changed item of the caller's, one set in the tree
    const memo0 = new OverlayMemo();
    const mine = new Map<string, string | undefined>(Array.from({ length: 300 }, (_, i) => [`entry:y${i}`, '1']));
    const root0 = () => tree.overlayRoot(mine, memo0);
    const expectDefinition = (root: string) => {
      const expected = new Map(items);
      for (const [k, v] of mine) v === undefined ? expected.delete(k) : expected.set(k, v);
      expect(root).toBe(reference(expected, 'switchboard-node-state-v2\n', 16));
    };
    expectDefinition(root0());
    expect(memo0.bucketsHashed).toBeGreaterThan(150);
    expectDefinition(root0());
    expect(memo0.bucketsHashed).toBe(0); // the same changes, nothing set
    mine.set('entry:y7', '2');
    expectDefinition(root0());
    // the first call whose changes moved takes the per-bucket digests a first call leaves out,
    // for the group they moved in: every bucket of its changes in that group hashed once more
    const groupOfY7 = Math.floor(bucketOf('entry:y7') / 16);
    const inGroup = new Set([...mine.keys()].map(bucketOf).filter((b) => Math.floor(b / 16) === groupOfY7));
    expect(inGroup.size).toBeGreaterThan(1);
    expect(memo0.bucketsHashed).toBe(inGroup.size);
    mine.set('entry:y7', '3');
    expectDefinition(root0());
    expect(memo0.bucketsHashed).toBe(1); // its one changed item's bucket
    mine.delete('entry:y8'); // a bucket left with fewer of its changes, or none
    expectDefinition(root0());
    // its bucket alone where its group already moved once; else, that group's first move, every
    // bucket of its changes in the group
    const groupOfY8 = Math.floor(bucketOf('entry:y8') / 16);
    const y8Group = new Set([...mine.keys()].map(bucketOf).filter((b) => Math.floor(b / 16) === groupOfY8));
    if (groupOfY8 === groupOfY7) expect(memo0.bucketsHashed).toBeLessThanOrEqual(1);
    else expect(memo0.bucketsHashed).toBe(y8Group.size);
    items.set('entry:y9', 'x'); // the tree moves under one of its changes: that bucket again
    tree.set('entry:y9', 'x');
    expectDefinition(root0());
    expect(memo0.bucketsHashed).toBe(1);
    // a memo given to another tree starts over, and is right there too
    const other = new NodeStateHashTree();
    const memo = callers[0]!.memo;
    expect(other.overlayRoot([['entry:a', '1']], memo)).toBe(
      reference(new Map([['entry:a', '1']]), 'switchboard-node-state-v2\n', 16),
    );
  });

  // The planner gives a node's NodePort copies as identified items (by their group's stamp): they
  // must count in the root exactly as the same items given as changes, and be made into lines
  // only where a bucket of theirs is hashed again (when the caller's items moved: the buckets
  // whose items moved, and the first time a group's items move after a first call, which keeps
  // only the groups' digests, every bucket of that group).
  it("node state hash: identified items give the definition's root, and are made only where their bucket is hashed", () => {
    let seed = 41;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 16) % n;
    };
    let nextId = 1;
    /** A block keeping the contract: an id names one key and value; a changed item takes a new id. */
    class Block implements IdentifiedItems {
      made = 0;
      ids = new Float64Array(0);
      entries: { id: number; key: string; value: string }[] = [];
      constructor(
        readonly label: string,
        readonly bucketsKnown: boolean,
      ) {}
      add(key: string) {
        this.entries.push({ id: nextId++, key, value: sha(`${key}/${nextId}`) });
        this.ids = Float64Array.from(this.entries, (e) => e.id);
      }
      replace(j: number) {
        const e = this.entries[j]!;
        this.entries[j] = { id: nextId++, key: e.key, value: sha(`${e.key}/${nextId}`) };
        this.ids = Float64Array.from(this.entries, (x) => x.id);
      }
      bucket(j: number) {
        return this.bucketsKnown ? bucketOf(this.entries[j]!.key) : undefined;
      }
      item(j: number): readonly [string, string] {
        this.made += 1;
        return [this.entries[j]!.key, this.entries[j]!.value];
      }
    }
    const tree = new NodeStateHashTree();
    const items = new Map<string, string>();
    const setItem = (key: string, value: string | undefined) => {
      if (value === undefined) items.delete(key);
      else items.set(key, value);
      tree.set(key, value);
    };
    for (let i = 0; i < 3000; i++) setItem(`vs:10.96.${rand(8)}.${rand(250)}`, sha(`i${i}`));
    const given = new Map<string, string | undefined>(Array.from({ length: 60 }, (_, i) => [`entry:g${i}`, '1']));
    const blocks = [new Block('192.0.2.1', true), new Block('2001:db8::1', false)];
    for (const [b, block] of blocks.entries()) for (let j = 0; j < 120; j++) block.add(`vs:TCP/n${b}:${30000 + j}`);
    const expected = () => {
      const e = new Map(items);
      for (const [k, v] of given) v === undefined ? e.delete(k) : e.set(k, v);
      for (const block of blocks) for (const x of block.entries) e.set(x.key, x.value);
      return reference(e, 'switchboard-node-state-v2\n', 16);
    };
    const memo = new OverlayMemo();
    const overlay = () => {
      for (const block of blocks) block.made = 0;
      const root = tree.overlayRoot(given, memo, blocks);
      expect(root).toBe(expected());
      // the same without a memo: every identified item made
      expect(tree.overlayRoot(given, undefined, blocks)).toBe(root);
      return blocks.map((b) => b.made - b.entries.length); // less the memo-less call's
    };
    /** The caller's changes per bucket as the test sees them: given lines, then each block's ids. */
    const changesByBucket = () => {
      const sig = new Map<number, string>();
      const add = (b: number, text: string) => sig.set(b, (sig.get(b) ?? '') + text);
      for (const k of [...given.keys()].sort()) add(bucketOf(k), `${k}=${given.get(k)}\n`);
      for (const block of blocks) for (const e of block.entries) add(bucketOf(e.key), `${block.label}#${e.id}\n`);
      return sig;
    };
    expect(overlay()).toEqual([120, 120]); // a first call makes every item
    let last = changesByBucket();
    /** Groups (16 buckets each) whose buckets' digests the memo holds: none after a first call. */
    const bucketsKnown = new Set<number>();
    const groupOf = (b: number) => Math.floor(b / 16);
    let quiet = 0;
    let partial = 0;
    let narrowed = 0;
    for (let round = 0; round < 40; round++) {
      const moved = new Set<number>();
      for (let i = rand(3); i > 0; i--) {
        const key = rand(3) === 0 ? blocks[0]!.entries[rand(120)]!.key : `vs:10.96.${rand(8)}.${rand(250)}`;
        const value = rand(4) === 0 ? undefined : sha(`r${round}/${i}`);
        if (items.get(key) !== value) moved.add(bucketOf(key));
        setItem(key, value);
      }
      const r = rand(6);
      if (r === 0)
        blocks[rand(2)]!.replace(rand(120)); // one copy's winner changed: a new id
      else if (r === 1) given.set(`entry:x${rand(100)}`, '1');
      else if (r === 2) {
        // many of the caller's items move, and an overlay is left unfinished after its first 16
        // buckets: the next one starts over and makes every item
        for (let i = 0; i < 60; i++) given.set(`entry:m${rand(5000)}`, sha(`m${round}`));
        const steps = tree.overlayRootSteps(given, memo, blocks);
        expect(steps.next().done).toBe(false);
        steps.return('');
      }
      const now = changesByBucket();
      const made = overlay();
      if (r === 2)
        bucketsKnown.clear(); // that overlay started over: a first call
      else if (r < 2 && [...now].some(([b, t]) => last.get(b) !== t)) {
        // the caller's changes moved: the items of a block that knows their buckets are made only
        // in the buckets hashed again (the tree's moved ones, and in a group whose changes moved
        // those whose changes moved, or all with changes the first time the group moves since a
        // first call); a block that does not know them makes every item
        const movedGroups = new Set([...now.keys()].filter((b) => last.get(b) !== now.get(b)).map(groupOf));
        const rehash = new Set(
          [...now.keys()].filter(
            (b) =>
              moved.has(b) ||
              (movedGroups.has(groupOf(b)) && (!bucketsKnown.has(groupOf(b)) || last.get(b) !== now.get(b))),
          ),
        );
        const inRehash = blocks[0]!.entries.filter((e) => rehash.has(bucketOf(e.key))).length;
        expect(made).toEqual([inRehash, 120]);
        if (inRehash < 120) narrowed += 1;
        for (const g of movedGroups) bucketsKnown.add(g);
      }
      last = now;
      if (r > 2) {
        // nothing of the caller's moved: made only in the buckets hashed again (those of its own
        // items the tree moved in), the items whose bucket the block does not know included
        const own = new Set([...given.keys(), ...blocks.flatMap((b) => b.entries.map((e) => e.key))].map(bucketOf));
        const rehash = [...moved].filter((b) => own.has(b));
        const inRehash = blocks[0]!.entries.filter((e) => rehash.includes(bucketOf(e.key))).length;
        expect(made).toEqual(rehash.length === 0 ? [0, 0] : [inRehash, 120]);
        if (rehash.length === 0) quiet += 1;
        else partial += 1;
      } else if (r === 2) expect(made).toEqual([120, 120]);
    }
    expect(quiet).toBeGreaterThan(3);
    expect(partial).toBeGreaterThan(3);
    expect(narrowed).toBeGreaterThan(3);
  });

  // The planner may run several nodes' checks in slices of the same version: two callers'
  // overlays on one tree, each with its own memo and changes that moved, stepped in turn, must
  // each equal the definition (what a call keeps between its steps is its own)
  it('node state hash: two callers whose changes moved, their overlays stepped in turn, each equal the definition', () => {
    const tree = new NodeStateHashTree();
    const items = new Map<string, string>();
    for (let i = 0; i < 3000; i++) {
      items.set(`vs:10.96.${i % 7}.${i}`, sha(`i${i}`));
      tree.set(`vs:10.96.${i % 7}.${i}`, sha(`i${i}`));
    }
    /** Each caller's identified items: 200 copies on its own address, named by id (round and index). */
    const block = (label: string, round: number): IdentifiedItems => {
      const key = (j: number) => `vs:TCP/${label}:${30000 + j}`;
      return {
        label,
        ids: Float64Array.from({ length: 200 }, (_, j) => round * 1000 + j),
        bucket: (j) => bucketOf(key(j)),
        item: (j) => [key(j), sha(`${label}/${round}/${j}`)],
      };
    };
    const callers = ['a', 'b'].map((name, c) => ({
      label: `192.0.2.${c + 1}`,
      memo: new OverlayMemo(),
      changes: new Map<string, string | undefined>(
        Array.from({ length: 400 }, (_, i) => [`entry:${name}${i}`, sha(`${name}${i}`)]),
      ),
    }));
    const expected = (changes: Map<string, string | undefined>, identified: IdentifiedItems) => {
      const e = new Map(items);
      for (const [k, v] of changes) v === undefined ? e.delete(k) : e.set(k, v);
      for (let j = 0; j < identified.ids.length; j++) e.set(...identified.item(j));
      return reference(e, 'switchboard-node-state-v2\n', 16);
    };
    for (let round = 0; round < 4; round++) {
      // each caller's changes move in many buckets (the first round: a first call each)
      if (round > 0)
        for (const [c, caller] of callers.entries())
          for (let i = 0; i < 400; i += 3) caller.changes.set(`entry:${'ab'[c]}${i}`, sha(`r${round}/${i}`));
      // the blocks' items move every other round (new ids), the plain changes every round
      const blocks = callers.map((caller) => block(caller.label, round >> 1));
      const runs = callers.map((caller, c) => tree.overlayRootSteps(caller.changes, caller.memo, [blocks[c]!]));
      const roots: (string | undefined)[] = [undefined, undefined];
      let steps = 0;
      while (roots.some((r) => r === undefined))
        for (const [c, run] of runs.entries()) {
          if (roots[c] !== undefined) continue;
          const r = run.next();
          if (r.done) roots[c] = r.value;
          else steps += 1;
        }
      expect(steps).toBeGreaterThan(4); // they did run in turn
      for (const [c, caller] of callers.entries())
        expect(roots[c], `round ${round} caller ${c}`).toBe(expected(caller.changes, blocks[c]!));
    }
  });

  // A node's first overlay makes its identified items whose buckets it does not know (its NodePort
  // copies: one SHA-256 of ~25 kB each at 250 endpoints) to sort them by bucket: in steps, so that
  // the planner's slice stays short (every copy of a node made in one step: ~40 ms at 10k services)
  it('node state hash: a first overlay makes identified items of unknown buckets in steps of at most 128', () => {
    const tree = new NodeStateHashTree();
    const items = new Map<string, string>();
    for (let i = 0; i < 500; i++) {
      items.set(`vs:10.96.0.${i}`, sha(`i${i}`));
      tree.set(`vs:10.96.0.${i}`, sha(`i${i}`));
    }
    let made = 0;
    const key = (j: number) => `vs:TCP/192.0.2.1:${30000 + j}`;
    const block: IdentifiedItems = {
      label: '192.0.2.1',
      ids: Float64Array.from({ length: 1000 }, (_, j) => j + 1),
      bucket: () => undefined,
      item: (j) => {
        made += 1;
        return [key(j), sha(`copy${j}`)];
      },
    };
    const memo = new OverlayMemo();
    // left after two steps of making (a newer version superseded it): the memo starts over
    tree.root(); // nothing of the tree's own left to hash: the steps below are the overlay's
    const left = tree.overlayRootSteps([], memo, [block]);
    left.next();
    left.next();
    expect(made).toBe(2 * 128);
    const run = tree.overlayRootSteps([], memo, [block]);
    let most = 0;
    let steps = 0;
    let root: string | undefined;
    for (;;) {
      made = 0;
      const r = run.next();
      most = Math.max(most, made);
      if (r.done) {
        root = r.value;
        break;
      }
      steps += 1;
    }
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(128);
    expect(steps).toBeGreaterThanOrEqual(1000 / 128);
    const e = new Map(items);
    for (let j = 0; j < 1000; j++) e.set(key(j), sha(`copy${j}`));
    expect(root).toBe(reference(e, 'switchboard-node-state-v2\n', 16));
  });

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
