import type { KubeKind } from './kube-objects.ts';

/**
 * The event schema: what the event log records. Watch events are recorded exactly as received
 * (the raw object), before they affect any version; operations record who did what and why.
 */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** Where an event came from: a live watch, a relist after 410 Gone, or a manifests directory. */
export type WatchEventOrigin = 'watch' | 'relist' | 'manifests';

export interface WatchEvent {
  readonly kind: KubeKind;
  readonly type: WatchEventType;
  readonly origin: WatchEventOrigin;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  /** The raw API object (for DELETED: the last known state). */
  readonly object: unknown;
}

export interface LoggedWatchEvent extends WatchEvent {
  readonly seq: number;
  readonly receivedAt: string;
}

export type OperationKind = 'rollout' | 'rollback' | 'pin' | 'unpin' | 'config' | 'mode';

export interface Operation {
  readonly kind: OperationKind;
  readonly actor: string;
  readonly reason: string;
  /** Operation-specific parameters (target version, config revision, waves...). */
  readonly params: Readonly<Record<string, unknown>>;
}
