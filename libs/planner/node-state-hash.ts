import {
  contentHash, sha256Hex, virtualServerKey,
  type IpsetState, type NodeProxySettings, type NodeState, type VirtualServer,
} from '../model/index.ts';

/**
 * The items a node state hash is made of. A NodeState is canonical (sorted, no duplicates), so it
 * is exactly its set of items; each item is a key and a short value (a SHA-256 for objects with
 * content, a marker for plain members). See docs/versioning.md, "Node state hash".
 */
export const nodeStateItem = {
  node: (name: string): [string, string] => ['node', contentHash(name)],
  settings: (s: NodeProxySettings): [string, string] => ['settings', contentHash(s)],
  virtualServer: (vs: VirtualServer): [string, string] => [`vs:${virtualServerKey(vs)}`, contentHash(vs)],
  boundAddress: (ip: string): [string, string] => [`addr:${ip}`, '1'],
  ipset: (s: Pick<IpsetState, 'name' | 'type' | 'family'>): [string, string] => [`set:${s.name}`, `${s.type}/${s.family ?? '-'}`],
  ipsetEntry: (set: string, entry: string): [string, string] => [`entry:${set}:${entry}`, '1'],
};

const BUCKETS = 256;
const GROUP = 16; // buckets per group: 16 groups of 16 buckets
const EMPTY = sha256Hex('');
const EMPTY_GROUP = sha256Hex(new Array<string>(GROUP).fill(EMPTY).join('\n'));
const TAG = 'switchboard-node-state-v2\n';

/**
 * Tree hash over node state items, updated in O(touched buckets): items fall into 256 buckets by
 * FNV-1a of the key; a bucket hashes its sorted "key\tvalue\n" lines; 16 groups hash the hashes
 * of their 16 buckets; the root is the SHA-256 of a version tag and the 16 group hashes. Depends
 * only on the set of (key, value) pairs. Like DataHashTree, with one more level (an applier
 * rehashes ~2 kB of tree per change instead of 16 kB: this runs on every node for every event)
 * and its own tag, so a node state hash never equals a data hash.
 */
export class NodeStateHashTree {
  private readonly buckets: Map<string, string>[] = Array.from({ length: BUCKETS }, () => new Map());
  private readonly bucketHash: string[] = new Array<string>(BUCKETS).fill(EMPTY);
  private readonly groupHash: string[] = new Array<string>(BUCKETS / GROUP).fill(EMPTY_GROUP);
  private readonly dirty = new Set<number>();
  private rootCache: string | undefined;

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
    const groups = new Set<number>();
    for (const b of this.dirty) {
      groups.add(Math.floor(b / GROUP));
      const bucket = this.buckets[b]!;
      if (bucket.size === 0) { this.bucketHash[b] = EMPTY; continue; }
      const keys = [...bucket.keys()].sort();
      let text = '';
      for (const k of keys) text += `${k}\t${bucket.get(k)!}\n`;
      this.bucketHash[b] = sha256Hex(text);
    }
    this.dirty.clear();
    for (const g of groups) this.groupHash[g] = sha256Hex(this.bucketHash.slice(g * GROUP, (g + 1) * GROUP).join('\n'));
    this.rootCache = sha256Hex(TAG + this.groupHash.join('\n'));
    return this.rootCache;
  }
}

/**
 * The hash an applier echoes in its ACK: the tree hash of the node state's items. O(state) here;
 * NodeStateRenderer keeps the same tree up to date per change and returns the same value.
 */
export function nodeStateHash(state: NodeState): string {
  const tree = new NodeStateHashTree();
  for (const [k, v] of nodeStateItems(state)) tree.set(k, v);
  return tree.root();
}

/** Every item of a node state (the whole definition of what the hash covers). */
export function* nodeStateItems(state: NodeState): Generator<[string, string]> {
  yield nodeStateItem.node(state.node);
  yield nodeStateItem.settings(state.settings);
  for (const vs of state.virtualServers) yield nodeStateItem.virtualServer(vs);
  for (const a of state.boundAddresses) yield nodeStateItem.boundAddress(a);
  for (const s of state.ipsets) {
    yield nodeStateItem.ipset(s);
    for (const e of s.entries) yield nodeStateItem.ipsetEntry(s.name, e);
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
