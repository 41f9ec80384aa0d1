import type { WatchEventType } from '../model/index.ts';
// What the informer hands to its sink: one typed event per object change.

import type { KubeKind } from './kube-kind.ts';

/**
 * A raw Kubernetes object as JSON, as a watch or a manifest file gives it (kind/apiVersion always
 * filled in). Not to be confused with libs/model's KubeObject, the parsed and checked model object.
 */
export interface RawKubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** The watch event types: libs/model's one list. */
export type KubeEventType = WatchEventType;

/**
 * One object change.
 *
 * `relist` marks events synthesized by diffing a LIST against the objects the informer
 * already knew (the initial list, or the relist after a 410 Expired), instead of events
 * the apiserver sent on a watch. A relist never uses a separate type: a vanished object
 * is `DELETED` (with its last known state), a new one `ADDED`, a changed one `MODIFIED`,
 * so consumers fold relist and watch events the same way; `relist` is for the audit trail.
 *
 * `resourceVersion` is where the informer stands after this event: the object's RV for
 * watch events, the LIST's RV for relist events (a synthetic DELETED has no RV of its own).
 */
export interface KubeEvent {
  kind: KubeKind;
  type: KubeEventType;
  object: RawKubeObject;
  resourceVersion: string;
  relist: boolean;
}

/** Awaited before the informer goes on; throwing makes the informer retry from the last saved RV. */
export type KubeEventSink = (event: KubeEvent) => Promise<void> | void;

export function objectKey(object: Pick<RawKubeObject, 'metadata'>): string {
  const ns = object.metadata.namespace;
  return ns ? `${ns}/${object.metadata.name}` : object.metadata.name;
}
