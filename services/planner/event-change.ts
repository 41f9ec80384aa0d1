import type { KubeKind, WatchEvent } from '../../libs/model/index.ts';
import type { KubeEvent } from '../../libs/kube/index.ts';
import { watchEventChange, type ObjectChange } from '../../libs/planner/index.ts';

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

/** The planner's fold of one logged event: libs/planner's shared rule, with the planner's wording. */
export function eventChange(e: Pick<WatchEvent, 'kind' | 'type' | 'namespace' | 'name' | 'object'>): { change: ObjectChange } | { reason: string } {
  const o = watchEventChange(e);
  return 'change' in o ? { change: o.change } : { reason: o.rejected };
}

export const rejectionKey = (r: Pick<ObjectRejection, 'kind' | 'namespace' | 'name'>): string => `${r.kind}/${r.namespace}/${r.name}`;
