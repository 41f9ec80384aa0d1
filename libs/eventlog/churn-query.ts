import { databaseOf } from './database-handle.ts';
import type { EventLog } from './event-log.ts';

/** Watch events one namespace put in the log since a time (audit churn). */
export interface NamespaceChurn {
  readonly namespace: string;
  readonly events: number;
  /** Bytes of the objects logged (the object column: what the log and the group's log stream keep). */
  readonly bytes: number;
  /** Distinct objects (kind/name) with events. */
  readonly objects: number;
  /** The object with the most events (then bytes), as "Kind/name". */
  readonly busiest: string;
  readonly busiestEvents: number;
}

export interface EventChurn {
  /** The time asked for (ISO-8601). */
  readonly since: string;
  /** The seq range read (events received at or after `since`); 0/0 when there are none. */
  readonly fromSeq: number;
  readonly toSeq: number;
  readonly events: number;
  readonly bytes: number;
  /** Busiest first (events, then bytes, then name). */
  readonly namespaces: readonly NamespaceChurn[];
}

/**
 * Which namespaces (and objects) fill the event log since `since` (review3 K3: a tenant's
 * annotation churn grows the log and the group's log stream by the object's size per write; the
 * log keeps only what the readers read, but a busy object still costs a row per change).
 *
 * Events are found without a scan of the whole table: the newest version made strictly before
 * `since` bounds the seqs from below (its events were received no later than it was made: before
 * `since`; versions_by_time is an index and versions are made from events in seq order), and
 * only the events after it are read, each checked against `since`. (A planner clock stepped back
 * between receiving events and making their version can leave some of them out: times here are
 * the planner's, as everywhere in the log.)
 */
export function eventChurn(log: EventLog, since: string): EventChurn {
  const db = databaseOf(log);
  const before = db
    .prepare(
      'SELECT seq_to AS s FROM versions WHERE content_of IS NULL AND created_at < ? ORDER BY created_at DESC, version DESC LIMIT 1',
    )
    .get(since) as { s: number } | undefined;
  const lowest = (before?.s ?? 0) + 1;
  const rows = db
    .prepare(
      `SELECT namespace, kind, name, COUNT(*) AS events, SUM(LENGTH(CAST(object AS BLOB))) AS bytes,
              MIN(seq) AS first, MAX(seq) AS last
         FROM events WHERE seq >= ? AND received_at >= ?
        GROUP BY namespace, kind, name`,
    )
    .all(lowest, since) as {
    namespace: string;
    kind: string;
    name: string;
    events: number;
    bytes: number;
    first: number;
    last: number;
  }[];
  const byNs = new Map<string, { events: number; bytes: number; objects: number; top?: (typeof rows)[number] }>();
  let fromSeq = 0;
  let toSeq = 0;
  for (const r of rows) {
    fromSeq = fromSeq === 0 ? r.first : Math.min(fromSeq, r.first);
    toSeq = Math.max(toSeq, r.last);
    const ns = byNs.get(r.namespace) ?? { events: 0, bytes: 0, objects: 0 };
    ns.events += r.events;
    ns.bytes += r.bytes;
    ns.objects += 1;
    if (!ns.top || r.events > ns.top.events || (r.events === ns.top.events && r.bytes > ns.top.bytes)) ns.top = r;
    byNs.set(r.namespace, ns);
  }
  const namespaces = [...byNs]
    .map(([namespace, n]) => ({
      namespace,
      events: n.events,
      bytes: n.bytes,
      objects: n.objects,
      busiest: `${n.top!.kind}/${n.top!.name}`,
      busiestEvents: n.top!.events,
    }))
    .sort((a, b) => b.events - a.events || b.bytes - a.bytes || (a.namespace < b.namespace ? -1 : 1));
  return {
    since,
    fromSeq,
    toSeq,
    events: namespaces.reduce((s, n) => s + n.events, 0),
    bytes: namespaces.reduce((s, n) => s + n.bytes, 0),
    namespaces,
  };
}
