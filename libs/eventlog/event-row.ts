import {
  isKubeKind,
  isWatchEventOrigin,
  isWatchEventType,
  SERVICE_NAME_LABEL,
  type KubeKind,
  type LoggedWatchEvent,
  type WatchEvent,
} from '../model/index.ts';
import { EventLogError } from './event-log-error.ts';

/** One row of the events table, and the checks and derivations an event goes through to become one. */

export interface EventRow {
  seq: number;
  received_at: string;
  kind: KubeKind;
  type: WatchEvent['type'];
  origin: WatchEvent['origin'];
  namespace: string;
  name: string;
  uid: string;
  resource_version: string;
  service: string;
  object: string;
  row_hash: string;
}

export function rowToEvent(r: EventRow): LoggedWatchEvent {
  return {
    seq: r.seq,
    receivedAt: r.received_at,
    kind: r.kind,
    type: r.type,
    origin: r.origin,
    namespace: r.namespace,
    name: r.name,
    uid: r.uid,
    resourceVersion: r.resource_version,
    object: JSON.parse(r.object),
  };
}

/**
 * An event made ready for the log: checked, its object serialised and its service read, the
 * object itself no longer referenced. What appendEvents does to each event before its
 * transaction, done ahead (e.g. as a list page arrives) so the raw object can die young.
 */
export interface PreparedEventRow {
  readonly kind: KubeKind;
  readonly type: WatchEvent['type'];
  readonly origin: WatchEvent['origin'];
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  readonly service: string;
  /** JSON.stringify(event.object): the row's object column. */
  readonly object: string;
}

/** Checks and serialises one event (throws EventLogError INVALID, or what its object's toJSON throws). */
export function prepareEventRow(e: WatchEvent, i = 0): PreparedEventRow {
  validateEvent(e, i);
  const object = JSON.stringify(e.object);
  return {
    kind: e.kind,
    type: e.type,
    origin: e.origin,
    namespace: e.namespace,
    name: e.name,
    uid: e.uid,
    resourceVersion: e.resourceVersion,
    service: serviceOf(e),
    object,
  };
}

export function validateEvent(e: WatchEvent, i: number): void {
  if (!e || typeof e !== 'object') invalid(i, 'is not an object');
  if (!isKubeKind(e.kind)) invalid(i, `has unknown kind ${JSON.stringify(e.kind)}`);
  if (!isWatchEventType(e.type)) invalid(i, `has unknown type ${JSON.stringify(e.type)}`);
  if (!isWatchEventOrigin(e.origin)) invalid(i, `has unknown origin ${JSON.stringify(e.origin)}`);
  if (typeof e.name !== 'string' || e.name === '') invalid(i, 'has no name');
  if (typeof e.namespace !== 'string' || typeof e.uid !== 'string' || typeof e.resourceVersion !== 'string')
    invalid(i, 'has non-string namespace/uid/resourceVersion');
  if (e.object === undefined) invalid(i, 'has no object');
}

function invalid(i: number, why: string): never {
  throw new EventLogError('INVALID', `appendEvents: event ${i} ${why}; batch not written`);
}

/** The service an event belongs to, for audit queries: the Service's name or a slice's owner label. */
export function serviceOf(e: WatchEvent): string {
  if (e.kind === 'Service') return e.name;
  if (e.kind !== 'EndpointSlice') return '';
  const labels = (e.object as { metadata?: { labels?: Record<string, unknown> } } | null)?.metadata?.labels;
  const v = labels?.[SERVICE_NAME_LABEL];
  return typeof v === 'string' ? v : '';
}
