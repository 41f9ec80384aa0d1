import type { WatchEvent } from '../../libs/model/index.ts';
import type { KubeEvent } from '../../libs/kube/index.ts';

/** The event as the log records it: the raw object, exactly as received. */
export function toWatchEvent(e: KubeEvent, origin: 'manifests' | undefined): WatchEvent {
  const md = e.object.metadata;
  return {
    kind: e.kind,
    type: e.type,
    origin: origin ?? (e.relist ? 'relist' : 'watch'),
    namespace: md.namespace || (e.kind === 'Node' ? '' : 'default'),
    name: md.name,
    uid: md.uid ?? '',
    resourceVersion: md.resourceVersion ?? e.resourceVersion,
    object: e.object,
  };
}
