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

export class ObjectStore {
  // An empty etcd is at revision 1 and its first write gets 2; starting there also means
  // no list ever answers RV "0", which a watch would read as "any" (synthetic ADDEDs).
  private rv = 1;
  private compacted = 0;
  private readonly objects = new Map<ResourceKind, Map<string, KubeObject>>();
  private history: StoredChange[] = [];
  private readonly listeners = new Set<(change: StoredChange) => void>();

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
    if (!info.namespaced && namespace !== undefined) throw new Error(`${kind} ${name} is cluster-scoped; drop metadata.namespace`);
    return { namespace: info.namespaced ? namespace : undefined, name };
  }

  private commit(kind: ResourceKind, type: ChangeType, key: string, prev: KubeObject | undefined, next: KubeObject): KubeObject {
    this.rv += 1;
    next.metadata.resourceVersion = String(this.rv);
    const bucket = this.bucket(kind);
    if (type === 'DELETED') bucket.delete(key);
    else bucket.set(key, next);
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
    object.metadata.creationTimestamp = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    return this.commit(kind, 'ADDED', key, undefined, object);
  }

  private existing(kind: ResourceKind, namespace: string | undefined, name: string): { key: string; current: KubeObject } {
    const key = objectKey(kind, namespace, name);
    const current = this.bucket(kind).get(key);
    if (!current) throw new KubeStatusError(kubeStatus(404, 'NotFound', `${RESOURCES[kind].plural} "${name}" not found`));
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
        kubeStatus(409, 'Conflict', `Operation cannot be fulfilled on ${RESOURCES[kind].plural} "${name}": the object has been modified`),
      );
    }
    const next = clone(input);
    next.apiVersion = current.apiVersion;
    next.kind = current.kind;
    next.metadata = { ...next.metadata, uid: current.metadata.uid, creationTimestamp: current.metadata.creationTimestamp };
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

  /** All objects of a kind as they were at `rv` (default: now), sorted by key like etcd. */
  listAt(kind: ResourceKind, rv: number = this.rv): { key: string; object: KubeObject }[] {
    if (rv < this.compacted) throw new KubeStatusError(expiredStatus(`too old resource version: ${rv} (${this.compacted})`));
    const state = new Map(this.bucket(kind));
    // Undo newer changes, newest first.
    for (let i = this.history.length - 1; i >= 0 && this.history[i]!.rv > rv; i--) {
      const change = this.history[i]!;
      if (change.kind !== kind) continue;
      if (change.prev) state.set(change.key, change.prev);
      else state.delete(change.key);
    }
    return [...state.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, object]) => ({ key, object: clone(object) }));
  }

  /** Changes of a kind with RV strictly greater than `rv`; throws 410 Expired if compacted away. */
  changesSince(kind: ResourceKind, rv: number): StoredChange[] {
    if (rv < this.compacted) throw new KubeStatusError(expiredStatus(`too old resource version: ${rv} (${this.compacted})`));
    return this.history.filter((c) => c.rv > rv && c.kind === kind).map((c) => clone(c));
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
