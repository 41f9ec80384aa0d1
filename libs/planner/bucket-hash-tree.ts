import { createHash, type Hash } from 'node:crypto';
import { runSteps, sha256Bytes, sha256Hex } from '../model/index.ts';

const BUCKETS = 256;
const EMPTY = sha256Hex('');
/** One bucket's or group's hash in the joined text: 64 hex digits and the '\n' after it. */
const LINE = 65;
/** Buckets rehashed per step of rootSteps and overlayRootSteps (~1/16 of the tree's text). */
const BUCKETS_PER_STEP = 16;
/**
 * Identified items made per step to find their buckets (a node's first overlay makes its NodePort
 * copies there: one SHA-256 of each's text, ~25 kB at 250 endpoints, ~15 µs).
 */
const MADE_PER_STEP = 128;

export interface BucketHashTreeOptions {
  /** Version tag hashed into the root, so trees of different kinds never collide. */
  readonly tag: string;
  /**
   * Buckets per intermediate group (a divisor of 256), or 0 for none. With groups, a change
   * rehashes one bucket, its group and the small root (~2 kB) instead of all 256 bucket hashes.
   */
  readonly groupSize: number;
}

/**
 * A content hash over a set of (key, value) items that updates in O(touched buckets): items fall
 * into 256 buckets by FNV-1a of the key; a bucket hashes its sorted "key\tvalue\n" lines;
 * optional groups hash their buckets' hashes joined by "\n"; the root is the SHA-256 of the tag
 * and the top-level hashes joined by "\n". Depends only on the set of items, never on the order
 * they were set in. Used for data versions (DataHashTree) and node states (NodeStateHashTree);
 * docs/versioning.md gives both definitions.
 */
export class BucketHashTree {
  private readonly buckets: Map<string, string>[] = Array.from({ length: BUCKETS }, () => new Map());
  /**
   * The bucket hashes as the text the groups (or the root) hash: each hash followed by '\n', kept
   * in place, so a root hashes a slice of it instead of joining 256 strings and encoding the
   * result again (this runs on every node for every event). Same bytes as `join('\n')`.
   */
  private readonly bucketText: Buffer;
  private readonly groupText: Buffer;
  private readonly tag: Buffer;
  /**
   * The text the root hashes: the tag, then the top-level hashes (bucketText without groups,
   * groupText with them, each a view into this buffer), so a root is one one-shot SHA-256 over a
   * slice of it instead of a Hash object fed twice.
   */
  private readonly rootText: Buffer;
  private readonly dirty = new Set<number>();
  /** Groups whose buckets were rehashed by a rootSteps left unfinished (a set() came between its steps). */
  private readonly dirtyGroups = new Set<number>();
  private rootCache: string | undefined;
  /**
   * Per bucket, its lines in sorted order as bytes with their offsets, kept only for overlayRoot
   * (built on its first use there, dropped when the bucket changes): an overlay hashes the spans
   * between its own lines instead of sorting and joining the bucket again.
   */
  private readonly sortedLines: (SortedLines | undefined)[] = new Array(BUCKETS);
  /** Changes made by set() so far, and per bucket the count at its last change (OverlayMemo's clock). */
  private changes = 0;
  private readonly bucketChangedAt = new Float64Array(BUCKETS);
  private topScratch: Buffer | undefined;
  private groupScratch: Buffer | undefined;

  constructor(private readonly options: BucketHashTreeOptions) {
    if (options.groupSize !== 0 && BUCKETS % options.groupSize !== 0)
      throw new Error(`groupSize must divide ${BUCKETS}`);
    this.tag = Buffer.from(options.tag, 'utf8');
    const groups = options.groupSize ? BUCKETS / options.groupSize : 0;
    const topLines = groups || BUCKETS;
    this.rootText = Buffer.alloc(this.tag.length + topLines * LINE);
    this.tag.copy(this.rootText);
    const top = this.rootText.subarray(this.tag.length);
    this.bucketText = groups ? Buffer.alloc(BUCKETS * LINE) : top;
    this.groupText = groups ? top : Buffer.alloc(0);
    for (let b = 0; b < BUCKETS; b++) writeLine(this.bucketText, b, EMPTY);
    if (groups) {
      const emptyGroup = sha256Hex(new Array<string>(options.groupSize).fill(EMPTY).join('\n'));
      for (let i = 0; i < groups; i++) writeLine(this.groupText, i, emptyGroup);
    }
  }

  set(key: string, value: string | undefined): void {
    const b = bucketOf(key);
    const bucket = this.buckets[b]!;
    if (value === undefined) {
      if (!bucket.delete(key)) return;
    } else {
      if (bucket.get(key) === value) return;
      bucket.set(key, value);
    }
    this.dirty.add(b);
    this.sortedLines[b] = undefined;
    this.rootCache = undefined;
    this.bucketChangedAt[b] = ++this.changes;
  }

  /**
   * The root this tree would have with `changes` applied (value undefined: the item removed; a
   * key given twice: the last value), leaving the tree as it is. Rehashes only the buckets the
   * changes fall in, their groups and the root: many variants of one large item set (every node's
   * state: shared items plus a few of its own) cost O(their own items) each, not O(all items).
   * With a memo of the same caller's last overlay (groups only), only what moved since is hashed.
   */
  overlayRoot(
    changes: Iterable<readonly [string, string | undefined]>,
    memo?: OverlayMemo,
    identified: readonly IdentifiedItems[] = [],
  ): string {
    return runSteps(this.overlayRootSteps(changes, memo, identified));
  }

  /**
   * overlayRoot(changes) in steps of about BUCKETS_PER_STEP rehashed buckets (or MADE_PER_STEP
   * identified items made to find their buckets), for a caller that must not block for all of
   * them (a node's own items fall in every bucket of a large state: its whole text hashed again).
   * Nothing may be set between its steps.
   */
  *overlayRootSteps(
    changes: Iterable<readonly [string, string | undefined]>,
    memo?: OverlayMemo,
    identified: readonly IdentifiedItems[] = [],
  ): Generator<void, string, void> {
    yield* this.rootSteps();
    if (memo && this.options.groupSize)
      return yield* this.memoOverlaySteps(Array.isArray(changes) ? changes : [...changes], memo, identified);
    const base = this.root();
    const byBucket = byBucketOf(identified.length ? [...changes, ...itemsOf(identified)] : changes);
    if (byBucket.size === 0) return base;
    const g = this.options.groupSize;
    const bucketHashes = new Map<number, string>();
    let n = 0;
    for (const [b, m] of byBucket) {
      bucketHashes.set(b, this.overlayBucket(b, m).digest('hex'));
      if (++n % BUCKETS_PER_STEP === 0) yield;
    }
    const patched = (text: Buffer, first: number, count: number, hashes: Map<number, string>) => {
      const copy = Buffer.from(text.subarray(first * LINE, (first + count) * LINE));
      for (const [i, h] of hashes) if (i >= first && i < first + count) writeLine(copy, i - first, h);
      return copy.subarray(0, count * LINE - 1);
    };
    let top: Buffer;
    if (!g) top = patched(this.bucketText, 0, BUCKETS, bucketHashes);
    else {
      const groupHashes = new Map<number, string>();
      for (const b of bucketHashes.keys()) {
        const i = Math.floor(b / g);
        if (!groupHashes.has(i)) groupHashes.set(i, sha256Hex(patched(this.bucketText, i * g, g, bucketHashes)));
      }
      top = patched(this.groupText, 0, BUCKETS / g, groupHashes);
    }
    return createHash('sha256').update(this.tag).update(top).digest('hex');
  }

  /**
   * overlayRootSteps with the memo of this caller's last overlay on this tree: a bucket is hashed
   * again only where the caller's changes in it differ from last time or the tree's own lines in
   * it changed since (set() after the memo was filled), a group only where one of its buckets'
   * hashes moved; the rest is taken from the memo. The caller's changes are digested whole
   * (O(them)), and group by group, then bucket by bucket, only when that digest moved; what is
   * saved is hashing the tree's text again, O(its items), for the buckets that did not move.
   * Identified items (see IdentifiedItems) count in the digests by their ids and are made into
   * lines only where their bucket is hashed. A run left unfinished leaves the memo marked
   * incomplete: the next one starts over.
   */
  private *memoOverlaySteps(
    given: readonly (readonly [string, string | undefined])[],
    memo: OverlayMemo,
    identified: readonly IdentifiedItems[],
  ): Generator<void, string, void> {
    const g = this.options.groupSize;
    const groups = BUCKETS / g;
    memo.fit(groups);
    const fresh = memo.owner !== this || !memo.complete;
    memo.owner = this;
    memo.complete = false;
    // In the caller's order: the same changes in another order only take the slower path below.
    let text = '';
    for (const [k, v] of given) text += v === undefined ? `${k}\n` : `${k}\t${v}\n`;
    const whole = identified.length === 0 ? sha256Bytes(text) : wholeDigest(text, identified);
    const sameChanges = !fresh && whole.equals(memo.whole);
    whole.copy(memo.whole);
    const moved = (b: number) => fresh || this.bucketChangedAt[b]! > memo.at;
    const dirtyGroups = new Uint8Array(groups);
    let hashed = 0;
    if (sameChanges) {
      // the buckets with changes are those of last time: only where the tree moved is one hashed
      const rehash = new Set<number>();
      for (let b = 0; b < BUCKETS; b++) {
        if (!moved(b)) continue;
        dirtyGroups[Math.floor(b / g)] = 1;
        if (memo.own[b]) rehash.add(b);
      }
      if (rehash.size > 0) {
        const byBucket = byBucketOf(given, rehash);
        for (const block of identified)
          for (let j = 0, n = block.ids.length; j < n; j++) {
            const known = block.bucket(j);
            if (known !== undefined && !rehash.has(known)) continue;
            const [k, v] = block.item(j);
            const b = known ?? bucketOf(k);
            if (!rehash.has(b)) continue;
            let m = byBucket.get(b);
            if (!m) byBucket.set(b, (m = new Map()));
            m.set(k, v);
          }
        for (const [b, m] of byBucket) {
          this.overlayBucket(b, m)
            .digest()
            .copy(memo.hashes, b * 32);
          if (++hashed % BUCKETS_PER_STEP === 0) yield;
        }
      }
    } else {
      // group by group: each group's changes digested (its identified items by block and id, not
      // made), then, where that moved, each of its buckets'; only a bucket whose changes moved
      // (or the tree's lines in it) has its items made and is hashed again. A first call hashes
      // every bucket of its changes and keeps its groups' digests only (its buckets' would cost
      // every node's first version more than they save): a group's buckets are digested the first
      // time its changes move, every bucket of them with changes hashed that once.
      const byBucket = byBucketOf(given);
      const byId = yield* identifiedByBucketSteps(identified);
      // this call's own (a step may let another caller's overlay run before the next)
      const changes = new ChangesText(identified);
      for (let i = 0; i < groups; i++) {
        changes.clear();
        for (let b = i * g; b < (i + 1) * g; b++)
          changes.addBucket(byBucket.get(b), byId, byId.start[b]!, byId.start[b + 1]!);
        const groupDigest = changes.digest();
        const groupAt = i * DIGEST;
        const known = fresh ? 0 : memo.known[i]!;
        const groupSame =
          (known & GROUP_KNOWN) !== 0 &&
          groupDigest.subarray(0, DIGEST).equals(memo.changeGroups.subarray(groupAt, groupAt + DIGEST));
        groupDigest.copy(memo.changeGroups, groupAt, 0, DIGEST);
        // the group's changes moved: each bucket's compared with its own digest, where known
        const bucketDigests = fresh || groupSame ? undefined : changes.bucketDigests();
        memo.known[i] = fresh ? GROUP_KNOWN : groupSame ? known : GROUP_KNOWN | BUCKETS_KNOWN;
        for (let b = i * g; b < (i + 1) * g; b++) {
          const m = byBucket.get(b);
          const first = byId.start[b]!;
          const end = byId.start[b + 1]!;
          if (!m && first === end) {
            if (memo.own[b] || moved(b)) dirtyGroups[i] = 1;
            memo.own[b] = 0;
            continue;
          }
          let same = !moved(b) && memo.own[b] === 1;
          if (bucketDigests) {
            const digest = bucketDigests[b - i * g]!;
            const at = b * DIGEST;
            same &&=
              (known & BUCKETS_KNOWN) !== 0 &&
              digest.subarray(0, DIGEST).equals(memo.digests.subarray(at, at + DIGEST));
            digest.copy(memo.digests, at, 0, DIGEST);
          }
          if (same) continue;
          const lines = new Map(m);
          for (let e = first; e < end; e++) {
            const [k, v] = byId.made.get(e) ?? identified[byId.block[e]!]!.item(byId.index[e]!);
            lines.set(k, v);
          }
          this.overlayBucket(b, lines)
            .digest()
            .copy(memo.hashes, b * 32);
          memo.own[b] = 1;
          dirtyGroups[i] = 1;
          if (++hashed % BUCKETS_PER_STEP === 0) yield;
        }
      }
    }
    memo.bucketsHashed = hashed;
    const top = this.scratchTop();
    const groupText = this.scratchGroup(g);
    for (let i = 0; i < groups; i++) {
      if (dirtyGroups[i]) {
        this.bucketText.copy(groupText, 0, i * g * LINE, (i + 1) * g * LINE);
        for (let b = i * g; b < (i + 1) * g; b++)
          if (memo.own[b])
            groupText.write(memo.hashes.toString('hex', b * 32, b * 32 + 32), (b - i * g) * LINE, 64, 'latin1');
        sha256Bytes(groupText.subarray(0, g * LINE - 1)).copy(memo.groups, i * 32);
      }
      top.write(memo.groups.toString('hex', i * 32, i * 32 + 32), this.tag.length + i * LINE, 64, 'latin1');
    }
    memo.at = this.changes;
    memo.complete = true;
    return sha256Hex(top.subarray(0, top.length - 1));
  }

  /** A buffer laid out as rootText, for a memo overlay's root (its lines overwritten; no step between uses). */
  private scratchTop(): Buffer {
    if (!this.topScratch) {
      this.topScratch = Buffer.alloc(this.rootText.length);
      this.tag.copy(this.topScratch);
      for (let i = this.tag.length + LINE - 1; i < this.topScratch.length; i += LINE) this.topScratch[i] = 0x0a;
    }
    return this.topScratch;
  }

  /** A buffer for one group's bucket lines, for a memo overlay (no step between uses). */
  private scratchGroup(g: number): Buffer {
    this.groupScratch ??= Buffer.alloc(g * LINE);
    return this.groupScratch;
  }

  /** Bucket b's hash with `changes` applied: its stored lines hashed span by span around theirs. */
  private overlayBucket(b: number, changes: Map<string, string | undefined>): Hash {
    const lines = (this.sortedLines[b] ??= sortedLinesOf(this.buckets[b]!));
    const h = createHash('sha256');
    let pos = 0;
    let i = 0;
    for (const k of [...changes.keys()].sort()) {
      i = lowerBound(lines.keys, k, i);
      const at = lines.offsets[i]!;
      if (at > pos) h.update(lines.text.subarray(pos, at));
      pos = at;
      if (lines.keys[i] === k) pos = lines.offsets[++i]!; // replaced or removed: its stored line goes
      const v = changes.get(k);
      if (v !== undefined) h.update(`${k}\t${v}\n`, 'utf8');
    }
    if (pos < lines.text.length) h.update(lines.text.subarray(pos));
    return h;
  }

  /** rootSteps() in one call, without a generator (every node asks on every event). */
  root(): string {
    if (this.rootCache) return this.rootCache;
    for (const b of this.dirty) this.rehashBucket(b);
    return this.finishRoot();
  }

  /**
   * root() in steps of about BUCKETS_PER_STEP rehashed buckets (a first build dirties all 256:
   * every item's line sorted and hashed), for a caller that must not block for all of them.
   * Nothing may be set between its steps.
   */
  *rootSteps(): Generator<void, string, void> {
    if (this.rootCache) return this.rootCache;
    let n = 0;
    for (const b of this.dirty) {
      if (++n % BUCKETS_PER_STEP === 0) yield;
      this.rehashBucket(b);
    }
    return this.finishRoot();
  }

  /** Bucket b's hash from its sorted lines, into bucketText; b is no longer dirty, its group is. */
  private rehashBucket(b: number): void {
    this.dirty.delete(b);
    const g = this.options.groupSize;
    if (g) this.dirtyGroups.add(Math.floor(b / g));
    const bucket = this.buckets[b]!;
    if (bucket.size === 0) {
      writeLine(this.bucketText, b, EMPTY);
      return;
    }
    const keys = [...bucket.keys()].sort();
    let text = '';
    for (const k of keys) text += `${k}\t${bucket.get(k)!}\n`;
    writeLine(this.bucketText, b, sha256Hex(text));
  }

  /** The root once every bucket is rehashed: the dirty groups' hashes, then the tag and the top level. */
  private finishRoot(): string {
    const g = this.options.groupSize;
    for (const i of this.dirtyGroups) writeLine(this.groupText, i, sha256Hex(joined(this.bucketText, i * g, g)));
    this.dirtyGroups.clear();
    this.rootCache = sha256Hex(this.rootText.subarray(0, this.rootText.length - 1)); // the last '\n' left out
    return this.rootCache;
  }
}

function writeLine(text: Buffer, i: number, hash: string): void {
  text.write(hash, i * LINE, 64, 'latin1');
  text[i * LINE + 64] = 0x0a;
}

/** Lines first..first+count-1 joined by '\n' (the last line's '\n' left out). */
function joined(text: Buffer, first: number, count: number): Buffer {
  return text.subarray(first * LINE, (first + count) * LINE - 1);
}

/**
 * Items of an overlay that its caller can name by number, made into lines only when their bucket
 * must be hashed (a node's NodePort copies: ~400 of its ~520 own items, unchanged from version
 * to version). Never removals, and no key that the plain changes given with them have (or only
 * with the same value: a KUBE-LOOP-BACK member two services share). An id
 * names one key and value, under the block's label, for as long as the caller gives them: equal
 * label and ids, equal items (the memo's digest of the whole trusts this; ids in another order
 * only take the slower path).
 */
export interface IdentifiedItems {
  readonly label: string;
  readonly ids: Float64Array;
  /** Item j's bucket (bucketOf its key), if known without making it; undefined: it is made. */
  bucket(j: number): number | undefined;
  /** Item j's key and value. */
  item(j: number): readonly [string, string];
}

/** Every identified item, made. */
function* itemsOf(identified: readonly IdentifiedItems[]): Generator<readonly [string, string]> {
  for (const block of identified) for (let j = 0, n = block.ids.length; j < n; j++) yield block.item(j);
}

/** The memo's digest of the whole of a caller's changes: its lines' text, then each block's label and ids. */
function wholeDigest(text: string, identified: readonly IdentifiedItems[]): Buffer {
  const h = createHash('sha256').update(sha256Bytes(text));
  for (const block of identified) {
    const label = Buffer.from(block.label, 'utf8');
    const ids = block.ids;
    const head = Buffer.alloc(8);
    head.writeUInt32BE(label.length, 0);
    head.writeUInt32BE(ids.length, 4);
    h.update(head)
      .update(label)
      .update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
  }
  return h.digest();
}

/** Bytes kept per bucket of an OverlayMemo's digest of the caller's changes (of SHA-256's 32). */
const DIGEST = 16;
/** OverlayMemo.known's flags. */
const GROUP_KNOWN = 1;
const BUCKETS_KNOWN = 2;

/**
 * What one caller's last overlayRootSteps on a tree with groups computed (the planner keeps one
 * per node: its own items change little from version to version, the shared items in few
 * buckets), for the next call to reuse (see memoOverlaySteps). About 13 kB in one allocation: per
 * bucket whether the caller had changes there, a digest of them and the bucket's hash with them;
 * per group its hash. Belongs to one tree; given to another, it starts over.
 */
export class OverlayMemo {
  owner: BucketHashTree | undefined;
  /** The tree's change count when the memo was last completed. */
  at = -1;
  complete = false;
  /** Per group: GROUP_KNOWN when `changeGroups` holds its last changes' digest, BUCKETS_KNOWN when `digests` its buckets'. */
  known = EMPTY_BYTES;
  /** Buckets hashed again by the last call (tests and metrics). */
  bucketsHashed = 0;
  // views into one allocation, made for the tree's group count at the first call
  whole = EMPTY_BYTES; // digest of all the caller's changes, in its order, last time
  own = EMPTY_BYTES; // per bucket: 1 when the caller had changes there
  digests = EMPTY_BYTES; // per bucket: DIGEST bytes of the caller's changes in it (ChangesText)
  hashes = EMPTY_BYTES; // per bucket: its hash with the caller's changes
  groups = EMPTY_BYTES; // per group: its hash
  changeGroups = EMPTY_BYTES; // per group: DIGEST bytes of the caller's changes in its buckets (ChangesText)

  /** Sizes the memo for `groups` groups (made anew, empty: the next call starts over, when it was not). */
  fit(groups: number): void {
    if (this.groups.length === groups * 32) return;
    const store = Buffer.alloc(32 + BUCKETS * (1 + DIGEST + 32) + groups * (32 + DIGEST + 1));
    let at = 0;
    const take = (n: number) => store.subarray(at, (at += n));
    this.whole = take(32);
    this.own = take(BUCKETS);
    this.digests = take(BUCKETS * DIGEST);
    this.hashes = take(BUCKETS * 32);
    this.groups = take(groups * 32);
    this.changeGroups = take(groups * DIGEST);
    this.known = take(groups);
    this.complete = false;
  }
}

const EMPTY_BYTES = Buffer.alloc(0);

/**
 * Identified items sorted by bucket, each by its block and index, without making those whose
 * bucket is known (made here only to find theirs). Entries of bucket b: start[b] … start[b+1]-1,
 * in the blocks' order and each block's.
 */
interface IdentifiedByBucket {
  readonly start: Int32Array;
  readonly block: Uint16Array;
  readonly index: Int32Array;
  /** By entry: the items made to find their bucket. */
  readonly made: Map<number, readonly [string, string]>;
}

function* identifiedByBucketSteps(identified: readonly IdentifiedItems[]): Generator<void, IdentifiedByBucket, void> {
  // a block's place is 16 bits (ChangesText): a node's blocks are its NodePort addresses and one more
  if (identified.length > 0xffff) throw new Error(`overlay: ${identified.length} blocks of identified items`);
  let n = 0;
  for (const block of identified) n += block.ids.length;
  const bucketAt = new Uint8Array(n);
  const madeAt = new Map<number, readonly [string, string]>();
  const start = new Int32Array(BUCKETS + 1);
  let e = 0;
  for (const block of identified)
    for (let j = 0, count = block.ids.length; j < count; j++, e++) {
      let b = block.bucket(j);
      if (b === undefined) {
        const item = block.item(j);
        b = bucketOf(item[0]);
        madeAt.set(e, item);
        if (madeAt.size % MADE_PER_STEP === 0) yield;
      }
      bucketAt[e] = b;
      start[b + 1]! += 1;
    }
  for (let b = 0; b < BUCKETS; b++) start[b + 1]! += start[b]!;
  const next = start.slice(0, BUCKETS);
  const block = new Uint16Array(n);
  const index = new Int32Array(n);
  const made = new Map<number, readonly [string, string]>();
  e = 0;
  for (let k = 0; k < identified.length; k++)
    for (let j = 0, count = identified[k]!.ids.length; j < count; j++, e++) {
      const at = next[bucketAt[e]!]!++;
      block[at] = k;
      index[at] = j;
      const item = madeAt.get(e);
      if (item) made.set(at, item);
    }
  return { start, block, index, made };
}

/**
 * One group's changes as bytes, bucket by bucket, for memoOverlaySteps' digests: a bucket's plain
 * changes independent of their order (keys sorted; a removal is its key alone: keys hold no tab
 * or newline, as the bucket lines they become), then its identified items in order, each by its
 * block's place and its id (made to find its bucket or not: the same bytes); each bucket's bytes start
 * with the digest of the blocks' labels in order. Every part is length-prefixed: equal bytes,
 * equal changes (equal label and id, equal item: IdentifiedItems). One per call.
 */
class ChangesText {
  private buf = Buffer.alloc(512); // grows to a group's largest (~1 kB a group of ~60 items)
  private at = 0;
  /** The digest of the blocks' labels in order. */
  private readonly labels: Buffer;
  /** The blocks' ids, taken once (a block's getter may build them). */
  private readonly ids: Float64Array[];
  /** Start of each bucket's bytes added since clear(). */
  private readonly starts: number[] = [];

  constructor(identified: readonly IdentifiedItems[]) {
    let text = '';
    for (const block of identified) text += `${block.label.length}:${block.label}`;
    this.labels = sha256Bytes(text);
    this.ids = identified.map((block) => block.ids);
  }

  clear(): void {
    this.at = 0;
    this.starts.length = 0;
  }

  addBucket(
    m: Map<string, string | undefined> | undefined,
    byId: IdentifiedByBucket,
    first: number,
    end: number,
  ): void {
    this.starts.push(this.at);
    let plain = '';
    if (m)
      for (const k of [...m.keys()].sort()) {
        const v = m.get(k);
        plain += v === undefined ? `${k}\n` : `${k}\t${v}\n`;
      }
    const plainBytes = Buffer.byteLength(plain, 'utf8');
    this.room(32 + 8 + plainBytes);
    this.at += this.labels.copy(this.buf, this.at);
    this.at = this.buf.writeUInt32LE(end - first, this.at);
    this.at = this.buf.writeUInt32LE(plainBytes, this.at);
    this.at += this.buf.write(plain, this.at, 'utf8');
    this.room((end - first) * 10);
    for (let e = first; e < end; e++) {
      const k = byId.block[e]!;
      this.at = this.buf.writeUInt16LE(k, this.at);
      this.at = this.buf.writeDoubleLE(this.ids[k]![byId.index[e]!]!, this.at);
    }
  }

  /** The digest of every bucket added since clear(). */
  digest(): Buffer {
    return sha256Bytes(this.buf.subarray(0, this.at));
  }

  /** The digest of each bucket added since clear(), in order. */
  bucketDigests(): Buffer[] {
    return this.starts.map((start, i) => sha256Bytes(this.buf.subarray(start, this.starts[i + 1] ?? this.at)));
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.alloc(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
  }
}

/** Changes by bucket (a key given twice: the last value), only those in `only` when given. */
function byBucketOf(
  changes: Iterable<readonly [string, string | undefined]>,
  only?: ReadonlySet<number>,
): Map<number, Map<string, string | undefined>> {
  const byBucket = new Map<number, Map<string, string | undefined>>();
  for (const [k, v] of changes) {
    const b = bucketOf(k);
    if (only && !only.has(b)) continue;
    let m = byBucket.get(b);
    if (!m) byBucket.set(b, (m = new Map()));
    m.set(k, v);
  }
  return byBucket;
}

interface SortedLines {
  readonly keys: readonly string[];
  /** The bucket's "key\tvalue\n" lines in key order, UTF-8. */
  readonly text: Buffer;
  /** Byte offset of line i; offsets[keys.length] is text.length. */
  readonly offsets: readonly number[];
}

function sortedLinesOf(bucket: Map<string, string>): SortedLines {
  const keys = [...bucket.keys()].sort();
  const offsets = [0];
  let text = '';
  let bytes = 0;
  for (const k of keys) {
    const line = `${k}\t${bucket.get(k)!}\n`;
    text += line;
    bytes += Buffer.byteLength(line, 'utf8');
    offsets.push(bytes);
  }
  return { keys, text: Buffer.from(text, 'utf8'), offsets };
}

/** Index of the first key >= k at or after `from` (code-unit order, as Array.prototype.sort). */
function lowerBound(keys: readonly string[], k: string, from: number): number {
  let lo = from;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The bucket (0–255) of an item key: FNV-1a over its UTF-16 code units (docs/versioning.md). */
export function bucketOf(key: string): number {
  return fnv1a(key) % BUCKETS;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
