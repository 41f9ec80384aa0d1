import {
  byCodeUnit,
  keyOf,
  LATEST_READING_REVISION,
  runSteps,
  serviceKey,
  type ReadingRevision,
  type DataDelta,
  type EndpointSliceObject,
  type KubeKind,
  type KubeObject,
  type NodeFacts,
  type NodeObject,
  type ServiceEntry,
  type ServiceObject,
} from '../model/index.ts';
import { buildNodeFacts, buildServiceEntry, buildServiceEntrySteps } from './build-service-entry.ts';
import { ClusterDataIndex, sortDelta } from './cluster-data-index.ts';
import { PackedSlice, sliceHead, unpackSlice, type KeptSlice } from './packed-slice.ts';

/** Small services built and hashed per step of buildSteps (a large one takes steps of its own). */
const SERVICES_PER_STEP = 64;

/** One object-level change, as the change trackers see a watch event. */
export type ObjectChange =
  | { readonly op: 'upsert'; readonly object: KubeObject }
  | { readonly op: 'delete'; readonly kind: KubeKind; readonly namespace: string; readonly name: string };

/**
 * The planner's incremental state: the latest objects, the cluster data derived from them, and a
 * change tracker in the spirit of kube-proxy's: every change records the item's hash as of the
 * last commit (first change wins), and `commit()` emits only items whose hash really moved, so a
 * burst of events that nets to nothing makes no version. Applying a change costs O(size of the
 * affected service): only that service's entry is rebuilt and rehashed, once per batch, when the
 * data is next read.
 */
export class ClusterState {
  private readonly services = new Map<string, ServiceObject>();
  /** Packed once their service's entry is built (packed-slice.ts): most of the state's heap otherwise. */
  private readonly slices = new Map<string, KeptSlice>();
  private readonly slicesByService = new Map<string, Set<string>>();
  private readonly nodes = new Map<string, NodeObject>();
  private readonly index = new ClusterDataIndex();
  /**
   * Services changed since their entry was last built: built (and hashed) once when the data is
   * next read, so a service whose Service and EndpointSlices arrive in one batch (an initial
   * list, a relist, a burst) is built once, not once per object.
   */
  private readonly stale = new Set<string>();
  /** item key ("svc:k" | "node:n") → its hash at the last commit (undefined = absent then). */
  private readonly pending = new Map<string, string | undefined>();
  /** Counts changes applied (rebuildService): a build in steps keeps nothing a change came between. */
  private changes = 0;
  /** Canonical texts of the entries hashed since the last take (only once keepCanonicalTexts() was called). */
  private texts: WeakMap<object, string> | undefined;

  /** `readingRevision`: whose rules build the service entries (libs/model/reading-revision.ts). */
  constructor(readonly readingRevision: ReadingRevision = LATEST_READING_REVISION) {}

  /**
   * From now on, keeps the canonical text of every entry hashed, until takeCanonicalTexts(): the
   * planner records each version's delta, made of entries it has just hashed, without serialising
   * them again. Off by default (a replay or an applier would only hold the texts longer).
   */
  keepCanonicalTexts(): void {
    this.texts = new WeakMap();
    this.index.keepTextsIn(this.texts);
  }

  /**
   * The texts kept since the last call (exact canonicalJson of those frozen entries; for
   * canonicalJson's `known`), and starts afresh so they are held for one batch only.
   */
  takeCanonicalTexts(): WeakMap<object, string> | undefined {
    const t = this.texts;
    if (t) this.keepCanonicalTexts();
    return t;
  }

  apply(change: ObjectChange): void {
    if (change.op === 'upsert') this.upsert(change.object);
    else this.remove(change.kind, change.namespace, change.name);
  }

  private upsert(obj: KubeObject): void {
    switch (obj.kind) {
      case 'Service': {
        const k = serviceKey(obj.meta.namespace, obj.meta.name);
        this.services.set(k, obj);
        this.rebuildService(k);
        return;
      }
      case 'EndpointSlice': {
        const sk = serviceKey(obj.meta.namespace, obj.meta.name);
        const kept = this.slices.get(sk);
        const prev = kept && sliceHead(kept);
        this.slices.set(sk, obj);
        const owner = serviceKey(obj.meta.namespace, obj.serviceName);
        if (prev && prev.serviceName !== obj.serviceName) {
          // A slice relabelled to another service leaves the old one.
          const old = serviceKey(prev.meta.namespace, prev.serviceName);
          this.slicesByService.get(old)?.delete(sk);
          this.rebuildService(old);
        }
        let set = this.slicesByService.get(owner);
        if (!set) this.slicesByService.set(owner, (set = new Set()));
        set.add(sk);
        this.rebuildService(owner);
        return;
      }
      case 'Node':
        this.nodes.set(obj.meta.name, obj);
        this.setNode(obj.meta.name, buildNodeFacts(obj));
        return;
    }
  }

  private remove(kind: KubeKind, namespace: string, name: string): void {
    if (kind === 'Service') {
      const k = serviceKey(namespace, name);
      if (this.services.delete(k)) this.rebuildService(k);
    } else if (kind === 'EndpointSlice') {
      const sk = serviceKey(namespace, name);
      const kept = this.slices.get(sk);
      if (!kept) return;
      const prev = sliceHead(kept);
      this.slices.delete(sk);
      const owner = serviceKey(namespace, prev.serviceName);
      const set = this.slicesByService.get(owner);
      set?.delete(sk);
      if (set && set.size === 0) this.slicesByService.delete(owner);
      this.rebuildService(owner);
    } else if (this.nodes.delete(name)) {
      this.setNode(name, undefined);
    }
  }

  /** The cluster data of the current objects (building the entries of changed services first). */
  get data(): ClusterDataIndex {
    if (this.stale.size > 0) {
      for (const k of this.stale) this.index.setService(k, this.buildEntry(k));
      this.stale.clear();
    }
    return this.index;
  }

  /**
   * Builds (and hashes) now the entries of changed services that have their Service and at least
   * one EndpointSlice: work the next read of `data` would do, done earlier. The planner calls it
   * after each batch of an initial list, so version 1's 10 000 entries are built while the next
   * list pages are on their way rather than all after the last one. A service whose Service or
   * slices are still to come waits (building it now would only be redone); one that changes again
   * is rebuilt at the next read, as any stale service is. The data and the next commit() are the
   * same whether or not this ran.
   */
  buildReady(): void {
    for (const k of this.stale) {
      if (!this.services.has(k) || !this.slicesByService.has(k)) continue;
      this.index.setService(k, this.buildEntry(k));
      this.stale.delete(k);
    }
  }

  private buildEntry(k: string): ServiceEntry | undefined {
    const svc = this.services.get(k);
    const entry = svc ? buildServiceEntry(svc, this.slicesOf(k), this.readingRevision) : undefined;
    this.packSlicesOf(k);
    return entry;
  }

  /** The service's slices as objects (unpacked: a rebuild reads them all). */
  private slicesOf(k: string): EndpointSliceObject[] {
    const sliceKeys = this.slicesByService.get(k);
    return sliceKeys ? [...sliceKeys].map((s) => unpackSlice(this.slices.get(s)!)) : [];
  }

  /**
   * Packs the service's slices that came since its last build. Called once its entry is built
   * from them: the initial list's objects are packed while still young (V8's scavenges copy the
   * packed cells, not three objects an endpoint, into the old generation).
   */
  private packSlicesOf(k: string): void {
    for (const sk of this.slicesByService.get(k) ?? []) {
      const kept = this.slices.get(sk)!;
      if (kept instanceof PackedSlice) continue;
      const packed = PackedSlice.pack(kept);
      if (packed) this.slices.set(sk, packed);
    }
  }

  /**
   * What the next read of `data` (and hash()) would do, in bounded steps: every changed service's
   * entry built and hashed (one of 100 000 endpoints in many steps: buildServiceEntrySteps,
   * canonicalJsonHashSteps), then the content hash. For a caller that must not block for all of it
   * (the planner's version build, probe10 H9); the data and the next commit() are the same as
   * without it. A read of `data` between steps builds the rest at once, as it always did; a change
   * applied between steps leaves the service it came during stale (built again at the next read),
   * never set from objects it changed.
   */
  *buildSteps(): Generator<void, string, void> {
    let built = 0;
    for (const k of [...this.stale]) {
      if (!this.stale.has(k)) continue; // built meanwhile by a read of data
      const changes = this.changes;
      const svc = this.services.get(k);
      const entry = svc ? yield* buildServiceEntrySteps(svc, this.slicesOf(k), this.readingRevision) : undefined;
      if (changes !== this.changes || !this.stale.has(k)) continue;
      this.packSlicesOf(k);
      yield* this.index.setServiceSteps(k, entry);
      if (changes === this.changes) this.stale.delete(k);
      if (++built % SERVICES_PER_STEP === 0) yield;
    }
    yield;
    return yield* this.data.hashSteps();
  }

  private rebuildService(k: string): void {
    this.changes++;
    const item = `svc:${k}`;
    // A stale service is already pending with its hash as of the last commit (first change wins).
    if (!this.pending.has(item)) this.pending.set(item, this.index.serviceHash(k));
    this.stale.add(k);
  }

  private setNode(name: string, facts: NodeFacts | undefined): void {
    const item = `node:${name}`;
    if (!this.pending.has(item)) this.pending.set(item, this.index.nodeHash(name));
    this.index.setNode(name, facts);
  }

  /** True when uncommitted changes moved the content (cheap: compares hashes of touched items). */
  hasChanges(): boolean {
    for (const [item, before] of this.pending) if (this.itemHash(item) !== before) return true;
    return false;
  }

  /**
   * Ends the current batch: returns the delta since the previous commit, or undefined when the
   * batch netted to nothing (then no version must be made).
   */
  commit(): DataDelta | undefined {
    return runSteps(this.commitSteps());
  }

  /**
   * commit() a changed service's entry built, or a touched item hashed, a step (a service of 250
   * endpoints: ~0.3 ms each): a fold of every object from the log (a follower's view before the
   * first checkpoint, at 10,000 services × 250 endpoints) committed in one call held its thread ~4 s.
   * The state must not change between the steps.
   */
  *commitSteps(): Generator<void, DataDelta | undefined, void> {
    const upsertServices: ServiceEntry[] = [];
    const removeServices: string[] = [];
    const upsertNodes: NodeFacts[] = [];
    const removeNodes: string[] = [];
    // the entries of changed services, one a step (the first item's hash would read `data`, which builds them all at once)
    for (const k of this.stale) {
      this.index.setService(k, this.buildEntry(k));
      this.stale.delete(k);
      yield;
    }
    for (const [item, before] of this.pending) {
      yield;
      const now = this.itemHash(item);
      if (now === before) continue;
      const key = item.slice(item.indexOf(':') + 1);
      if (item.startsWith('svc:')) {
        if (now === undefined) removeServices.push(key);
        else upsertServices.push(this.data.service(key)!);
      } else if (now === undefined) removeNodes.push(key);
      else upsertNodes.push(this.data.node(key)!);
    }
    this.pending.clear();
    if (upsertServices.length + removeServices.length + upsertNodes.length + removeNodes.length === 0) return undefined;
    return sortDelta({ upsertServices, removeServices, upsertNodes, removeNodes });
  }

  private itemHash(item: string): string | undefined {
    const key = item.slice(item.indexOf(':') + 1);
    return item.startsWith('svc:') ? this.data.serviceHash(key) : this.data.nodeHash(key);
  }

  hash(): string {
    return this.data.hash();
  }

  /**
   * The labels of the current Node of this name (undefined: none): which Nodes run an applier is
   * decided by them (planner --node-selector), outside the hashed data, so a label change makes
   * no version.
   */
  nodeLabels(name: string): Readonly<Record<string, string>> | undefined {
    return this.nodes.get(name)?.meta.labels;
  }

  /** All current objects, unpacked at once (for one at a time: objectsInKeyOrder). */
  objects(): KubeObject[] {
    return [...this.objectsInKeyOrder()];
  }

  /**
   * Every current object in keyOf order, for a checkpoint of the object state: a packed slice is
   * unpacked only when its turn comes, so a checkpoint that serialises them one by one holds one
   * slice's endpoint objects at a time, not the whole cluster's again (~0.4 GB at the envelope).
   */
  objectsInKeyOrder(): Iterable<KubeObject> & { readonly count: number } {
    const kept: [string, KubeObject | PackedSlice][] = [];
    for (const o of this.services.values()) kept.push([keyOf(o), o]);
    for (const o of this.slices.values()) kept.push([keyOf(sliceHead(o)), o]);
    for (const o of this.nodes.values()) kept.push([keyOf(o), o]);
    kept.sort((a, b) => byCodeUnit(a[0], b[0]));
    return {
      count: kept.length,
      *[Symbol.iterator]() {
        for (const [, o] of kept) yield o instanceof PackedSlice ? o.unpack() : o;
      },
    };
  }

  /** Builds a state from a full object set, as a relist or a replay from checkpoint does. */
  static fromObjects(
    objects: Iterable<KubeObject>,
    readingRevision: ReadingRevision = LATEST_READING_REVISION,
  ): ClusterState {
    return runSteps(ClusterState.fromObjectsSteps(objects, readingRevision));
  }

  /** fromObjects a service entry a step (one of 250 endpoints: ~0.7 ms here). */
  static *fromObjectsSteps(
    objects: Iterable<KubeObject>,
    readingRevision: ReadingRevision = LATEST_READING_REVISION,
  ): Generator<void, ClusterState, void> {
    // Bulk path: index every object first, then build each service entry once (the per-event
    // path would rebuild a service once per slice and track every item as a pending change).
    const s = new ClusterState(readingRevision);
    for (const o of objects) {
      if (o.kind === 'Service') s.services.set(serviceKey(o.meta.namespace, o.meta.name), o);
      else if (o.kind === 'Node') s.nodes.set(o.meta.name, o);
      else {
        const sk = serviceKey(o.meta.namespace, o.meta.name);
        const kept = s.slices.get(sk);
        const prev = kept && sliceHead(kept);
        if (prev) s.slicesByService.get(serviceKey(prev.meta.namespace, prev.serviceName))?.delete(sk);
        s.slices.set(sk, o);
        const owner = serviceKey(o.meta.namespace, o.serviceName);
        let set = s.slicesByService.get(owner);
        if (!set) s.slicesByService.set(owner, (set = new Set()));
        set.add(sk);
      }
    }
    for (const [k, svc] of s.services) {
      s.index.setService(k, buildServiceEntry(svc, s.slicesOf(k), readingRevision));
      s.packSlicesOf(k);
      yield;
    }
    for (const [name, node] of s.nodes) s.index.setNode(name, buildNodeFacts(node));
    return s;
  }

  get objectCount(): number {
    return this.services.size + this.slices.size + this.nodes.size;
  }
}
