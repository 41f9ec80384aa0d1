import { createHash } from 'node:crypto';
import {
  canonicalJson,
  contentHash,
  sha256Hex,
  virtualServerKey,
  type IpsetState,
  type NodeProxySettings,
  type NodeState,
  type VirtualServer,
} from '../model/index.ts';
import { BucketHashTree } from './bucket-hash-tree.ts';

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
  ipset: (s: Pick<IpsetState, 'name' | 'type' | 'family'>): [string, string] => [
    `set:${s.name}`,
    `${s.type}/${s.family ?? '-'}`,
  ],
  ipsetEntry: (set: string, entry: string): [string, string] => [`entry:${set}:${entry}`, '1'],
};

/** nodeStateItem.virtualServer({ ...vs, address }) for many addresses of one virtual server: virtualServerCopies. */
export interface VirtualServerCopies {
  /** The item's key on `address`. */
  key(address: string): string;
  /** The item's value on `address` (a SHA-256 in hex). */
  value(address: string): string;
}

/**
 * The items of one virtual server's copies on many addresses (a NodePort's on every node's
 * addresses): its canonical text is made once, `vs.address` standing in for the address, and its
 * UTF-8 bytes kept; each address is written between them, so a copy costs one SHA-256 of those
 * bytes and no string of the whole text (~1 kB a NodePort, per node per version). The stand-in
 * must appear in the text only as the address (else each copy is hashed whole).
 */
export function virtualServerCopies(vs: VirtualServer): VirtualServerCopies {
  const key = (address: string) => `vs:${virtualServerKey({ protocol: vs.protocol, address, port: vs.port })}`;
  const parts = canonicalJson(vs).split(JSON.stringify(vs.address));
  if (parts.length !== 2) return { key, value: (address) => contentHash({ ...vs, address }) };
  const [before, after] = parts as [string, string];
  const head = Buffer.from(before);
  const tail = Buffer.from(after);
  // a large tail (a NodePort of hundreds of endpoints: ~25 kB at 250) is hashed where it lies
  // rather than copied behind each address for a one-shot digest
  const text = tail.length > TAIL_COPY_MAX ? undefined : Buffer.alloc(head.length + ADDRESS_ROOM + tail.length);
  if (text) head.copy(text);
  return {
    key,
    value: (address) => {
      const quoted = JSON.stringify(address);
      // an address (validated) is ASCII and short; anything else takes the text's own path
      if (quoted.length > ADDRESS_ROOM || Buffer.byteLength(quoted) !== quoted.length)
        return sha256Hex(before + quoted + after);
      if (!text) return createHash('sha256').update(head).update(quoted, 'latin1').update(tail).digest('hex');
      const n = head.length + text.write(quoted, head.length, 'latin1');
      tail.copy(text, n);
      return sha256Hex(text.subarray(0, n + tail.length));
    },
  };
}

const ADDRESS_ROOM = 64;
/** Above this many bytes a copy's tail costs more to copy than a Hash object and three updates. */
const TAIL_COPY_MAX = 8192;

/**
 * Tree hash over node state items: a BucketHashTree with 16 groups of 16 buckets (an applier
 * rehashes ~2 kB of tree per change instead of 16 kB: this runs on every node for every event),
 * tagged "switchboard-node-state-v2" so a node state hash never equals a data hash.
 */
export class NodeStateHashTree extends BucketHashTree {
  constructor() {
    super({ tag: 'switchboard-node-state-v2\n', groupSize: 16 });
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
