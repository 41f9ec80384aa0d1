import { LATEST_READING_REVISION, readKubeObject, type ReadingRevision, type WatchEvent } from '../model/index.ts';
import type { ObjectChange } from './cluster-state.ts';

/** What one logged watch event does to the object state. */
export type WatchEventOutcome = { readonly change: ObjectChange } | { readonly rejected: string };

/**
 * The one rule, shared by the planner and replay, for folding a logged watch event into the
 * object state. A malformed object is rejected alone: it makes no change, so the object's last
 * good state stays in every later snapshot (an update that breaks a Service must not take the
 * Service down) until a valid update or a DELETED event for it arrives. Deletions always apply.
 * Consequence for replay: an object's state is decided by its last event that is valid or a
 * deletion (see libs/eventlog/replay.ts). `revision`: the reading revision to read it with (replay:
 * the one its version was made under).
 */
export function watchEventChange(
  event: Pick<WatchEvent, 'kind' | 'type' | 'namespace' | 'name' | 'object'>,
  revision: ReadingRevision = LATEST_READING_REVISION,
): WatchEventOutcome {
  if (event.type === 'DELETED')
    return { change: { op: 'delete', kind: event.kind, namespace: event.namespace, name: event.name } };
  const r = readKubeObject(
    event.object,
    `${event.kind} ${event.namespace ? event.namespace + '/' : ''}${event.name}`,
    revision,
  );
  if (!r.ok) return { rejected: r.rejection.reason };
  const o = r.object;
  // An object whose identity differs from the event's would be filed under another key.
  if (o.kind !== event.kind || o.meta.namespace !== event.namespace || o.meta.name !== event.name) {
    return {
      rejected: `object identity ${o.kind} ${o.meta.namespace ? o.meta.namespace + '/' : ''}${o.meta.name} differs from the event's`,
    };
  }
  return { change: { op: 'upsert', object: o } };
}

/** A logged object the fold refused (malformed): its previous good state stays in the data. */
export interface ObjectRejection {
  readonly kind: WatchEvent['kind'];
  readonly namespace: string;
  readonly name: string;
  readonly reason: string;
  /** Seq of the rejected event. */
  readonly seq: number;
}

/** One key per object: an object has at most one current rejection (its latest event's). */
export const rejectionKey = (r: Pick<ObjectRejection, 'kind' | 'namespace' | 'name'>): string =>
  `${r.kind}/${r.namespace}/${r.name}`;
