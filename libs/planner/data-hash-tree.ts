import { sha256Hex } from '../model/index.ts';

const BUCKETS = 256;
const EMPTY = sha256Hex('');

/**
 * Content hash of cluster data that updates in O(bucket) per changed item instead of O(cluster).
 * Items (keyed "svc:ns/name" or "node:name", each with the SHA-256 of its canonical JSON) fall into
 * 256 buckets by FNV-1a of the key; a bucket hashes its sorted "key\thash\n" lines; the root is the
 * SHA-256 of a version tag and the 256 bucket hashes. The result depends only on the set of
 * (key, item hash) pairs, never on insertion order. See docs/versioning.md.
 */
export class DataHashTree {
  private readonly buckets: Map<string, string>[] = Array.from({ length: BUCKETS }, () => new Map());
  private readonly bucketHash: string[] = new Array(BUCKETS).fill(EMPTY);
  private readonly dirty = new Set<number>();
  private rootCache: string | undefined;

  set(key: string, itemHash: string | undefined): void {
    const b = fnv1a(key) % BUCKETS;
    const bucket = this.buckets[b]!;
    if (itemHash === undefined) {
      if (!bucket.delete(key)) return;
    } else {
      if (bucket.get(key) === itemHash) return;
      bucket.set(key, itemHash);
    }
    this.dirty.add(b);
    this.rootCache = undefined;
  }

  root(): string {
    if (this.rootCache) return this.rootCache;
    for (const b of this.dirty) {
      const bucket = this.buckets[b]!;
      if (bucket.size === 0) { this.bucketHash[b] = EMPTY; continue; }
      const keys = [...bucket.keys()].sort();
      this.bucketHash[b] = sha256Hex(keys.map((k) => `${k}\t${bucket.get(k)}\n`).join(''));
    }
    this.dirty.clear();
    this.rootCache = sha256Hex('switchboard-data-v1\n' + this.bucketHash.join('\n'));
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
