import type {
  Ack,
  AckOrNack,
  HealthVerdict,
  Heartbeat,
  NodeStatusWord,
  NodeTarget,
  UnknownTargetFields,
} from '../model/index.ts';

export interface NodeStatusThresholds {
  /** A node not heard from (heartbeat or ack) for this long is UNKNOWN. */
  readonly silenceMs: number;
  /** A node alive but not on its target this long after the target was set is STALE. */
  readonly applyTimeoutMs: number;
}

export const DEFAULT_NODE_STATUS_THRESHOLDS: NodeStatusThresholds = { silenceMs: 30_000, applyTimeoutMs: 60_000 };

/**
 * What the planner knows about one node. Times are ms on the planner's monotonic clock (the
 * caller's `nowMs` too): they are only compared with each other, as durations, so a wall-clock
 * step cannot make a silent node look alive or a live one silent (review4 G6).
 */
export interface NodeObservation {
  readonly node: string;
  readonly target: NodeTarget | undefined;
  /** When the planner set the current target (for the APPLYING → STALE deadline). */
  readonly targetSetAt?: number;
  /**
   * When a new applier process of the node (one that had verified no version yet) was first heard
   * after the target was set, if its start granted the node a fresh apply timeout (ApplyClock): the
   * APPLYING → STALE deadline counts from the later of this and `targetSetAt` (probe20 P20-6).
   */
  readonly sessionStartAt?: number;
  /** The node's latest ACK or NACK, whichever came last, and when it arrived. */
  readonly last?: AckOrNack;
  readonly lastAt?: number;
  readonly heartbeat?: Heartbeat;
  readonly heartbeatAt?: number;
  /** Node-state hash the node should echo for its target (undefined: not computed). */
  readonly expectedNodeStateHash?: string;
  /**
   * The planner will check the node-state hash but has not rendered the node yet (it renders off
   * its read path, review4 G7): an ACK of the target is not proof of what runs until then.
   */
  readonly nodeStateChecking?: boolean;
  /** Data hash the planner's log recorded for the target's version (undefined: not known). */
  readonly expectedDataHash?: string;
  /**
   * Why the planner's own view (its log: targets, versions) is not current, e.g. a follower whose
   * copy of the group's log stopped: every word would be measured against a stale target.
   */
  readonly viewStale?: string;
  /** Two applier processes report as this node (NodeTracker: their instance ids alternate). */
  readonly twin?: string;
  /**
   * The newest data version the planner's log holds: a report of a later one names a version that
   * never existed and proves nothing (probe10 H3). Undefined: not checked (a view that may lag).
   */
  readonly newestVersion?: number;
}

/** The hashes the planner expects an ACK to echo; an undefined one is not checked. */
export interface ExpectedHashes {
  readonly nodeStateHash?: string;
  readonly dataHash?: string;
  /** The node-state hash is to be checked but not computed yet (nodeStateHash then undefined). */
  readonly nodeStateChecking?: boolean;
  /** The newest version the log holds: an ACK of a later one is of a version never made (probe10 H3). */
  readonly newestVersion?: number;
}

const shortHash = (h: string) => (h === '' ? '(empty)' : h.slice(0, 12));

/**
 * Why an ACK does not prove the node runs what the planner made, or undefined when every hash the
 * planner knows matches: the data hash against the one its log recorded for that version (a node
 * that took another planner's content for the number), the node-state hash against the planner's
 * own rendering (an applier release or node facts that render differently). Pure, one line.
 */
export function ackMismatch(
  a: Pick<Ack, 'version' | 'configRevision' | 'dataHash'> & { readonly nodeStateHash?: string },
  expected: ExpectedHashes,
): string | undefined {
  if (expected.newestVersion !== undefined && a.version > expected.newestVersion)
    return neverMade(a.version, expected.newestVersion);
  if (expected.dataHash !== undefined && a.dataHash !== expected.dataHash)
    return `runs version ${a.version} with data hash ${shortHash(a.dataHash)}, the log recorded ${shortHash(expected.dataHash)}`;
  if (
    expected.nodeStateHash !== undefined &&
    a.nodeStateHash !== undefined &&
    a.nodeStateHash !== expected.nodeStateHash
  )
    return `runs version ${a.version} config ${a.configRevision} with node-state hash ${shortHash(a.nodeStateHash)}, the planner renders ${shortHash(expected.nodeStateHash)}`;
  return undefined;
}

/**
 * Why a node-state hash differs when the node's applier is of an older release (probe15 U2): its
 * heartbeats lack the hashes every applier since cbbc59b (2026-12-03) sends once it has applied
 * something. Such an applier renders the target by its own release's rules, so after a planner
 * upgrade every node not yet upgraded is ERROR with a hash line that read as drift. '' otherwise.
 */
function olderApplierNote(o: NodeObservation, mismatch: string): string {
  const hb = o.heartbeat;
  if (!hb || hb.appliedVersion === 0 || hb.dataHash !== undefined || !mismatch.includes('node-state hash')) return '';
  return ' (its heartbeats carry no dataHash: an applier of an older release, which renders by its own rules; upgrade it)';
}

/**
 * The fields an applier noted as not known, in words: `nodes[].beingRemoved,
 * services[].ports[].endpoints[].hintNodes` and, past the paths named, how many other keys.
 */
export function unknownFieldsText(f: UnknownTargetFields): string {
  const other = f.otherKeys > 0 ? ` and ${f.otherKeys} unknown key${f.otherKeys === 1 ? '' : 's'} at other paths` : '';
  return `${f.paths.join(', ')}${other}`;
}

/** Most node names one unknown-fields warning lists (the rest are counted). */
const NAMED_NODES = 5;

/**
 * `ctl status`'s WARNING lines (without the `WARNING: ` prefix) for nodes whose appliers do not know
 * fields of their targets (probe15 U7): one line per distinct set of fields, naming the nodes
 * (the first few, then how many more). An applier of an older release under a newer planner applies
 * and ACKs a target whose new fields it ignores: what it renders differently shows as a node-state
 * hash ERROR (probe15 U2), what it does not render at all (a Node's `beingRemoved` → its /healthz)
 * shows only here. Rows may be /status JSON (ctl): anything without the field is skipped.
 */
export function unknownFieldsWarnings(
  rows: readonly { readonly node: string; readonly unknownTargetFields?: UnknownTargetFields | null }[],
): string[] {
  const byFields = new Map<string, { nodes: string[]; fields: UnknownTargetFields }>();
  for (const r of rows) {
    const f = r.unknownTargetFields;
    if (!f || !Array.isArray(f.paths) || f.paths.length === 0) continue;
    const k = JSON.stringify([f.paths, f.otherKeys > 0]);
    const g = byFields.get(k) ?? { nodes: [], fields: f };
    g.nodes.push(r.node);
    byFields.set(k, g);
  }
  return [...byFields.values()].map(({ nodes, fields }) => {
    const one = nodes.length === 1;
    const named = nodes.slice(0, NAMED_NODES).join(', ');
    const more = nodes.length > NAMED_NODES ? ` and ${nodes.length - NAMED_NODES} more nodes` : '';
    return one
      ? `${named}'s applier does not know target fields ${unknownFieldsText(fields)} (it applies its targets without them): an applier of an older release than the planner; upgrade it`
      : `${named}${more}: their appliers do not know target fields ${unknownFieldsText(fields)} (they apply their targets without them): appliers of an older release than the planner; upgrade them`;
  });
}

const neverMade = (version: number, newest: number) =>
  `reports version ${version}, which the log never produced (newest ${newest})`;

/** One line of `ctl status`: the word, what the node runs, and why. */
export interface NodeStatusRow {
  readonly node: string;
  readonly status: NodeStatusWord;
  readonly reason: string;
  readonly targetVersion: number;
  readonly targetConfigRevision: number;
  /** What the node runs now, from its newest report (null: it never said). */
  readonly appliedVersion: number | null;
  readonly appliedConfigRevision: number | null;
  /** The mode the node runs (an `--mode auto` node that fell back reports the mode it fell back to). */
  readonly mode: string | null;
  /** Echoed node-state hash equals the expected one; null when the ack is not for the target. */
  readonly hashMatch: boolean | null;
  /** Data versions the node is behind its target (0 when on it). */
  readonly lag: number;
  readonly lastError: string | null;
  readonly lastReportAt: string | null;
  readonly heartbeatAt: string | null;
  /** The node's newest health verdict (from its ACK or a later heartbeat) and the revision it is about; null: none sent. */
  readonly health: (HealthVerdict & { readonly configRevision: number }) | null;
  /** What the node's newest heartbeat warns of (no failure: `ctl status` prints them under the table); [] when none. */
  readonly warnings: readonly string[];
  /**
   * Target fields the node's applier does not know (its newest heartbeat's; probe15 U7): it applies
   * the targets without them. No part of the word (the hashes say what differs in what it
   * programmed); `ctl status` warns of it (unknownFieldsWarnings). null: none said.
   */
  readonly unknownTargetFields: UnknownTargetFields | null;
  /** The node's newest report the planner dropped as not valid, within the silence threshold (probe10 H2). */
  readonly lastInvalidReport?: string;
}

/**
 * THE status of one node (the tracker, `ctl status`, the console and audits all read this). Pure:
 * the caller passes the clock reading (monotonic, as the observation's times). What the node runs comes from its NEWEST report (an ACK,
 * a heartbeat, or a NACK's last good version), so the word, the applied version and the lag can
 * never disagree.
 *
 *  UNKNOWN   never heard from, or silent for `silenceMs` (it may still run its last state: appliers
 *            are fail-static, but we cannot prove what it runs), or the planner's view is stale
 *            (`viewStale`: what the node should run is not known here)
 *  ERROR     it does not run its target and its answer about that target is a NACK, or its ACK of
 *            the target echoes a data or node-state hash other than the planner expects
 *            (ackMismatch; a heartbeat claiming the target with other hashes too), or its newest
 *            report (heartbeat, or an ACK with `healthy: false`)
 *            says it is unhealthy (unless the complaint is a NACK for a target it no longer has),
 *            or its newest health verdict (heartbeat, else ACK: newestHealth) is `unhealthy` — a
 *            data-path probe that failed through the dataplane while the endpoint answered
 *            directly, or a state not verified: the dataplane itself is broken, whatever version
 *            it runs (C1: a flushed ruleset showed SYNCED for a resync interval) —, or two applier
 *            processes report as the node (`twin`)
 *  SYNCED    it runs exactly the target (version and config revision), and its ACK of it echoes
 *            the hashes the planner expects (those it knows); a newer heartbeat's hashes (or, with
 *            no ACK of the target heard, the heartbeat's alone) are checked the same way
 *  APPLYING  it runs something else, and the target is younger than `applyTimeoutMs`; or its ACK
 *            of the target awaits the planner's node-state check (`nodeStateChecking`: never
 *            STALE for that, the wait is the planner's)
 *  STALE     it runs something else, and has for longer than that
 */
export function nodeStatus(
  o: NodeObservation,
  nowMs: number,
  thresholds: NodeStatusThresholds = DEFAULT_NODE_STATUS_THRESHOLDS,
): NodeStatusRow {
  // A report of a version the log never made is not what the node runs (it may run anything).
  // Version 0 config 0 is no version: the applier process that sent it has verified none yet
  // (restarted, or never applied); not "runs version 0", which read as a node running nothing.
  const newest = running(o);
  const claimed = newest && (newest.version !== 0 || newest.configRevision !== 0) ? newest : undefined;
  const neverExisted =
    claimed && o.newestVersion !== undefined && claimed.version > o.newestVersion ? claimed.version : undefined;
  const runs = neverExisted === undefined ? claimed : undefined;
  const t = o.target;
  const last = o.last;
  const forTarget =
    !!t && last?.type === 'ACK' && last.version === t.version && last.configRevision === t.configRevision;
  const onTarget = !!t && runs?.version === t.version && runs.configRevision === t.configRevision;
  // A heartbeat that claims the target with the hashes of what the node runs is checked as an ACK
  // is, when no ACK of the target is heard or the heartbeat is newer: after a restored log or a
  // lost versions stream the node's version N may be other content than the log's N, and the
  // numbers alone said SYNCED (probe13 R2). Heartbeats of appliers older than the hashes carry none.
  const hb = o.heartbeat;
  const hbClaim =
    onTarget &&
    hb?.dataHash !== undefined &&
    hb.appliedVersion === t.version &&
    hb.appliedConfigRevision === t.configRevision &&
    (!forTarget || (o.heartbeatAt ?? 0) > (o.lastAt ?? 0))
      ? {
          version: hb.appliedVersion,
          configRevision: hb.appliedConfigRevision,
          dataHash: hb.dataHash,
          nodeStateHash: hb.nodeStateHash,
        }
      : undefined;
  const expected = { nodeStateHash: o.expectedNodeStateHash, dataHash: o.expectedDataHash };
  // A restarted applier before its first verified apply: what it last ACKed before (not checked).
  const before = !runs && !neverExisted ? hb?.lastAckedBeforeStart : undefined;
  // Only about the ACK of what the node still runs: a newer heartbeat saying it moved makes it moot.
  const hashMismatch = hbClaim
    ? ackMismatch(hbClaim, expected)
    : forTarget && onTarget
      ? ackMismatch(last, expected)
      : undefined;
  const mismatch = hashMismatch && hashMismatch + olderApplierNote(o, hashMismatch);
  const row = (status: NodeStatusWord, reason: string): NodeStatusRow => ({
    node: o.node,
    status,
    reason,
    targetVersion: t?.version ?? 0,
    targetConfigRevision: t?.configRevision ?? 0,
    appliedVersion: runs?.version ?? null,
    appliedConfigRevision: runs?.configRevision ?? null,
    mode: newest?.mode ?? null,
    hashMatch:
      hbClaim?.nodeStateHash !== undefined && o.expectedNodeStateHash !== undefined
        ? hbClaim.nodeStateHash === o.expectedNodeStateHash
        : forTarget && o.expectedNodeStateHash !== undefined
          ? (last as { nodeStateHash: string }).nodeStateHash === o.expectedNodeStateHash
          : null,
    // from what it last ACKed before a restart while it verifies (said so in the reason)
    lag: Math.max(0, (t?.version ?? 0) - (runs?.version ?? before?.version ?? 0)),
    lastError:
      last?.type === 'NACK'
        ? last.error
        : o.heartbeat && !o.heartbeat.healthy
          ? o.heartbeat.detail
          : last?.type === 'ACK' && last.healthy === false
            ? (last.detail ?? null)
            : (mismatch ?? null),
    lastReportAt: last?.at ?? null,
    heartbeatAt: o.heartbeat?.at ?? null,
    health: newestHealth(o) ?? null,
    warnings: o.heartbeat?.warnings ?? [],
    unknownTargetFields: o.heartbeat?.unknownTargetFields ?? null,
  });
  if (o.viewStale) return row('UNKNOWN', `planner view stale: ${o.viewStale}`);
  const lastHeard = Math.max(o.lastAt ?? -Infinity, o.heartbeatAt ?? -Infinity);
  if (lastHeard === -Infinity) return row('UNKNOWN', 'never heard from');
  if (nowMs - lastHeard > thresholds.silenceMs)
    return row('UNKNOWN', `silent for ${Math.round((nowMs - lastHeard) / 1000)} s`);
  if (!t) return row('UNKNOWN', 'no target set');
  if (o.twin) return row('ERROR', o.twin); // whose report is whose is unknown: none proves what runs
  if (neverExisted !== undefined) return row('ERROR', neverMade(neverExisted, o.newestVersion!));
  const nack = last?.type === 'NACK' ? last : undefined;
  const nackForTarget = nack && nack.version === t.version && nack.configRevision === t.configRevision;
  if (nackForTarget && !onTarget)
    return row('ERROR', `NACK for version ${nack.version} config ${nack.configRevision}: ${nack.error}`);
  if (mismatch) return row('ERROR', mismatch);
  // An ACK may say the node is unhealthy (its kernel known not to match): newest report wins,
  // as for heartbeats, so it is not SYNCED until a later report says it recovered.
  if (last?.type === 'ACK' && last.healthy === false && (o.lastAt ?? 0) >= (o.heartbeatAt ?? 0))
    return row('ERROR', `unhealthy: ${last.detail ?? 'said by its ACK'}`);
  if (hb && !hb.healthy && (o.heartbeatAt ?? 0) >= (o.lastAt ?? 0)) {
    // After a halted rollout is rolled back, the node is on its target again but still repeats the
    // NACK of the revision it was moved off: that complaint is about a target it no longer has.
    const aboutOldTarget = onTarget && nack && !nackForTarget && hb.detail === nack.error;
    if (!aboutOldTarget) return row('ERROR', `unhealthy: ${hb.detail}`);
  }
  // The probe connects from the node through the dataplane to an endpoint it just reached directly:
  // a failure there is the dataplane's, so running the target is no proof that services work.
  const verdict = newestHealth(o);
  if (verdict?.verdict === 'unhealthy') return row('ERROR', `dataplane unhealthy: ${verdict.reason}`);
  // Not SYNCED on an ACK whose node-state hash is still to be checked: SYNCED says it was checked.
  if (onTarget && forTarget && o.nodeStateChecking)
    return row('APPLYING', `acked version ${t.version} config ${t.configRevision}; checking its node-state hash`);
  if (onTarget) return row('SYNCED', `running version ${t.version} config ${t.configRevision}`);
  const targetAge = nowMs - (o.targetSetAt ?? nowMs);
  // A new applier process heard after the target was set (its first one per target: ApplyClock)
  // gets the whole apply timeout from its start: an applier rollout is not STALE (probe20 P20-6).
  const sessionAge =
    o.sessionStartAt !== undefined && o.sessionStartAt > (o.targetSetAt ?? nowMs)
      ? nowMs - o.sessionStartAt
      : undefined;
  const age = sessionAge ?? targetAge;
  const what = runs
    ? `running version ${runs.version} config ${runs.configRevision}`
    : before
      ? `restarted (last ACKed version ${before.version} config ${before.configRevision} before, not yet verified)`
      : newest
        ? 'no version verified since its applier started'
        : 'running nothing reported';
  if (age > thresholds.applyTimeoutMs) {
    const started = sessionAge === undefined ? '' : `, its applier started ${Math.round(sessionAge / 1000)} s ago`;
    return row(
      'STALE',
      `${what}, target ${t.version} config ${t.configRevision} set ${Math.round(targetAge / 1000)} s ago${started}`,
    );
  }
  return row('APPLYING', `${what}, target ${t.version} config ${t.configRevision}`);
}

/**
 * The APPLYING → STALE clock of one node's current target (probe20 P20-6). It starts when the
 * planner set the target (`targetSetAt`). A new applier process of the node, first heard after
 * that and having verified no version yet (an applier DaemonSet upgrade, a reboot, a node's first
 * applier), starts it again (`sessionStartAt`): each restarted applier fetches, applies and ACKs in
 * seconds, and an alert on STALE fired for every node during every applier rollout. Only the first
 * such start counts (`graceSpent`) until the node is seen running its target again: an applier
 * that crash-loops before applying gets one apply timeout per target and then is STALE, while one
 * that applied and restarts later (the next rollout) gets its own. Pure: NodeTracker keeps one per
 * node and steps it with the functions below.
 */
export interface ApplyClock {
  readonly targetSetAt: number;
  readonly sessionStartAt?: number;
  /** A start since the target was set (and since the node last ran it) had its apply timeout. */
  readonly graceSpent: boolean;
}

/** A clock for a target set at `atMs`. */
export function applyClock(atMs: number): ApplyClock {
  return { targetSetAt: atMs, graceSpent: false };
}

/**
 * A new applier process (one that verified no version yet) first heard at `atMs`: the clock starts
 * again there, unless a start since the target was set already had its apply timeout and the node
 * has not run the target since (a crash loop), or there is no target (no clock) yet.
 */
export function applyClockOnSessionStart(c: ApplyClock | undefined, atMs: number): ApplyClock | undefined {
  if (!c || c.graceSpent || atMs < c.targetSetAt) return c;
  return { targetSetAt: c.targetSetAt, sessionStartAt: atMs, graceSpent: true };
}

/**
 * The node was seen running its target by a report heard at `atMs`: its next applier start has an
 * apply timeout again. A report from before the start that had one (an ACK a planner taking over
 * seeds from its log) says nothing of that start's process and changes nothing.
 */
export function applyClockOnTarget(c: ApplyClock | undefined, atMs: number): ApplyClock | undefined {
  return c?.graceSpent && atMs >= (c.sessionStartAt ?? c.targetSetAt) ? { ...c, graceSpent: false } : c;
}

/**
 * The node's newest health verdict and the config revision it is about: the one a heartbeat
 * carries when the heartbeat is at least as new as the last ACK/NACK, else the last ACK's. A NACK
 * carries none (the node still runs and reports its last good state through heartbeats).
 */
export function newestHealth(
  o: Pick<NodeObservation, 'last' | 'lastAt' | 'heartbeat' | 'heartbeatAt'>,
): (HealthVerdict & { configRevision: number }) | undefined {
  const hb = o.heartbeat;
  if (hb?.health && (o.heartbeatAt ?? 0) >= (o.lastAt ?? 0))
    return { ...hb.health, configRevision: hb.appliedConfigRevision };
  if (o.last?.type === 'ACK' && o.last.health) return { ...o.last.health, configRevision: o.last.configRevision };
  return undefined;
}

/** What the node runs, from its newest report (ties go to the ACK, which says more). */
function running(o: NodeObservation): { version: number; configRevision: number; mode: string | null } | undefined {
  const last = o.last;
  const fromLast =
    last?.type === 'ACK'
      ? { version: last.version, configRevision: last.configRevision, mode: last.mode }
      : last
        ? { version: last.lastGoodVersion, configRevision: last.lastGoodConfigRevision, mode: null }
        : undefined;
  const hb = o.heartbeat;
  const fromHb = hb && { version: hb.appliedVersion, configRevision: hb.appliedConfigRevision, mode: hb.mode };
  if (fromLast && (!fromHb || (o.lastAt ?? 0) >= (o.heartbeatAt ?? 0)))
    return { ...fromLast, mode: fromLast.mode ?? fromHb?.mode ?? null };
  return fromHb ?? undefined;
}

/** Fleet summary for the top of `ctl status`. */
export function summarizeStatus(rows: readonly Pick<NodeStatusRow, 'status'>[]): Record<NodeStatusWord, number> {
  const out: Record<NodeStatusWord, number> = { SYNCED: 0, APPLYING: 0, STALE: 0, ERROR: 0, UNKNOWN: 0 };
  for (const r of rows) out[r.status] += 1;
  return out;
}

/**
 * Why a node may not be a rollout's canary (its status word and reason), or undefined when it may:
 * its applier must be live and in sync. SYNCED is; so is APPLYING while the node runs its target's
 * config revision (it is only taking a newer data version, which a busy cluster publishes every
 * few seconds, so SYNCED alone would refuse rollouts at random). UNKNOWN (no applier, silent),
 * STALE and ERROR are not: a canary that cannot answer proves nothing about the revision (W1).
 */
export function canaryBlocker(
  row: Pick<NodeStatusRow, 'status' | 'reason' | 'appliedConfigRevision' | 'targetConfigRevision'>,
): string | undefined {
  if (row.status === 'SYNCED') return undefined;
  if (row.status === 'APPLYING' && row.appliedConfigRevision === row.targetConfigRevision) return undefined;
  return `${row.status} (${row.reason})`;
}

/** Why a node without a Node object may not be a canary (probe20 P20-4). */
export const NO_NODE_OBJECT_CANARY =
  'no Node object of this name in the cluster (its applier renders no NodePorts: it would prove less than the fleet runs)';

/**
 * The nodes of `rows` that may not be a canary, with why (planWaves' `notCanary`). `hasNode`: whether
 * the cluster has a Node of that name; an applier reporting as a name it does not have (a typo in
 * `--node`, the stale pod of a renamed node) is SYNCED on what it renders, but renders no NodePorts
 * and no externalTrafficPolicy Local paths, and came first in name order (probe20 P20-4).
 */
export function notCanaryNodes(
  rows: readonly Pick<NodeStatusRow, 'node' | 'status' | 'reason' | 'appliedConfigRevision' | 'targetConfigRevision'>[],
  hasNode: (node: string) => boolean = () => true,
): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of rows) {
    const why = canaryBlocker(r) ?? (hasNode(r.node) ? undefined : NO_NODE_OBJECT_CANARY);
    if (why !== undefined) out.set(r.node, why);
  }
  return out;
}
