import {
  byCodeUnit,
  canonicalJson,
  canonicalJsonHashSteps,
  canonicalJsonOf,
  deepFreeze,
  sharedName,
  sha256Hex,
  type ClusterData,
  type DataDelta,
  type EntryHashes,
  type NodeFacts,
  type ServiceEntry,
} from '../model/index.ts';
import { DataHashTree } from './data-hash-tree.ts';

/** Read access to cluster data, as rendering needs it. */
export interface ClusterDataSource {
  services(): Iterable<ServiceEntry>;
  node(name: string): NodeFacts | undefined;
  /**
   * Every node's addresses, each with the nodes that list it (sorted): no Service may take one
   * (probe6 P7). The same object until a node's addresses change, so a holder can tell by identity.
   */
  nodeAddressOwners(): ReadonlyMap<string, readonly string[]>;
}

/**
 * Cluster data held as maps, with its content hash kept up to date per change. The planner,
 * the appliers and replay all hold data this way and move it forward by deltas, so every party
 * computes the same hash for the same version without re-serialising the whole cluster.
 * Entries are frozen values: a change replaces an entry, never edits it.
 */
export class ClusterDataIndex implements ClusterDataSource {
  private readonly svc = new Map<string, { entry: ServiceEntry; hash: string }>();
  private readonly nodeMap = new Map<string, { facts: NodeFacts; hash: string }>();
  private readonly tree = new DataHashTree();
  /** nodeAddressOwners() as last built; undefined after a node's addresses changed (built on the next read). */
  private addressOwners: ReadonlyMap<string, readonly string[]> | undefined;
  /** Where the canonical text of each entry hashed here goes (see ClusterState.takeCanonicalTexts). */
  private texts: WeakMap<object, string> | undefined;

  /** `hashesFrom`: an index holding these very entries (see setService), whose hashes are taken. */
  static from(data: ClusterData, hashesFrom?: ClusterDataIndex): ClusterDataIndex {
    const idx = new ClusterDataIndex();
    idx.apply(
      { upsertServices: data.services, removeServices: [], upsertNodes: data.nodes, removeNodes: [] },
      hashesFrom,
    );
    return idx;
  }

  services(): Iterable<ServiceEntry> {
    return [...this.svc.values()].map((v) => v.entry);
  }

  service(key: string): ServiceEntry | undefined {
    return this.svc.get(key)?.entry;
  }

  serviceHash(key: string): string | undefined {
    return this.svc.get(key)?.hash;
  }

  node(name: string): NodeFacts | undefined {
    return this.nodeMap.get(name)?.facts;
  }

  nodeHash(name: string): string | undefined {
    return this.nodeMap.get(name)?.hash;
  }

  nodeAddressOwners(): ReadonlyMap<string, readonly string[]> {
    if (this.addressOwners) return this.addressOwners;
    const owners = new Map<string, string[]>();
    for (const name of this.nodeNames())
      for (const a of this.nodeMap.get(name)!.facts.addresses) {
        const list = owners.get(a);
        if (!list) owners.set(a, [name]);
        else if (!list.includes(name)) list.push(name);
      }
    this.addressOwners = owners;
    return owners;
  }

  get serviceCount(): number {
    return this.svc.size;
  }

  nodeNames(): string[] {
    return [...this.nodeMap.keys()].sort(byCodeUnit);
  }

  /** Keeps the canonical text of every entry this index hashes from now on in `texts` (undefined: none). */
  keepTextsIn(texts: WeakMap<object, string> | undefined): void {
    this.texts = texts;
  }

  /**
   * The content hash of an entry, its canonical text kept when asked to (serialised once: hashed,
   * recorded in the log and written into the bus's checkpoint). Kept only when it is also the
   * entry's JSON.stringify text (entries are built with their keys in canonical order, so all of
   * them in practice), since the checkpoint is plain JSON; any other is serialised again there.
   */
  private hashOf(entry: object): string {
    if (!this.texts) return sha256Hex(canonicalJson(entry));
    const { text, stringified } = canonicalJsonOf(entry);
    if (stringified) this.texts.set(entry, text);
    return sha256Hex(text);
  }

  /** hashOf(entry) in steps: a large entry's text serialised and hashed a part a step (probe10 H9). */
  private *hashOfSteps(entry: object): Generator<void, string, void> {
    const { text, stringified, hash } = yield* canonicalJsonHashSteps(entry);
    if (this.texts && stringified) this.texts.set(entry, text);
    return hash;
  }

  /** setService(key, entry) in steps (hashOfSteps); the entry is set, and its hash returned, at the last. */
  *setServiceSteps(key: string, entry: ServiceEntry | undefined): Generator<void, string | undefined, void> {
    return this.setService(key, entry, undefined, entry && (yield* this.hashOfSteps(entry)));
  }

  /** hash() in steps (a first build rehashes all 256 buckets: BucketHashTree.rootSteps). */
  *hashSteps(): Generator<void, string, void> {
    return yield* this.tree.rootSteps();
  }

  /**
   * Sets or removes one service entry; returns its new hash (undefined when removed).
   * `hashesFrom`: an index that may hold this very entry object (frozen, so its hash still
   * holds): its hash is taken instead of hashing the entry again.
   */
  setService(
    key: string,
    entry: ServiceEntry | undefined,
    hashesFrom?: ClusterDataIndex,
    carried?: string,
  ): string | undefined {
    if (!entry) {
      this.svc.delete(key);
      this.tree.set(`svc:${key}`, undefined);
      return undefined;
    }
    if (entry.key !== key) throw new Error(`service entry key ${entry.key} does not match ${key}`);
    const held = hashesFrom?.svc.get(key);
    const hash = carried ?? (held && held.entry === entry ? held.hash : this.hashOf(entry));
    shareEndpointNames(entry);
    this.svc.set(key, { entry: deepFreeze(entry), hash });
    this.tree.set(`svc:${key}`, hash);
    return hash;
  }

  setNode(
    name: string,
    facts: NodeFacts | undefined,
    hashesFrom?: ClusterDataIndex,
    carried?: string,
  ): string | undefined {
    const before = this.nodeMap.get(name)?.facts.addresses;
    if (!sameList(before, facts?.addresses)) this.addressOwners = undefined;
    if (!facts) {
      this.nodeMap.delete(name);
      this.tree.set(`node:${name}`, undefined);
      return undefined;
    }
    const held = hashesFrom?.nodeMap.get(name);
    const hash = carried ?? (held && held.facts === facts ? held.hash : this.hashOf(facts));
    this.nodeMap.set(name, { facts: deepFreeze(facts), hash });
    this.tree.set(`node:${name}`, hash);
    return hash;
  }

  /**
   * `hashesFrom`: the index the delta's entries were taken from (see setService). `carried`: the
   * entries' content hashes as the planner computed them (an applier passes them only when the
   * planner's signature or the payload digest vouches for them; docs/distribution.md).
   */
  apply(delta: DataDelta, hashesFrom?: ClusterDataIndex, carried?: EntryHashes): void {
    for (const k of delta.removeServices) this.setService(k, undefined);
    const us = delta.upsertServices;
    for (let i = 0; i < us.length; i++) this.setService(us[i]!.key, us[i], hashesFrom, carried?.services[i]);
    for (const n of delta.removeNodes) this.setNode(n, undefined);
    const un = delta.upsertNodes;
    for (let i = 0; i < un.length; i++) this.setNode(un[i]!.name, un[i], hashesFrom, carried?.nodes[i]);
  }

  hash(): string {
    return this.tree.root();
  }

  /** The checkpoint form: sorted arrays. O(cluster); use for checkpoints, not per event. */
  toClusterData(): ClusterData {
    const services = [...this.svc.keys()].sort(byCodeUnit).map((k) => this.svc.get(k)!.entry);
    const nodes = [...this.nodeMap.keys()].sort(byCodeUnit).map((k) => this.nodeMap.get(k)!.facts);
    return { services, nodes };
  }

  /** The delta that turns `from` into this data (both full scans; for diffs and audits). */
  deltaFrom(from: ClusterDataIndex): DataDelta {
    const upsertServices: ServiceEntry[] = [];
    const removeServices: string[] = [];
    for (const [k, v] of this.svc) if (from.serviceHash(k) !== v.hash) upsertServices.push(v.entry);
    for (const k of from.svc.keys()) if (!this.svc.has(k)) removeServices.push(k);
    const upsertNodes: NodeFacts[] = [];
    const removeNodes: string[] = [];
    for (const [k, v] of this.nodeMap) if (from.nodeHash(k) !== v.hash) upsertNodes.push(v.facts);
    for (const k of from.nodeMap.keys()) if (!this.nodeMap.has(k)) removeNodes.push(k);
    return sortDelta({ upsertServices, removeServices, upsertNodes, removeNodes });
  }
}

export function sortDelta(d: DataDelta): DataDelta {
  return {
    upsertServices: [...d.upsertServices].sort((a, b) => byCodeUnit(a.key, b.key)),
    removeServices: [...d.removeServices].sort(byCodeUnit),
    upsertNodes: [...d.upsertNodes].sort((a, b) => byCodeUnit(a.name, b.name)),
    removeNodes: [...d.removeNodes].sort(byCodeUnit),
  };
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return a === b || (!!a && !!b && a.length === b.length && a.every((x, i) => x === b[i]));
}

/**
 * An entry decoded from the wire (a delta, a checkpoint: JSON.parse's objects, not yet frozen)
 * holds its own copy of every node and zone name over 10 characters, one an endpoint: an applier
 * keeps them for as long as the endpoint exists (~80 bytes an endpoint with a cloud provider's
 * node names, ~0.2 GB a node at the scalability envelope). The names are shared before the entry
 * is frozen; the values, so its hash, do not change. An entry built by the planner is frozen
 * already, its names shared when its slice was read.
 */
function shareEndpointNames(entry: ServiceEntry): void {
  for (const port of entry.ports) {
    for (const e of port.endpoints) {
      if (!Object.isExtensible(e)) continue; // frozen: built by the planner
      const w = e as { nodeName: string; zone: string };
      if (typeof w.nodeName === 'string') w.nodeName = sharedName(w.nodeName);
      if (typeof w.zone === 'string') w.zone = sharedName(w.zone);
    }
  }
}
