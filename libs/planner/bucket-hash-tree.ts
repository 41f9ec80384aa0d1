import { createHash } from 'node:crypto';
import { sha256Hex } from '../model/index.ts';

const BUCKETS = 256;
const EMPTY = sha256Hex('');
/** One bucket's or group's hash in the joined text: 64 hex digits and the '\n' after it. */
const LINE = 65;

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
  private readonly bucketText = Buffer.alloc(BUCKETS * LINE);
  private readonly groupText: Buffer;
  private readonly tag: Buffer;
  private readonly dirty = new Set<number>();
  private rootCache: string | undefined;

  constructor(private readonly options: BucketHashTreeOptions) {
    if (options.groupSize !== 0 && BUCKETS % options.groupSize !== 0)
      throw new Error(`groupSize must divide ${BUCKETS}`);
    this.tag = Buffer.from(options.tag, 'utf8');
    for (let b = 0; b < BUCKETS; b++) writeLine(this.bucketText, b, EMPTY);
    const groups = options.groupSize ? BUCKETS / options.groupSize : 0;
    this.groupText = Buffer.alloc(groups * LINE);
    if (groups) {
      const emptyGroup = sha256Hex(new Array<string>(options.groupSize).fill(EMPTY).join('\n'));
      for (let i = 0; i < groups; i++) writeLine(this.groupText, i, emptyGroup);
    }
  }

  set(key: string, value: string | undefined): void {
    const b = fnv1a(key) % BUCKETS;
    const bucket = this.buckets[b]!;
    if (value === undefined) {
      if (!bucket.delete(key)) return;
    } else {
      if (bucket.get(key) === value) return;
      bucket.set(key, value);
    }
    this.dirty.add(b);
    this.rootCache = undefined;
  }

  root(): string {
    if (this.rootCache) return this.rootCache;
    const g = this.options.groupSize;
    const groups = new Set<number>();
    for (const b of this.dirty) {
      if (g) groups.add(Math.floor(b / g));
      const bucket = this.buckets[b]!;
      if (bucket.size === 0) {
        writeLine(this.bucketText, b, EMPTY);
        continue;
      }
      const keys = [...bucket.keys()].sort();
      let text = '';
      for (const k of keys) text += `${k}\t${bucket.get(k)!}\n`;
      writeLine(this.bucketText, b, sha256Hex(text));
    }
    this.dirty.clear();
    for (const i of groups) writeLine(this.groupText, i, sha256Hex(joined(this.bucketText, i * g, g)));
    const top = g ? joined(this.groupText, 0, BUCKETS / g) : joined(this.bucketText, 0, BUCKETS);
    this.rootCache = createHash('sha256').update(this.tag).update(top).digest('hex');
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

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
