import { sha256Hex } from '../model/index.ts';

const BUCKETS = 256;
const EMPTY = sha256Hex('');

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
  private readonly bucketHash: string[] = new Array<string>(BUCKETS).fill(EMPTY);
  private readonly groupHash: string[];
  private readonly dirty = new Set<number>();
  private rootCache: string | undefined;

  constructor(private readonly options: BucketHashTreeOptions) {
    if (options.groupSize !== 0 && BUCKETS % options.groupSize !== 0)
      throw new Error(`groupSize must divide ${BUCKETS}`);
    const emptyGroup = options.groupSize ? sha256Hex(new Array<string>(options.groupSize).fill(EMPTY).join('\n')) : '';
    this.groupHash = options.groupSize ? new Array<string>(BUCKETS / options.groupSize).fill(emptyGroup) : [];
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
        this.bucketHash[b] = EMPTY;
        continue;
      }
      const keys = [...bucket.keys()].sort();
      let text = '';
      for (const k of keys) text += `${k}\t${bucket.get(k)!}\n`;
      this.bucketHash[b] = sha256Hex(text);
    }
    this.dirty.clear();
    for (const i of groups) this.groupHash[i] = sha256Hex(this.bucketHash.slice(i * g, (i + 1) * g).join('\n'));
    this.rootCache = sha256Hex(this.options.tag + (g ? this.groupHash : this.bucketHash).join('\n'));
    return this.rootCache;
  }
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
