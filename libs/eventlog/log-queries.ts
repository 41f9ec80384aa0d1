/**
 * The event log's read side: events, versions, config revisions and operations as EventLog's
 * queries return them, each a plain function of the database. Separate from event-log.ts, which
 * keeps the class callers hold and the write path (chained appends in one transaction), so each
 * file reads in one sitting; EventLog's methods of the same names call these.
 */
import type Database from 'better-sqlite3';
import type { ConfigRevision, DataDelta, LoggedWatchEvent, Operation, ProxyConfig } from '../model/index.ts';
import { rowToEvent, type EventRow } from './event-row.ts';
import { hasClockStep, placeInTime, StepSpan } from './stamp-order.ts';
import { rowToVersion, type VersionRecord, type VersionRow } from './version-record.ts';

export interface OperationRecord extends Operation {
  readonly id: number;
  readonly version: number | undefined;
  readonly at: string;
}

/** A version row's columns that make its VersionRecord (rowToVersion): all but the delta and the row hash. */
export const VERSION_HEADER_COLUMNS =
  'version, parent, hash, reason, created_at, seq_from, seq_to, content_of, reading_revision';

/** EventLog.events() */
export function readEvents(
  db: Database.Database,
  opts: { fromSeq?: number; toSeq?: number; limit?: number } = {},
): LoggedWatchEvent[] {
  const rows = db
    .prepare(`SELECT * FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?`)
    .all(opts.fromSeq ?? 0, opts.toSeq ?? Number.MAX_SAFE_INTEGER, opts.limit ?? -1) as EventRow[];
  return rows.map(rowToEvent);
}

/**
 * The seq of each object's latest event (among the events `where` keeps): one object, one kind,
 * namespace and name. What the fold (replay.ts), the live objects and their identities start from.
 */
export function latestEventSeqsSql(where = ''): string {
  return `SELECT max(seq) AS seq FROM events ${where} GROUP BY kind, namespace, name`;
}

/** EventLog.liveObjectEvents() */
export function liveObjectEvents(db: Database.Database): LoggedWatchEvent[] {
  const rows = db
    .prepare(`SELECT e.* FROM events e
    JOIN (${latestEventSeqsSql()}) last ON e.seq = last.seq
    WHERE e.type != 'DELETED' ORDER BY e.seq`)
    .all() as EventRow[];
  return rows.map(rowToEvent);
}

/** An object's identity as a source remembers it (libs/kube kind-informer.ts identityOf), read from the log. */
export interface LoggedIdentity {
  readonly kind: string;
  readonly apiVersion: string | null;
  readonly objectKind: string | null;
  readonly name: string;
  readonly namespace: string | null;
  readonly uid: string | null;
  readonly resourceVersion: string | number | null;
  /** metadata.labels as JSON text, or null. */
  readonly labels: string | null;
}

/**
 * EventLog.liveObjectIdentities(): liveObjectEvents' objects, their identities only, taken by
 * SQLite's JSON functions: no object is parsed into JavaScript (at 10,000 services × 250
 * endpoints, parsing them all held a new leader's thread ~10 s, its collections included).
 */
export function liveObjectIdentities(db: Database.Database): LoggedIdentity[] {
  const at = (p: string) => `json_extract(e.object, '$.${p}')`;
  return db
    .prepare(`SELECT e.kind AS kind, ${at('apiVersion')} AS apiVersion, ${at('kind')} AS objectKind,
      ${at('metadata.name')} AS name, ${at('metadata.namespace')} AS namespace, ${at('metadata.uid')} AS uid,
      ${at('metadata.resourceVersion')} AS resourceVersion,
      CASE json_type(e.object, '$.metadata.labels') WHEN 'object' THEN ${at('metadata.labels')} END AS labels
    FROM events e
    JOIN (${latestEventSeqsSql()}) last ON e.seq = last.seq
    WHERE e.type != 'DELETED' ORDER BY e.seq`)
    .all() as LoggedIdentity[];
}

/** EventLog.versions() */
export function readVersions(
  db: Database.Database,
  opts: { from?: number; to?: number; newest?: number } = {},
): VersionRecord[] {
  const range = [opts.from ?? 0, opts.to ?? Number.MAX_SAFE_INTEGER];
  const cols = VERSION_HEADER_COLUMNS;
  const rows = (
    opts.newest === undefined
      ? db.prepare(`SELECT ${cols} FROM versions WHERE version >= ? AND version <= ? ORDER BY version`).all(...range)
      : db
          .prepare(`SELECT ${cols} FROM versions WHERE version >= ? AND version <= ? ORDER BY version DESC LIMIT ?`)
          .all(...range, opts.newest)
          .reverse()
  ) as VersionRow[];
  return rows.map(rowToVersion);
}

/** EventLog.countVersions() */
export function countVersions(db: Database.Database, opts: { from?: number; to?: number } = {}): number {
  const r = db
    .prepare('SELECT count(*) AS n FROM versions WHERE version >= ? AND version <= ?')
    .get(opts.from ?? 0, opts.to ?? Number.MAX_SAFE_INTEGER) as { n: number };
  return r.n;
}

/**
 * The version current at `at` (ISO-8601 UTC): the one before the first version stamped after
 * `at`, or the latest when none is. Versions are stamped monotonic (recordVersion), where this
 * is simply the last one stamped at or before `at`; logs written by earlier releases may hold
 * stamps that go back (one planner's clock behind another's), and a version made later but
 * stamped earlier is then not taken for one that existed at `at`. A log whose stamps step back
 * by more than CLOCK_STEP_BOUND_MS (a clock fault) has its versions placed in time by
 * placeInTime (stamp-order.ts: by their order around the step), read in full for that.
 */

export function versionAt(
  db: Database.Database,
  at: string,
  versionOf: (n: number) => VersionRecord | undefined,
  latestVersion: () => VersionRecord | undefined,
): VersionRecord | undefined {
  const stamps = db.prepare('SELECT version, created_at FROM versions ORDER BY version').raw().all() as [
    number,
    string,
  ][];
  const ms = stamps.map(([, c]) => Date.parse(c));
  if (hasClockStep(ms)) {
    const placed = placeInTime(ms);
    const when = Date.parse(at);
    let current: number | undefined;
    for (let i = 0; i < placed.length && placed[i]! <= when; i++) current = stamps[i]![0];
    return current === undefined ? undefined : versionOf(current);
  }
  const after = db.prepare('SELECT min(version) AS v FROM versions WHERE created_at > ?').get(at) as {
    v: number | null;
  };
  if (after.v === null) {
    const latest = latestVersion();
    return latest && latest.createdAt <= at ? latest : undefined;
  }
  return after.v > 1 ? versionOf(after.v - 1) : undefined;
}

/** EventLog.versionAtUncertain() */
export function versionAtUncertain(db: Database.Database, at: string): string | undefined {
  const span = new StepSpan();
  for (const c of db.prepare('SELECT created_at FROM versions ORDER BY version').pluck().iterate() as Iterable<string>)
    span.add(Date.parse(c));
  return span.uncertainAt(Date.parse(at), "the versions' stamps");
}

/** EventLog.versionDelta() */
export function versionDelta(db: Database.Database, n: number): DataDelta | undefined {
  const row = db.prepare('SELECT delta FROM versions WHERE version = ?').get(n) as { delta: string | null } | undefined;
  return row?.delta ? (JSON.parse(row.delta) as DataDelta) : undefined;
}

/** EventLog.configRevision() */
export function configRevision(db: Database.Database, n: number): ConfigRevision | undefined {
  const r = db.prepare('SELECT * FROM config_revisions WHERE revision = ?').get(n) as
    | { revision: number; hash: string; reason: string; created_at: string; config: string }
    | undefined;
  return (
    r && {
      revision: r.revision,
      hash: r.hash,
      reason: r.reason,
      createdAt: r.created_at,
      config: JSON.parse(r.config) as ProxyConfig,
    }
  );
}

/** An operations row as stored. */
interface OperationRow {
  id: number;
  kind: Operation['kind'];
  actor: string;
  reason: string;
  params: string;
  version: number | null;
  at: string;
}

function rowToOperation(r: OperationRow): OperationRecord {
  return {
    id: r.id,
    kind: r.kind,
    actor: r.actor,
    reason: r.reason,
    params: JSON.parse(r.params),
    version: r.version ?? undefined,
    at: r.at,
  };
}

/** EventLog.operations() */
export function readOperations(db: Database.Database, opts: { newest?: number } = {}): OperationRecord[] {
  const rows = (
    opts.newest === undefined
      ? db.prepare('SELECT * FROM operations ORDER BY id').all()
      : db.prepare('SELECT * FROM operations ORDER BY id DESC LIMIT ?').all(opts.newest).reverse()
  ) as OperationRow[];
  return rows.map(rowToOperation);
}

/** EventLog.latestOperationWith() */
export function latestOperationWith(db: Database.Database, param: string): OperationRecord | undefined {
  const r = db
    .prepare(`SELECT * FROM operations WHERE json_type(params, '$.' || ?) IS NOT NULL ORDER BY id DESC LIMIT 1`)
    .get(param) as OperationRow | undefined;
  return r && rowToOperation(r);
}
