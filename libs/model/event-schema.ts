import type { KubeKind } from './kube-objects.ts';

/**
 * The event schema: what the event log records. Watch events are recorded as received, before
 * they affect any version, their object as its projection (projectKubeObject: what the readers
 * read; logs written before review3 K3 hold whole objects, read the same); operations record who
 * did what and why.
 */
export const WATCH_EVENT_TYPES = ['ADDED', 'MODIFIED', 'DELETED'] as const;
export type WatchEventType = (typeof WATCH_EVENT_TYPES)[number];
export const isWatchEventType = (v: unknown): v is WatchEventType =>
  (WATCH_EVENT_TYPES as readonly unknown[]).includes(v);

/** Where an event came from: a live watch, a relist after 410 Gone, or a manifests directory. */
export const WATCH_EVENT_ORIGINS = ['watch', 'relist', 'manifests'] as const;
export type WatchEventOrigin = (typeof WATCH_EVENT_ORIGINS)[number];
export const isWatchEventOrigin = (v: unknown): v is WatchEventOrigin =>
  (WATCH_EVENT_ORIGINS as readonly unknown[]).includes(v);

export interface WatchEvent {
  readonly kind: KubeKind;
  readonly type: WatchEventType;
  readonly origin: WatchEventOrigin;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  /** The API object (for DELETED: the last known state); logged as its projection (projectKubeObject). */
  readonly object: unknown;
}

export interface LoggedWatchEvent extends WatchEvent {
  readonly seq: number;
  readonly receivedAt: string;
}

/**
 * What an operator (or the planner itself) did; recorded in the operations table. `cluster`: the
 * Kubernetes cluster the group's log belongs to (services/planner/cluster-guard.ts).
 */
export const OPERATION_KINDS = ['rollout', 'rollback', 'pin', 'unpin', 'config', 'mode', 'cluster'] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

export interface Operation {
  readonly kind: OperationKind;
  readonly actor: string;
  readonly reason: string;
  /** Operation-specific parameters (target version, config revision, waves...). */
  readonly params: Readonly<Record<string, unknown>>;
}
