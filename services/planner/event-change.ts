import { readKubeObject, type KubeKind, type WatchEvent } from '../../libs/model/index.ts';
import type { KubeEvent } from '../../libs/kube/index.ts';
import type { ObjectChange } from '../../libs/planner/index.ts';

/** The event as the log records it: the raw object, exactly as received. */
export function toWatchEvent(e: KubeEvent, origin: 'manifests' | undefined): WatchEvent {
  const md = e.object.metadata;
  return {
    kind: e.kind, type: e.type, origin: origin ?? (e.relist ? 'relist' : 'watch'),
    namespace: md.namespace || (e.kind === 'Node' ? '' : 'default'), name: md.name, uid: md.uid ?? '',
    resourceVersion: md.resourceVersion ?? e.resourceVersion, object: e.object,
  };
}

export interface ObjectRejection {
  readonly kind: KubeKind;
  readonly namespace: string;
  readonly name: string;
  readonly reason: string;
  readonly seq: number;
}

/**
 * How the planner folds one logged event into its state. A malformed object is rejected alone:
 * no change is made, so the object's previous good state stays in the snapshot (an update that
 * breaks a Service must not take the Service down). Deletions always apply.
 */
export function eventChange(e: Pick<WatchEvent, 'kind' | 'type' | 'namespace' | 'name' | 'object'>): { change: ObjectChange } | { reason: string } {
  if (e.type === 'DELETED') return { change: { op: 'delete', kind: e.kind, namespace: e.namespace, name: e.name } };
  const r = readKubeObject(e.object, `${e.kind} ${e.namespace ? e.namespace + '/' : ''}${e.name}`);
  if (!r.ok) return { reason: r.rejection.reason };
  const o = r.object;
  if (o.kind !== e.kind || o.meta.namespace !== e.namespace || o.meta.name !== e.name) {
    return { reason: `object identity ${o.kind} ${o.meta.namespace}/${o.meta.name} differs from the event's` };
  }
  return { change: { op: 'upsert', object: o } };
}

export const rejectionKey = (r: Pick<ObjectRejection, 'kind' | 'namespace' | 'name'>): string => `${r.kind}/${r.namespace}/${r.name}`;
