import { readKubeObject, type NodeObject } from '../model/index.ts';
import type { EventLog } from './event-log.ts';
import { databaseOf } from './database-handle.ts';

/**
 * A cluster node's lifecycle as the log's Node events tell it, for `audit node` (probe20 P20-7:
 * it printed the node's last ACK only, so a Node deleted and re-created with a new address, or one
 * deleted while its applier still ran, read like a node that never changed; the story was in
 * `audit diff` alone). Only what changes how the node is served counts: added, deleted,
 * re-created (a new uid), its addresses, being marked for removal. Status updates that change
 * none of these are not entries.
 */
export interface NodeLifecycleEntry {
  readonly seq: number;
  readonly receivedAt: string;
  readonly change: NodeChange;
  readonly uid: string;
  /** InternalIP and ExternalIP addresses after the change (the last known ones for `deleted`). */
  readonly addresses: readonly string[];
}

export type NodeChange =
  | 'added'
  /** The first event the log still holds is not the Node's ADDED: older ones were compacted away. */
  | 'present (earlier events compacted)'
  | 're-created (new uid)'
  /** Another uid without the old one's DELETED: the deletion was missed (a relist after 410 Gone). */
  | 'replaced (new uid)'
  | 'addresses changed'
  /** A deletionTimestamp, or the cluster autoscaler's ToBeDeletedByClusterAutoscaler taint (kube-proxy's test). */
  | `marked for removal (${string})`
  | 'no longer marked for removal'
  | 'deleted';

export interface NodeEventRow {
  readonly seq: number;
  readonly receivedAt: string;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly uid: string;
  readonly object: unknown;
}

interface Seen {
  readonly uid: string;
  readonly present: boolean;
  readonly addresses: readonly string[];
  readonly beingRemoved: NodeObject['beingRemoved'];
}

const addressesOf = (n: NodeObject) => n.addresses.map((a) => a.address).sort();
const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The entries a node's events (in seq order) make. A Node object the readers refuse changes nothing. */
export function nodeLifecycleOf(rows: readonly NodeEventRow[]): NodeLifecycleEntry[] {
  const out: NodeLifecycleEntry[] = [];
  let seen: Seen | undefined;
  const entry = (r: NodeEventRow, change: NodeChange, addresses: readonly string[]) =>
    out.push({ seq: r.seq, receivedAt: r.receivedAt, change, uid: r.uid, addresses });
  for (const r of rows) {
    if (r.type === 'DELETED') {
      if (seen?.present !== false) entry(r, 'deleted', seen?.addresses ?? []);
      seen = { uid: r.uid, present: false, addresses: seen?.addresses ?? [], beingRemoved: '' };
      continue;
    }
    const read = readKubeObject(r.object, `event ${r.seq}`);
    if (!read.ok || read.object.kind !== 'Node') continue;
    const now: Seen = {
      uid: r.uid,
      present: true,
      addresses: addressesOf(read.object),
      beingRemoved: read.object.beingRemoved,
    };
    if (!seen) entry(r, r.type === 'ADDED' ? 'added' : 'present (earlier events compacted)', now.addresses);
    else if (!seen.present) entry(r, seen.uid === r.uid ? 'added' : 're-created (new uid)', now.addresses);
    else if (seen.uid !== r.uid) entry(r, 'replaced (new uid)', now.addresses);
    else {
      if (!same(seen.addresses, now.addresses)) entry(r, 'addresses changed', now.addresses);
      if (!seen.beingRemoved !== !now.beingRemoved)
        entry(
          r,
          now.beingRemoved ? `marked for removal (${now.beingRemoved})` : 'no longer marked for removal',
          now.addresses,
        );
    }
    seen = now;
  }
  return out;
}

/**
 * The node's lifecycle entries from the log's Node events received at or before `at` (all when
 * undefined): read by the events_by_object index, in seq order.
 */
export function nodeLifecycle(log: EventLog, node: string, at?: string): NodeLifecycleEntry[] {
  const rows = databaseOf(log)
    .prepare(
      `SELECT seq, received_at AS receivedAt, type, uid, object FROM events
       WHERE kind = 'Node' AND namespace = '' AND name = ?${at === undefined ? '' : ' AND received_at <= ?'} ORDER BY seq`,
    )
    .all(...(at === undefined ? [node] : [node, at])) as (Omit<NodeEventRow, 'object'> & { object: string })[];
  return nodeLifecycleOf(rows.map((r) => ({ ...r, object: JSON.parse(r.object) as unknown })));
}
