import type Sqlite from 'better-sqlite3';
import type { OperationKind } from '../model/index.ts';
import { databaseOf } from './database-handle.ts';
import type { EventLog } from './event-log.ts';

/**
 * Versions an operation made (pin, rollback, unpin) that changed one service against the version
 * before (probe11 K4): a rollback to content from before a deletion serves the Service again
 * though its own events end with DELETED. `audit service` shows these beside the events.
 */
export interface ServiceOperationVersion {
  readonly version: number;
  /** When the version was made (the planner's clock), to place it among the events. */
  readonly at: string;
  readonly operation: {
    readonly id: number;
    readonly kind: OperationKind;
    readonly actor: string;
    readonly reason: string;
  };
  /** The version whose content it repeats (followed to the one made from events); absent for an unpin. */
  readonly contentOf?: number;
  /** What the service is in this version: 'unknown' where the deciding events were compacted away. */
  readonly service: 'present' | 'absent' | 'unknown';
  /** What changed for the service against the version before, in words ("Service present again"). */
  readonly change: string;
  /** Whether this version is still the latest (a pin/rollback then still holds new data back). */
  readonly latest: boolean;
  /** Nodes that ACKed this version, each with its first ACK of it. */
  readonly ackedBy: readonly { readonly node: string; readonly version: number; readonly at: string }[];
}

/** What the latest version serves for the service (the closing line of `audit service`). */
export interface ServiceNow {
  readonly version: number;
  readonly contentOf?: number;
  readonly service: 'present' | 'absent' | 'unknown';
  /** The latest version repeats older content (a pin or rollback in force). */
  readonly held: boolean;
}

interface Deciding {
  readonly seq: number;
  readonly type: string;
  readonly rv: string;
}
/** The service's objects as the last event of each at or before a seq decides them. */
interface ServiceAt {
  readonly service: Deciding | undefined;
  readonly slices: ReadonlyMap<string, Deciding>;
}

interface VersionCut {
  readonly version: number;
  readonly at: string;
  /** The seq up to which events make its content (its content source's seq_to). */
  readonly cut: number;
  readonly contentOf?: number;
}

/**
 * A version's content cut, read by key (a busy log has 10^5 versions a day; only the operations'
 * versions, the ones before them and the latest are asked): a version made from events is cut at
 * its seq_to, a pin/rollback at its content source's (content_of followed). Undefined where a row
 * on the way was compacted away.
 */
function versionCuts(db: Sqlite.Database): (version: number) => VersionCut | undefined {
  const row = db.prepare('SELECT seq_to AS seqTo, content_of AS c, created_at AS at FROM versions WHERE version = ?');
  const memo = new Map<number, VersionCut | undefined>();
  const cutOf = (version: number): VersionCut | undefined => {
    if (memo.has(version)) return memo.get(version);
    const r = row.get(version) as { seqTo: number; c: number | null; at: string } | undefined;
    // content_of < version (the log refuses others): the walk ends
    const src = r && r.c !== null && r.c < version ? cutOf(r.c) : undefined;
    const cut: VersionCut | undefined = !r
      ? undefined
      : r.c === null
        ? { version, at: r.at, cut: r.seqTo }
        : src && { version, at: r.at, cut: src.cut, contentOf: src.contentOf ?? src.version };
    memo.set(version, cut);
    return cut;
  };
  return cutOf;
}

function serviceAt(db: Sqlite.Database, ns: string, name: string, seq: number): ServiceAt {
  // SQLite: the bare columns come from the row holding max(seq).
  const rows = db
    .prepare(
      `SELECT kind, name, type, resource_version AS rv, max(seq) AS seq FROM events
       WHERE namespace = ? AND service = ? AND kind IN ('Service','EndpointSlice') AND seq <= ? GROUP BY kind, name`,
    )
    .all(ns, name, seq) as { kind: string; name: string; type: string; rv: string; seq: number }[];
  const service = rows.find((r) => r.kind === 'Service' && r.name === name);
  const slices = new Map(rows.filter((r) => r.kind === 'EndpointSlice').map((r) => [r.name, r] as const));
  return { service, slices };
}

const live = (d: Deciding | undefined) => d !== undefined && d.type !== 'DELETED';

/** Present or absent by the Service's deciding event; unknown where events before it were compacted. */
function presence(s: ServiceAt, anchor: number): ServiceOperationVersion['service'] {
  if (s.service === undefined && anchor > 0) return 'unknown';
  return live(s.service) ? 'present' : 'absent';
}

/** In words what differs for the service between two states, or undefined when nothing does. */
function changeOf(before: ServiceAt, after: ServiceAt, anchor: number): string | undefined {
  const parts: string[] = [];
  const was = presence(before, anchor);
  const is = presence(after, anchor);
  if (was !== is) {
    parts.push(
      is === 'present'
        ? `Service present again (RV ${after.service!.rv})`
        : is === 'absent'
          ? after.service
            ? 'Service deleted again'
            : 'Service absent (not created yet in that content)'
          : 'Service unknown (its events were compacted)',
    );
  } else if (before.service?.seq !== after.service?.seq && is === 'present') {
    parts.push(`Service back to RV ${after.service!.rv} (was RV ${before.service!.rv})`);
  }
  const slices: string[] = [];
  for (const n of [...new Set([...before.slices.keys(), ...after.slices.keys()])].sort()) {
    const a = before.slices.get(n);
    const b = after.slices.get(n);
    if (a?.seq === b?.seq || (!live(a) && !live(b))) continue;
    slices.push(!live(b) ? `${n} removed` : !live(a) ? `${n} RV ${b!.rv} back` : `${n} RV ${a!.rv} → ${b!.rv}`);
  }
  if (slices.length)
    parts.push(
      `EndpointSlices: ${slices.slice(0, 3).join(', ')}${slices.length > 3 ? ` and ${slices.length - 3} more` : ''}`,
    );
  return parts.length ? parts.join('; ') : undefined;
}

/**
 * The versions pin/rollback/unpin operations made that changed service ns/name against the
 * version before each, oldest first, and what the latest version serves for it. Cost: two
 * indexed reads per operation version (operator actions: few), none per event.
 */
export function serviceOperationVersions(
  log: EventLog,
  ns: string,
  name: string,
): { versions: ServiceOperationVersion[]; now: ServiceNow | undefined } {
  const db = databaseOf(log);
  const anchor = db.prepare(`SELECT anchor_id FROM chain_heads WHERE chain = 'events'`).pluck().get() as number;
  const cutOf = versionCuts(db);
  const newest = db.prepare('SELECT max(version) FROM versions').pluck().get() as number | null;
  const latest = newest === null ? undefined : cutOf(newest);
  if (!latest) return { versions: [], now: undefined };
  const ops = db
    .prepare(
      `SELECT id, kind, actor, reason, version FROM operations
       WHERE version IS NOT NULL AND kind IN ('pin','rollback','unpin') ORDER BY id`,
    )
    .all() as { id: number; kind: OperationKind; actor: string; reason: string; version: number }[];
  const firstAcks = db.prepare(
    `SELECT node, version, min(id) AS id, at FROM acks WHERE type = 'ACK' AND version = ? GROUP BY node ORDER BY node`,
  );
  const versions: ServiceOperationVersion[] = [];
  for (const op of ops) {
    const v = cutOf(op.version);
    const before = cutOf(op.version - 1); // versions are numbered without gaps
    if (!v || !before) continue; // compacted, or the first version (nothing before it)
    const after = serviceAt(db, ns, name, v.cut);
    const change = changeOf(serviceAt(db, ns, name, before.cut), after, anchor);
    if (change === undefined) continue;
    const acks = firstAcks.all(v.version) as { node: string; version: number; at: string }[];
    versions.push({
      version: v.version,
      at: v.at,
      operation: { id: op.id, kind: op.kind, actor: op.actor, reason: op.reason },
      ...(v.contentOf === undefined ? {} : { contentOf: v.contentOf }),
      service: presence(after, anchor),
      change,
      latest: v.version === latest.version,
      ackedBy: acks.map((a) => ({ node: a.node, version: a.version, at: a.at })),
    });
  }
  const now: ServiceNow = {
    version: latest.version,
    ...(latest.contentOf === undefined ? {} : { contentOf: latest.contentOf }),
    service: presence(serviceAt(db, ns, name, latest.cut), anchor),
    held: latest.contentOf !== undefined,
  };
  return { versions, now };
}
