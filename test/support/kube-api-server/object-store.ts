// In-memory etcd stand-in: one global resourceVersion counter for all kinds, a history
// of changes back to the compaction point (so chunked lists stay consistent at the RV of
// their first page and watches can replay from any RV at or after it).

import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { RESOURCES, type ResourceKind } from './resource-kinds.ts';
import { expiredStatus, KubeStatusError, kubeStatus } from './kube-status.ts';

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredChange {
  rv: number;
  kind: ResourceKind;
  type: ChangeType;
  key: string;
  /** State before the change (undefined for ADDED). */
  prev: KubeObject | undefined;
  /** State after the change; for DELETED the last state stamped with the deletion RV. */
  object: KubeObject;
}

export function objectKey(kind: ResourceKind, namespace: string | undefined, name: string): string {
  return RESOURCES[kind].namespaced ? `${namespace ?? ''}/${name}` : name;
}

const clone = <T>(value: T): T => structuredClone(value);

// Byte order of the keys, as etcd sorts them (our keys are ASCII names).
const compareKeys = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Index of the first element of sorted `keys` greater than `key`. */
function upperBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! > key) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export class ObjectStore {
  // An empty etcd is at revision 1 and its first write gets 2; starting there also means
  // no list ever answers RV "0", which a watch would read as "any" (synthetic ADDEDs).
  private rv = 1;
  private compacted = 0;
  private readonly objects = new Map<ResourceKind, Map<string, KubeObject>>();
  private history: StoredChange[] = [];
  private readonly listeners = new Set<(change: StoredChange) => void>();
  /** Sorted current keys per kind; dropped when a key appears or disappears. */
  private readonly sortedKeys = new Map<ResourceKind, string[]>();

  get resourceVersion(): number {
    return this.rv;
  }

  get compactedResourceVersion(): number {
    return this.compacted;
  }

  /** Subscribe to every change, synchronously, in RV order. Returns an unsubscribe function. */
  subscribe(listener: (change: StoredChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private bucket(kind: ResourceKind): Map<string, KubeObject> {
    let bucket = this.objects.get(kind);
    if (!bucket) {
      bucket = new Map();
      this.objects.set(kind, bucket);
    }
    return bucket;
  }

  private validate(kind: ResourceKind, object: KubeObject): { namespace: string | undefined; name: string } {
    const info = RESOURCES[kind];
    if (!info) throw new Error(`unknown kind ${String(kind)}`);
    const name = object?.metadata?.name;
    if (typeof name !== 'string' || name === '') throw new Error(`${kind}: metadata.name is required`);
    const namespace = object.metadata.namespace;
    if (info.namespaced && (typeof namespace !== 'string' || namespace === '')) {
      throw new Error(`${kind} ${name}: metadata.namespace is required`);
    }
    if (!info.namespaced && namespace !== undefined)
      throw new Error(`${kind} ${name} is cluster-scoped; drop metadata.namespace`);
    return { namespace: info.namespaced ? namespace : undefined, name };
  }

  private commit(
    kind: ResourceKind,
    type: ChangeType,
    key: string,
    prev: KubeObject | undefined,
    next: KubeObject,
  ): KubeObject {
    this.rv += 1;
    next.metadata.resourceVersion = String(this.rv);
    const bucket = this.bucket(kind);
    if (type === 'DELETED') bucket.delete(key);
    else bucket.set(key, next);
    if (type !== 'MODIFIED') this.sortedKeys.delete(kind);
    const change: StoredChange = { rv: this.rv, kind, type, key, prev, object: next };
    this.history.push(change);
    for (const listener of [...this.listeners]) listener(change);
    return clone(next);
  }

  create(kind: ResourceKind, input: KubeObject): KubeObject {
    const { namespace, name } = this.validate(kind, input);
    const key = objectKey(kind, namespace, name);
    if (this.bucket(kind).has(key)) {
      throw new KubeStatusError(kubeStatus(409, 'AlreadyExists', `${RESOURCES[kind].plural} "${name}" already exists`));
    }
    const info = RESOURCES[kind];
    const object = clone(input);
    object.apiVersion = info.apiVersion;
    object.kind = kind;
    object.metadata.uid = randomUUID();
    // The apiserver stamps whole seconds.
    object.metadata.creationTimestamp = new Date(Math.floor(Date.now() / 1000) * 1000)
      .toISOString()
      .replace('.000Z', 'Z');
    return this.commit(kind, 'ADDED', key, undefined, object);
  }

  private existing(
    kind: ResourceKind,
    namespace: string | undefined,
    name: string,
  ): { key: string; current: KubeObject } {
    const key = objectKey(kind, namespace, name);
    const current = this.bucket(kind).get(key);
    if (!current)
      throw new KubeStatusError(kubeStatus(404, 'NotFound', `${RESOURCES[kind].plural} "${name}" not found`));
    return { key, current };
  }

  /**
   * Replaces an object (PUT). Like the apiserver: uid/creationTimestamp are kept, a stale
   * metadata.resourceVersion conflicts, status is ignored on kinds with a status
   * subresource, and an update that changes nothing makes no new RV and no event.
   */
  update(kind: ResourceKind, input: KubeObject): KubeObject {
    const { namespace, name } = this.validate(kind, input);
    const { key, current } = this.existing(kind, namespace, name);
    const wanted = input.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion) {
      throw new KubeStatusError(
        kubeStatus(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${RESOURCES[kind].plural} "${name}": the object has been modified`,
        ),
      );
    }
    const next = clone(input);
    next.apiVersion = current.apiVersion;
    next.kind = current.kind;
    next.metadata = {
      ...next.metadata,
      uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp,
    };
    if (RESOURCES[kind].hasStatus) {
      if (current.status === undefined) delete next.status;
      else next.status = clone(current.status);
    }
    return this.commitIfChanged(kind, key, current, next);
  }

  /** Replaces only `.status` (the /status subresource). */
  patchStatus(kind: ResourceKind, namespace: string | undefined, name: string, status: unknown): KubeObject {
    const { key, current } = this.existing(kind, RESOURCES[kind].namespaced ? namespace : undefined, name);
    const next = clone(current);
    next.status = clone(status);
    return this.commitIfChanged(kind, key, current, next);
  }

  private commitIfChanged(kind: ResourceKind, key: string, current: KubeObject, next: KubeObject): KubeObject {
    next.metadata.resourceVersion = current.metadata.resourceVersion;
    if (isDeepStrictEqual(next, current)) return clone(current);
    return this.commit(kind, 'MODIFIED', key, current, next);
  }

  delete(kind: ResourceKind, namespace: string | undefined, name: string): KubeObject {
    const { key, current } = this.existing(kind, RESOURCES[kind].namespaced ? namespace : undefined, name);
    return this.commit(kind, 'DELETED', key, current, clone(current));
  }

  get(kind: ResourceKind, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.bucket(kind).get(objectKey(kind, RESOURCES[kind].namespaced ? namespace : undefined, name));
    return found ? clone(found) : undefined;
  }

  /**
   * One page of a kind's objects as they were at `rv`, in key order like etcd: the keys after
   * `after` whose object passes `filter`, at most `limit` of them (0: no limit). `more` says
   * whether any object (filtered or not, as etcd's `more` flag) lies after the page's last key;
   * `remaining` counts them. Cost: O(log N + changes since `rv` + keys scanned), so a chunked
   * list of N objects is O(N) in all instead of one sort and copy of the kind per page.
   */
  listPage(
    kind: ResourceKind,
    rv: number,
    after: string,
    limit: number,
    filter: (object: KubeObject) => boolean = () => true,
  ): { items: { key: string; object: KubeObject }[]; more: boolean; remaining: number } {
    if (rv < this.compacted)
      throw new KubeStatusError(expiredStatus(`too old resource version: ${rv} (${this.compacted})`));
    const bucket = this.bucket(kind);
    // State at `rv` of every key changed after it: the `prev` of its first change since.
    const atRv = new Map<string, KubeObject | undefined>();
    for (let i = this.firstChangeAfter(rv); i < this.history.length; i++) {
      const change = this.history[i]!;
      if (change.kind === kind && !atRv.has(change.key)) atRv.set(change.key, change.prev);
    }
    // Keys that existed at `rv` but are gone now are not in the current key index.
    const gone = [...atRv]
      .filter(([key, state]) => state !== undefined && !bucket.has(key))
      .map(([key]) => key)
      .sort(compareKeys);
    const keys = this.keysOf(kind);
    const stateOf = (key: string): KubeObject | undefined => (atRv.has(key) ? atRv.get(key) : bucket.get(key));
    let i = upperBound(keys, after);
    let j = upperBound(gone, after);
    const next = (): string | undefined => {
      const a = keys[i];
      const b = gone[j];
      if (a === undefined && b === undefined) return undefined;
      if (b === undefined || (a !== undefined && a < b)) return keys[i++];
      return gone[j++];
    };
    const items: { key: string; object: KubeObject }[] = [];
    let key: string | undefined;
    while ((limit === 0 || items.length < limit) && (key = next()) !== undefined) {
      const object = stateOf(key);
      if (object && filter(object)) items.push({ key, object: clone(object) });
    }
    if (limit === 0 || items.length < limit) return { items, more: false, remaining: 0 };
    // Objects after the last returned key at `rv`: current keys after it, corrected by the
    // keys whose existence changed since `rv` (O(changes since rv), not O(N)).
    const last = items[items.length - 1]!.key;
    let remaining = keys.length - upperBound(keys, last) + (gone.length - upperBound(gone, last));
    for (const [changed, state] of atRv) {
      if (changed > last && state === undefined && bucket.has(changed)) remaining -= 1;
    }
    return { items, more: remaining > 0, remaining };
  }

  /** All objects of a kind as they were at `rv` (default: now), sorted by key like etcd. */
  listAt(kind: ResourceKind, rv: number = this.rv): { key: string; object: KubeObject }[] {
    return this.listPage(kind, rv, '', 0).items;
  }

  /** Changes of a kind with RV strictly greater than `rv`; throws 410 Expired if compacted away. */
  changesSince(kind: ResourceKind, rv: number): StoredChange[] {
    if (rv < this.compacted)
      throw new KubeStatusError(expiredStatus(`too old resource version: ${rv} (${this.compacted})`));
    const changes: StoredChange[] = [];
    for (let i = this.firstChangeAfter(rv); i < this.history.length; i++) {
      if (this.history[i]!.kind === kind) changes.push(clone(this.history[i]!));
    }
    return changes;
  }

  /** Index of the first history entry with RV > `rv` (history is in RV order). */
  private firstChangeAfter(rv: number): number {
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.history[mid]!.rv > rv) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The kind's current keys, sorted; rebuilt lazily after a create or delete. */
  private keysOf(kind: ResourceKind): string[] {
    let keys = this.sortedKeys.get(kind);
    if (!keys) {
      keys = [...this.bucket(kind).keys()].sort(compareKeys);
      this.sortedKeys.set(kind, keys);
    }
    return keys;
  }

  /** Forget history up to `rv` (default: now): older RVs answer 410 Expired from then on. */
  compact(rv: number = this.rv): void {
    if (!Number.isInteger(rv) || rv < 0) throw new Error(`compact: bad resourceVersion ${rv}`);
    if (rv > this.rv) throw new Error(`compact: ${rv} is ahead of the current resourceVersion ${this.rv}`);
    if (rv <= this.compacted) return;
    this.compacted = rv;
    this.history = this.history.filter((c) => c.rv > rv);
  }
}
