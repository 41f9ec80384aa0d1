import {
  LATEST_READING_REVISION,
  type Ack,
  type AckOrNack,
  type DataDelta,
  type LoggedWatchEvent,
} from '../model/index.ts';
import { nodeStateHash, renderNodeState } from '../planner/index.ts';
import { EventLogError } from './event-log-error.ts';
import type { EventLog } from './event-log.ts';
import { rowToEvent, type EventRow } from './event-row.ts';
import { contentSource, replayVersion } from './replay.ts';
import { databaseOf } from './database-handle.ts';
import { placeInTime, StepSpan } from './stamp-order.ts';
import {
  serviceOperationVersions,
  type ServiceNow,
  type ServiceOperationVersion,
} from './service-operation-versions.ts';

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
  /**
   * Versions a pin/rollback/unpin made after this event (and before the service's next one) that
   * changed the service against the version before (probe11 K4: a rollback serving a deleted
   * Service again). Absent when none.
   */
  readonly after?: readonly ServiceOperationVersion[];
  /** On the newest entry only: what the latest version serves for the service. */
  readonly now?: ServiceNow;
}

export interface AckedBy {
  readonly node: string;
  readonly version: number;
  /** The node's own time on that ACK. */
  readonly at: string;
  readonly contentOf?: number;
}

/**
 * Every event of one service (the Service and the slices labelled for it), oldest first; with
 * `last`, only the newest `last` of them (what a page shows: the rest is not computed).
 *
 * One pass (review3 A4: it ran one window query over every later ACK per event, 232 s for 1000
 * events × 100 nodes, on the planner's only thread). A version u holds the event at seq s when
 * u >= v(s) (v(s): the first version made from events whose seq_to reaches s) and, for a pin or
 * rollback, its source covers s. The first holds iff M(u) >= s, M(u) being the largest seq_to of
 * the versions made from events up to u; so u holds s iff s <= E(u), E(u) = M(u) for a version
 * made from events and min(M(u), the source's seq_to) for a pin. Walking the events newest
 * first, the versions that hold them only grow: each node's first ACK (lowest version, then
 * earliest row) is kept as the walk adds the ACKs whose E reaches the event.
 */
export function serviceHistory(
  log: EventLog,
  ns: string,
  name: string,
  opts: { readonly last?: number } = {},
): ServiceHistoryEntry[] {
  const db = databaseOf(log);
  const where = `namespace = ? AND service = ? AND kind IN ('Service','EndpointSlice')`;
  const rows = (
    opts.last === undefined
      ? db.prepare(`SELECT * FROM events WHERE ${where} ORDER BY seq`).all(ns, name)
      : db.prepare(`SELECT * FROM events WHERE ${where} ORDER BY seq DESC LIMIT ?`).all(ns, name, opts.last).reverse()
  ) as EventRow[];
  if (rows.length === 0) return [];

  const pins = pinSources(log);
  const versions = db
    .prepare('SELECT version, seq_to AS seqTo, content_of AS c FROM versions ORDER BY version')
    .all() as { version: number; seqTo: number; c: number | null }[];
  /** Versions made from events, ascending, with M (their running largest seq_to), for v(s). */
  const made: { version: number; m: number }[] = [];
  const reach = new Map<number, number>(); // E(u)
  let m = -Infinity;
  for (const v of versions) {
    if (v.c === null) {
      m = Math.max(m, v.seqTo);
      made.push({ version: v.version, m });
      reach.set(v.version, m);
    } else {
      const src = pins.get(v.version);
      if (src) reach.set(v.version, Math.min(m, src.seqTo));
    }
  }
  /** v(s): the first version made from events whose seq_to reaches s (M is non-decreasing). */
  const versionOf = (seq: number): number | undefined => {
    let lo = 0;
    let hi = made.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (made[mid]!.m >= seq) hi = mid;
      else lo = mid + 1;
    }
    return made[lo]?.version;
  };
  const shown = rows.map((r) => versionOf(r.seq));
  const oldest = shown.find((v) => v !== undefined);
  // Each node's first ACK of each version (from the oldest version any shown event needs): a later
  // row of the same version never wins. `at` is that row's (SQLite: bare column beside min()).
  const acks =
    oldest === undefined
      ? []
      : (
          db
            .prepare(
              `SELECT node, version, min(id) AS id, at FROM acks WHERE type = 'ACK' AND version >= ? GROUP BY node, version`,
            )
            .all(oldest) as { node: string; version: number; id: number; at: string }[]
        )
          .flatMap((a) => {
            const e = reach.get(a.version);
            return e === undefined ? [] : [{ ...a, e }];
          })
          .sort((x, y) => y.e - x.e);

  const first = new Map<string, { version: number; id: number; at: string }>();
  const out: ServiceHistoryEntry[] = new Array(rows.length);
  let next = 0;
  for (let i = rows.length - 1; i >= 0; i--) {
    const r = rows[i]!;
    const v = shown[i];
    for (; next < acks.length && acks[next]!.e >= r.seq; next++) {
      const a = acks[next]!;
      const f = first.get(a.node);
      if (!f || a.version < f.version || (a.version === f.version && a.id < f.id)) first.set(a.node, a);
    }
    if (v === undefined) {
      out[i] = { event: rowToEvent(r), version: v, ackedBy: [] };
      continue;
    }
    const ackedBy = [...first]
      .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
      .map(([node, a]): AckedBy => {
        const src = pins.get(a.version);
        const by = { node, version: a.version, at: a.at };
        return src ? { ...by, contentOf: src.version } : by;
      });
    out[i] = { event: rowToEvent(r), version: v, ackedBy };
  }
  return withOperationVersions(log, ns, name, out);
}

/**
 * Hangs each operation version that changed the service on the newest event received before it
 * was made (one planner's clock stamps both), and what the latest version serves on the newest
 * entry. Versions made before the first entry shown (a page of the newest) are left out.
 */
function withOperationVersions(
  log: EventLog,
  ns: string,
  name: string,
  entries: ServiceHistoryEntry[],
): ServiceHistoryEntry[] {
  const { versions, now } = serviceOperationVersions(log, ns, name);
  const after = new Map<number, ServiceOperationVersion[]>();
  let i = 0;
  for (const v of versions) {
    while (i + 1 < entries.length && entries[i + 1]!.event.receivedAt <= v.at) i++;
    if (entries[i]!.event.receivedAt > v.at) continue;
    after.set(i, [...(after.get(i) ?? []), v]);
  }
  const last = entries.length - 1;
  return entries.map((e, k) => ({
    ...e,
    ...(after.has(k) ? { after: after.get(k) } : {}),
    ...(k === last && now ? { now } : {}),
  }));
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
  /**
   * Set when the acked version was made under an older reading revision than this release's: a
   * planner of an older release made it, and the appliers of that time may have rendered it by
   * older rules, so a false nodeStateVerified is not proof they ran something wrong (probe15: every
   * ACK of a log from before an upgrade read "DOES NOT MATCH re-rendering").
   */
  readonly madeByOlderRelease?: { readonly readingRevision: number };
  /**
   * Why the log cannot say what the node ran at `at` (probe8 C2), or absent when it can: `at` is
   * before the log's history, the node's earlier reports were compacted away, or the acked
   * version's content is no longer in the log. `ack` and `services` are then not an answer.
   */
  readonly unknown?: string;
  /**
   * Set when `at` falls where the ACK stamps step back by more than CLOCK_STEP_BOUND_MS (a planner
   * whose clock was wrong recorded them): the rows are placed by their order (stamp-order.ts), and
   * the answer may be off by up to the step. Before, such an answer read as certain (probe12 L2:
   * "version 5" for a time the node ran version 12).
   */
  readonly clockStep?: string;
}

/** Per log: how far its acks' received_at were checked for a clock step (stamp-order.ts), and the result. */
interface StepScan {
  upTo: number;
  hash: string;
  span: StepSpan;
}
const ackSteps = new WeakMap<EventLog, StepScan>();

/**
 * Whether the acks' received_at ever step back by more than CLOCK_STEP_BOUND_MS (a clock fault).
 * Checked incrementally: each call reads only the rows added since the last one, as long as the
 * row checked last is still there with the same chain hash (a step-down's truncation replaces
 * rows). Rows without received_at (before migration 0005) are not the planner's stamps.
 */
function acksHaveClockStep(log: EventLog): boolean {
  const db = databaseOf(log);
  const fresh = (): StepScan => ({ upTo: 0, hash: '', span: new StepSpan() });
  let seen = ackSteps.get(log) ?? fresh();
  const still = db.prepare('SELECT row_hash AS h FROM acks WHERE id = ?').get(seen.upTo) as { h: string } | undefined;
  if (seen.upTo > 0 && still?.h !== seen.hash) seen = fresh();
  const rows = db
    .prepare('SELECT id, received_at, row_hash FROM acks WHERE id > ? ORDER BY id')
    .raw()
    .iterate(seen.upTo) as Iterable<[number, string | null, string]>;
  for (const [id, r, hash] of rows) {
    seen.span.add(r === null ? Number.NaN : Date.parse(r));
    seen.upTo = id;
    seen.hash = hash;
  }
  ackSteps.set(log, seen);
  return seen.span.stepped();
}

/** Why an answer at `when` is not certain (see NodeAtTime.clockStep), or undefined when it is. */
function clockStepAt(log: EventLog, when: string): string | undefined {
  return ackSteps.get(log)?.span.uncertainAt(Date.parse(when), "the log's ACK stamps");
}

/**
 * The last acks row id placed at or before `when` by placeInTime (the acks' stamps step back by
 * more than the bound somewhere: a clock fault); 0: none.
 */
function lastAckIdAt(log: EventLog, when: string): number {
  const rows = databaseOf(log).prepare('SELECT id, coalesce(received_at, at) FROM acks ORDER BY id').raw().all() as [
    number,
    string,
  ][];
  const placed = placeInTime(rows.map(([, t]) => Date.parse(t)));
  const limit = Date.parse(when);
  let last = 0;
  for (let i = 0; i < placed.length && placed[i]! <= limit; i++) last = rows[i]![0];
  return last;
}

/**
 * What a node had programmed at a time: its last ACK then, the version's services, and a
 * cross-check. Time is the planner's: a row's `received_at` (its own receive order, monotonic
 * along the chain), or the node's `at` for rows written before it existed; "last" is the row
 * order, so a node whose clock ran ahead once does not keep that ACK "latest" (review 2, R3).
 * Where the received_at step back by more than CLOCK_STEP_BOUND_MS (a planner's clock fault,
 * review4 G6), the rows are placed in time by placeInTime (stamp-order.ts) instead.
 */
export function nodeAt(log: EventLog, node: string, at?: string): NodeAtTime {
  // Times are ISO-8601 UTC strings compared as text; new Date(8.64e15) would print as
  // '+275760-…', which sorts before every real time, so the open bound is the last 4-digit year.
  const when = at === undefined ? '9999-12-31T23:59:59.999Z' : iso(at);
  const db = databaseOf(log);
  // Rows up to `cut` by id (a clock step in the log), else by their stamps as before.
  const cut = at !== undefined && acksHaveClockStep(log) ? lastAckIdAt(log, when) : undefined;
  const inTime = cut === undefined ? 'coalesce(received_at, at) <= ?' : 'id <= ?';
  const row = db
    .prepare(
      `SELECT id, body, received_at FROM acks WHERE node = ? AND type = 'ACK' AND ${inTime}
       ORDER BY id DESC LIMIT 1`,
    )
    .get(node, cut ?? when) as { id: number; body: string; received_at: string | null } | undefined;
  const ack = row && (JSON.parse(row.body) as Ack);
  const nacksSince = (
    db
      .prepare(`SELECT count(*) AS n FROM acks WHERE node = ? AND type = 'NACK' AND id > ? AND ${inTime}`)
      .get(node, row?.id ?? 0, cut ?? when) as { n: number }
  ).n;
  if (!ack) {
    const unknown = noReportWhy(log, node, at === undefined ? undefined : when);
    return { node, at: when, ack, nacksSince, services: [], nodeStateVerified: undefined, ...(unknown && { unknown }) };
  }
  const skew = row.received_at === null ? Number.NaN : Date.parse(ack.at) - Date.parse(row.received_at);
  const received =
    row.received_at === null
      ? {}
      : Number.isFinite(skew)
        ? { receivedAt: row.received_at, clockSkewMs: skew }
        : { receivedAt: row.received_at };
  // A version the log never produced (a forged or buggy ACK an older planner recorded, probe10 H3):
  // what the node said is shown, what it ran is unknown; not a failure of the whole query.
  const newest = log.latestVersion()?.version ?? 0;
  if (ack.version > newest) {
    const unknown = `node ${node} acked version ${ack.version}, which the log never produced (newest ${newest})`;
    return { node, at: when, ack, ...received, nacksSince, services: [], nodeStateVerified: undefined, unknown };
  }
  let r: ReturnType<typeof replayVersion>;
  try {
    r = replayVersion(log, ack.version);
  } catch (e) {
    // its events compacted without a checkpoint, or a version this log never had
    if (!(e instanceof EventLogError)) throw e;
    const unknown = `node ${node} acked version ${ack.version}, whose content the log cannot rebuild (${e.message})`;
    return { node, at: when, ack, ...received, nacksSince, services: [], nodeStateVerified: undefined, unknown };
  }
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
  const step = cut === undefined ? undefined : clockStepAt(log, when);
  return {
    node,
    at: when,
    ack,
    ...received,
    nacksSince,
    services,
    nodeStateVerified: verified,
    ...(r.source.readingRevision < LATEST_READING_REVISION && {
      madeByOlderRelease: { readingRevision: r.source.readingRevision },
    }),
    ...(step && { clockStep: step }),
  };
}

/**
 * Why "no ACK of `node` up to `at`" is not knowledge (undefined when it is): the acks chain was
 * compacted (a prefix: its ACKs before the cut may be what it ran at `at`), or `at` (undefined:
 * now) lies before the first row the log holds of versions and reports (the log did not exist).
 */
function noReportWhy(log: EventLog, node: string, at: string | undefined): string | undefined {
  const db = databaseOf(log);
  const cut = (db.prepare(`SELECT anchor_id AS a FROM chain_heads WHERE chain = 'acks'`).get() as { a: number }).a;
  if (cut > 0)
    return `the reports up to row ${cut} were compacted (db compact, retention): ${node}'s ACKs from before may be what it ran`;
  if (at === undefined) return undefined;
  const first = (
    db
      .prepare(`SELECT min(t) AS t FROM (SELECT min(created_at) AS t FROM versions
        UNION ALL SELECT min(coalesce(received_at, at)) FROM acks)`)
      .get() as { t: string | null }
  ).t;
  if (first === null) return 'the log holds no version and no node report yet';
  if (at < first) return `the log begins at ${first}, after ${at}`;
  return undefined;
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

export type NodeLagStatus = 'BEHIND' | 'FAILED' | 'CURRENT' | 'LEFT';

export interface NodeLag {
  readonly node: string;
  readonly status: NodeLagStatus;
  /** Version of the node's last report (ACK or NACK). */
  readonly version: number;
  /** Version of the node's last ACK, in receive order (0: none). */
  readonly ackedVersion: number;
  readonly latestVersion: number;
  readonly lastReport: AckOrNack;
  /** When the planner received that report (its own clock); null for rows logged before migration 0005. */
  readonly receivedAt: string | null;
}

/**
 * The nodes (Node objects) the newest version's data names, with that version; undefined when the
 * log holds no version or cannot rebuild the newest one (compacted without a checkpoint).
 */
export function nodesOfNewestVersion(log: EventLog): { version: number; nodes: ReadonlySet<string> } | undefined {
  const latest = log.latestVersion()?.version;
  if (latest === undefined) return undefined;
  try {
    return { version: latest, nodes: new Set(replayVersion(log, latest).state.data.nodeNames()) };
  } catch (e) {
    if (e instanceof EventLogError) return undefined;
    throw e;
  }
}

/**
 * Every node that ever reported, with where it stands: FAILED when its last report is a NACK,
 * BEHIND when its last ACK is older than the latest version, else CURRENT; given `cluster` (the
 * nodes of the newest version's data, nodesOfNewestVersion), a node not CURRENT that the cluster no
 * longer has is LEFT (probe20 P20-3: every node ever scaled away was BEHIND for ever). `all` false
 * keeps only the BEHIND and FAILED ones.
 *
 * O(nodes × log(rows)) index probes, never a pass over the acks table (review4 G3: it fetched
 * every ACK row of every node, 14–23 s at 1M rows, at every planner start and twice at each
 * takeover, past the lease's window). The distinct nodes come from a skip-scan of the
 * `(node, …)` index (a recursive step to the next larger name), each node's last ACK and last
 * NACK from the max of `(node, type, id)`: "last" is the row order, the planner's receive order,
 * as in nodeAt (review 2, R3).
 */
export function nodesBehind(log: EventLog, opts: { all?: boolean; cluster?: ReadonlySet<string> } = {}): NodeLag[] {
  const latest = log.latestVersion()?.version ?? 0;
  const db = databaseOf(log);
  const heads = lastReportIds(log);
  const byId = db.prepare('SELECT body, version, received_at AS receivedAt FROM acks WHERE id = ?');
  const out: NodeLag[] = [];
  for (const { ackId, nackId } of heads) {
    const lastId = Math.max(ackId ?? 0, nackId ?? 0);
    const { body, receivedAt } = byId.get(lastId) as { body: string; receivedAt: string | null };
    const last = JSON.parse(body) as AckOrNack;
    const ackedVersion =
      ackId === null ? 0 : ackId === lastId ? last.version : (byId.get(ackId) as { version: number }).version;
    const lag: NodeLagStatus = last.type === 'NACK' ? 'FAILED' : last.version < latest ? 'BEHIND' : 'CURRENT';
    const status: NodeLagStatus = lag !== 'CURRENT' && opts.cluster && !opts.cluster.has(last.node) ? 'LEFT' : lag;
    if (opts.all || (status !== 'CURRENT' && status !== 'LEFT'))
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

/**
 * Each node that has rows, by name, with the id of its last ACK and of its last NACK (null: none),
 * by index probes only (see nodesBehind). Also what `db compact` keeps of each node (compact-log.ts).
 */
export function lastReportIds(log: EventLog): { node: string; ackId: number | null; nackId: number | null }[] {
  return databaseOf(log)
    .prepare(
      `WITH RECURSIVE n(node) AS (
         SELECT (SELECT min(node) FROM acks)
         UNION ALL
         SELECT (SELECT min(node) FROM acks WHERE node > n.node) FROM n WHERE n.node IS NOT NULL
       )
       SELECT node,
         (SELECT max(id) FROM acks WHERE node = n.node AND type = 'ACK') AS ackId,
         (SELECT max(id) FROM acks WHERE node = n.node AND type = 'NACK') AS nackId
       FROM n WHERE node IS NOT NULL`,
    )
    .all() as { node: string; ackId: number | null; nackId: number | null }[];
}

function iso(at: string): string {
  const t = Date.parse(at);
  if (Number.isNaN(t)) throw new EventLogError('INVALID', `--at ${at}: not an ISO-8601 time`);
  return new Date(t).toISOString();
}
