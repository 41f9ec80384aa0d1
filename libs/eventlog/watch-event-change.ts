import { readKubeObject, type WatchEvent } from '../model/index.ts';
import type { ObjectChange } from '../planner/index.ts';

/**
 * How a logged watch event changes the object state. The planner and replay both use this one
 * function, so replay rebuilds exactly what the planner built. An object the readers reject is
 * treated as gone (a delete of its kind/namespace/name): it can no longer be programmed, and this
 * keeps the rule "the last event per object decides its state", which replay's folding relies on.
 */
export function watchEventChange(event: Pick<WatchEvent, 'kind' | 'type' | 'namespace' | 'name' | 'object'>): ObjectChange {
  const del: ObjectChange = { op: 'delete', kind: event.kind, namespace: event.namespace, name: event.name };
  if (event.type === 'DELETED') return del;
  const r = readKubeObject(event.object, 'event log');
  if (!r.ok) return del;
  const o = r.object;
  // An object whose identity differs from the event's would break folding by key.
  if (o.kind !== event.kind || o.meta.namespace !== event.namespace || o.meta.name !== event.name) return del;
  return { op: 'upsert', object: o };
}
