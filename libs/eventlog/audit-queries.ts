import type { Ack, AckOrNack, DataDelta, LoggedWatchEvent } from '../model/index.ts';
import { nodeStateHash, renderNodeState } from '../planner/index.ts';
import { EventLogError } from './event-log-error.ts';
import type { EventLog } from './event-log.ts';
import { rowToEvent, type EventRow } from './event-row.ts';
import { contentSource, replayVersion } from './replay.ts';
import { databaseOf } from './database-handle.ts';

export interface ServiceHistoryEntry {
  readonly event: LoggedWatchEvent;
  /** The first version whose seq range covers the event (undefined: no version yet). */
  readonly version: number | undefined;
  /**
   * Nodes that acknowledged a version whose content holds the event, each with its first such ACK
   * (lowest version). That is `version` or a later one, but not a pin/rollback to content from
   * before the event: a node that ACKed only that does not run the change (review 2, R2).
   * `contentOf`: the version whose content the ACKed one repeats (followed to the version made from
   * events), when the ACKed version is a pin or rollback.
   */
  readonly ackedBy: readonly AckedBy[];
}

export interface AckedBy {
  readonly node: string;
  readonly version: number;
  /** The node's own time on that ACK. */
  readonly at: string;
  readonly contentOf?: number;
}

/** Every event of one service (the Service and the slices labelled for it), oldest first. */
export function serviceHistory(log: EventLog, ns: string, name: string): ServiceHistoryEntry[] {
  const db = databaseOf(log);
  const rows = db
    .prepare(
      `SELECT * FROM events WHERE namespace = ? AND service = ? AND kind IN ('Service','EndpointSlice') ORDER BY seq`,
    )
    .all(ns, name) as EventRow[];
  const versionOf = db.prepare('SELECT min(version) AS v FROM versions WHERE seq_to >= ? AND content_of IS NULL');
  const pins = pinSources(log);
  // Per node, its first ACK (lowest version, then earliest row) among versions >= v whose content
  // holds the event: every version made from events from v on does (seq_to only grows); a pin or
  // rollback does when the version its content came from covers the event (the `held` list).
  const acks = db.prepare(
    `SELECT node, version, at FROM (
       SELECT a.node, a.version, a.at, row_number() OVER (PARTITION BY a.node ORDER BY a.version, a.id) AS n
       FROM acks a JOIN versions w ON w.version = a.version
       WHERE a.type = 'ACK' AND a.version >= ?
         AND (w.content_of IS NULL OR a.version IN (SELECT value FROM json_each(?))))
     WHERE n = 1 ORDER BY node`,
  );
  return rows.map((r) => {
    const v = (versionOf.get(r.seq) as { v: number | null }).v ?? undefined;
    if (v === undefined) return { event: rowToEvent(r), version: v, ackedBy: [] };
    const held = [...pins].filter(([w, src]) => w >= v && src.seqTo >= r.seq).map(([w]) => w);
    const ackedBy = (acks.all(v, JSON.stringify(held)) as { node: string; version: number; at: string }[]).map(
      (a): AckedBy => {
        const src = pins.get(a.version);
        return src ? { ...a, contentOf: src.version } : a;
      },
    );
    return { event: rowToEvent(r), version: v, ackedBy };
  });
}

/** Every pin/rollback version → the version its content came from (content_of followed to the end). */
function pinSources(log: EventLog): Map<number, { version: number; seqTo: number }> {
  const rows = databaseOf(log)
    .prepare('SELECT version, content_of AS c FROM versions WHERE content_of IS NOT NULL ORDER BY version')
    .all() as { version: number; c: number }[];
  const out = new Map<number, { version: number; seqTo: number }>();
  for (const { version, c } of rows) {
    // content_of < version (the log refuses others), so a pin's source is already resolved here
    const src = out.get(c) ?? contentSource(log, c);
    out.set(version, { version: src.version, seqTo: src.seqTo });
  }
  return out;
}

export interface NodeAtTime {
  readonly node: string;
  readonly at: string;
  /** The last ACK the planner had received at or before `at`, undefined when none. */
  readonly ack: Ack | undefined;
  /**
   * When the planner recorded that ACK (its clock; `ack.at` is the node's). Undefined for rows
   * written before migration 0005, which are placed in time on the node's `at`.
   */
  readonly receivedAt?: string;
  /** ack.at minus receivedAt, in ms: how far the node's clock ran ahead (negative: behind), plus transit. */
  readonly clockSkewMs?: number;
  /** NACKs received after that ACK and up to `at`: what the node failed to apply since. */
  readonly nacksSince: number;
  /** Service keys in the acked version's data. */
  readonly services: readonly string[];
  /**
   * True when rendering the acked version with the acked config revision gives exactly the node
   * state hash the node reported; undefined when the config revision is not in the log.
   */
  readonly nodeStateVerified: boolean | undefined;
}

/**
 * What a node had programmed at a time: its last ACK then, the version's services, and a
 * cross-check. Time is the planner's: a row's `received_at` (its own receive order, monotonic
 * along the chain), or the node's `at` for rows written before it existed; "last" is the row
 * order, so a node whose clock ran ahead once does not keep that ACK "latest" (review 2, R3).
 */
export function nodeAt(log: EventLog, node: string, at?: string): NodeAtTime {
  // Times are ISO-8601 UTC strings compared as text; new Date(8.64e15) would print as
  // '+275760-…', which sorts before every real time, so the open bound is the last 4-digit year.
  const when = at === undefined ? '9999-12-31T23:59:59.999Z' : iso(at);
  const db = databaseOf(log);
  const row = db
    .prepare(
      `SELECT id, body, received_at FROM acks WHERE node = ? AND type = 'ACK' AND coalesce(received_at, at) <= ?
       ORDER BY id DESC LIMIT 1`,
    )
    .get(node, when) as { id: number; body: string; received_at: string | null } | undefined;
  const ack = row && (JSON.parse(row.body) as Ack);
  const nacksSince = (
    db
      .prepare(
        `SELECT count(*) AS n FROM acks WHERE node = ? AND type = 'NACK' AND id > ? AND coalesce(received_at, at) <= ?`,
      )
      .get(node, row?.id ?? 0, when) as { n: number }
  ).n;
  if (!ack) return { node, at: when, ack, nacksSince, services: [], nodeStateVerified: undefined };
  const skew = row.received_at === null ? Number.NaN : Date.parse(ack.at) - Date.parse(row.received_at);
  const received =
    row.received_at === null
      ? {}
      : Number.isFinite(skew)
        ? { receivedAt: row.received_at, clockSkewMs: skew }
        : { receivedAt: row.received_at };
  const r = replayVersion(log, ack.version);
  const services = [...r.state.data.services()].map((s) => s.key).sort();
  const config = log.configRevision(ack.configRevision)?.config;
  let verified: boolean | undefined;
  if (config) {
    try {
      verified = nodeStateHash(renderNodeState(r.state.data, node, config)) === ack.nodeStateHash;
    } catch {
      verified = false;
    }
  }
  return { node, at: when, ack, ...received, nacksSince, services, nodeStateVerified: verified };
}

export interface VersionDiff {
  readonly from: number;
  readonly to: number;
  readonly servicesAdded: readonly string[];
  readonly servicesRemoved: readonly string[];
  readonly servicesChanged: readonly string[];
  readonly nodesAdded: readonly string[];
  readonly nodesRemoved: readonly string[];
  readonly nodesChanged: readonly string[];
  readonly delta: DataDelta;
}

/** What changed from version a to version b (both rebuilt from the log). */
export function diffVersions(log: EventLog, a: number, b: number): VersionDiff {
  const from = replayVersion(log, a).state.data;
  const to = replayVersion(log, b).state.data;
  const delta = to.deltaFrom(from);
  const svc = delta.upsertServices.map((s) => s.key);
  const nodes = delta.upsertNodes.map((n) => n.name);
  return {
    from: a,
    to: b,
    delta,
    servicesAdded: svc.filter((k) => from.service(k) === undefined),
    servicesChanged: svc.filter((k) => from.service(k) !== undefined),
    servicesRemoved: [...delta.removeServices],
    nodesAdded: nodes.filter((n) => from.node(n) === undefined),
    nodesChanged: nodes.filter((n) => from.node(n) !== undefined),
    nodesRemoved: [...delta.removeNodes],
  };
}

export type NodeLagStatus = 'BEHIND' | 'FAILED' | 'CURRENT';

export interface NodeLag {
  readonly node: string;
  readonly status: NodeLagStatus;
  /** Version of the node's last report (ACK or NACK). */
  readonly version: number;
  /** Last version the node acked (0: none). */
  readonly ackedVersion: number;
  readonly latestVersion: number;
  readonly lastReport: AckOrNack;
  /** When the planner received that report (its own clock); null for rows logged before migration 0005. */
  readonly receivedAt: string | null;
}

/**
 * Every node that ever reported, with where it stands: FAILED when its last report is a NACK,
 * BEHIND when its last ACK is older than the latest version, else CURRENT. `all` false keeps
 * only the BEHIND and FAILED ones.
 */
export function nodesBehind(log: EventLog, opts: { all?: boolean } = {}): NodeLag[] {
  const latest = log.latestVersion()?.version ?? 0;
  const rows = databaseOf(log)
    .prepare(
      `SELECT a.body, a.received_at AS receivedAt FROM acks a JOIN (SELECT node, max(id) AS id FROM acks GROUP BY node) l ON a.id = l.id ORDER BY a.node`,
    )
    .all() as { body: string; receivedAt: string | null }[];
  const acked = databaseOf(log).prepare(`SELECT max(version) AS v FROM acks WHERE node = ? AND type = 'ACK'`);
  const out: NodeLag[] = [];
  for (const { body, receivedAt } of rows) {
    const last = JSON.parse(body) as AckOrNack;
    const ackedVersion = (acked.get(last.node) as { v: number | null }).v ?? 0;
    const status: NodeLagStatus = last.type === 'NACK' ? 'FAILED' : last.version < latest ? 'BEHIND' : 'CURRENT';
    if (opts.all || status !== 'CURRENT')
      out.push({
        node: last.node,
        status,
        version: last.version,
        ackedVersion,
        latestVersion: latest,
        lastReport: last,
        receivedAt,
      });
  }
  return out;
}

function iso(at: string): string {
  const t = Date.parse(at);
  if (Number.isNaN(t)) throw new EventLogError('INVALID', `--at ${at}: not an ISO-8601 time`);
  return new Date(t).toISOString();
}
