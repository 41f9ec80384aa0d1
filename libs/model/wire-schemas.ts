import { z } from 'zod';
import type { NodeFacts, ServiceEntry } from './cluster-data.ts';
import { readProxyConfig } from './proxy-config.ts';

/**
 * Schemas of everything that crosses the bus, in one place (zod). Readers parse with these and
 * never trust a cast; the protocol's TS types (version-protocol.ts) are derived from them, so a
 * field added here is added everywhere. Entry contents of versions are not re-checked field by
 * field: the content hash, verified before anything reaches a dataplane, protects them.
 */

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const positive = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a sha-256 hex digest');

export const NodeTargetSchema = z.object({ version: positive, configRevision: count });

/**
 * A target as the planner writes it to the KV bucket and in notices: signed, and ordered by
 * `issued` (strictly increasing per planner), never by the KV revision, which restarts at 1 when
 * NATS loses its store and which anyone can forge in a notice. `cleared` removes a node override.
 */
export const SignedTargetSchema = z.union([
  z.object({ version: positive, configRevision: count, issued: positive, sig: z.string() }).strict(),
  z.object({ cleared: z.literal(true), issued: positive, sig: z.string() }).strict(),
]);

/**
 * The version's delta message exactly as the versions stream stored it (headers and the UTF-8
 * payload, signature included), riding on a target notice so a node gets the target and its
 * data in one inbound message. The planner attaches it only after the stream acknowledged the
 * delta, so a node never holds content the stream does not; the node verifies it like a
 * fetched one. Optional: notices without it (older planners, oversized deltas) still parse.
 */
export const NoticeDeltaSchema = z.object({ headers: z.record(z.string(), z.string()), payload: z.string() });

/**
 * The core-NATS notice sent after each KV write (fast path); `revision` is informational only.
 * `sig`: with `delta`, the planner's one signature over the target and the delta together
 * (libs/bus/planner-signature.ts, "notice"), so a node verifies one signature per event; both
 * parts keep their own signatures. Optional: older planners send none, older appliers drop it.
 */
export const TargetNoticeSchema = z.object({
  revision: count,
  target: SignedTargetSchema,
  delta: NoticeDeltaSchema.optional(),
  /**
   * The version's delta with its large service entries told as patches (PatchedDeltaSchema):
   * headers version, parent, hash (and anchor) as the stored delta's, the payload a patched
   * delta. Sent instead of `delta` when the planner made patches; `sig` then covers target and
   * patch (planner-signature.ts, "notice patch"). Older appliers drop it and fetch the delta.
   */
  patch: NoticeDeltaSchema.optional(),
  sig: z.string().optional(),
});

/*
 * Bounds on what a node reports (review3 N2). A node may say anything as itself, as often as it
 * likes; every string it sends is kept in status, served in every /status and console snapshot,
 * and (ACK/NACK) written to the hash-chained log and the group's replicated log. Identity-like
 * fields are refused over their bound (an applier never sends more); free text (an error, a
 * detail, a reason) is cut to its bound with the cut marked, so an honest node's long error still
 * lands and says it was cut. The collector refuses whole messages over MAX_REPORT_BYTES before
 * parsing them (libs/bus/ack-collector.ts).
 */

/** Longest ACK, NACK or heartbeat message the planner parses, in bytes (an honest one is a few KiB). */
export const MAX_REPORT_BYTES = 64 * 1024;
/** Longest NACK error kept (longer ones are cut, see reportText). */
export const MAX_REPORT_ERROR = 2000;
/** Longest heartbeat/ACK detail and verdict reason kept. */
export const MAX_REPORT_DETAIL = 1000;
/** Most warnings one heartbeat carries, and the longest one (HeartbeatSchema.warnings). */
export const MAX_NODE_WARNINGS = 8;
export const MAX_NODE_WARNING = 1000;

/**
 * `s` cut to at most `max` characters, the cut marked with how much was left out; shorter text
 * unchanged. Never splits a surrogate pair. Exported so a sender can cut before sending.
 */
export function truncateReportText(s: string, max: number): string {
  if (s.length <= max) return s;
  const mark = (left: number) => `… [${left} more characters]`;
  let keep = Math.max(0, max - mark(s.length).length);
  const last = s.charCodeAt(keep - 1);
  if (last >= 0xd800 && last <= 0xdbff) keep--; // a high surrogate: keep the pair whole or not at all
  return s.slice(0, keep) + mark(s.length - keep);
}

/** Free text from a node: cut to `max` characters (marked), never refused for its length. */
const reportText = (max: number) => z.string().overwrite((s) => truncateReportText(s, max));
/** A Kubernetes node name is at most 253 characters (DNS subdomain). */
const nodeName = z.string().max(253);
/** A node's time stamp (ISO-8601, 24 characters; a little room for other precisions). */
const reportTime = z.string().max(40);
/** A hash the node echoes (sha-256 hex is 64; room for another digest, never for a payload). */
const reportHash = z.string().max(128);
/** A dataplane mode name (ipvs, nftables, dry-run, ...). */
const modeName = z.string().max(32);

export const AckTimingsSchema = z.object({
  fetchMs: z.number(),
  renderMs: z.number(),
  applyMs: z.number(),
  probeMs: z.number().optional(),
});

/** One probe connection that failed: the virtual server (`tcp/10.96.0.1:80`) and why. */
export const ProbeFailureSchema = z.object({ target: reportText(200), error: reportText(500) });

/**
 * What one data-path probe round found: connections opened from the node's own network namespace
 * through its dataplane to a sample of the virtual servers it programmed. `unreachable` counts
 * sampled virtual servers skipped because their endpoint did not answer a direct connection (not
 * the dataplane's fault, so neither a success nor a failure).
 */
export const ProbeReportSchema = z.object({
  attempted: count,
  succeeded: count,
  failed: count,
  unreachable: count,
  /** Connect latency through the dataplane over the successes (null: none succeeded). */
  latencyMs: z.object({ p50: z.number().nonnegative(), max: z.number().nonnegative() }).nullable(),
  /** The first few failures (at most 8), for status and audit. */
  failures: z.array(ProbeFailureSchema).max(8),
  at: reportTime,
});

/**
 * A node's health verdict, sent with its ACK and in its heartbeats (optional on the wire: appliers
 * from before it send none, and planners from before it drop the field). `healthy` needs both the
 * programmed state read back equal to the desired hash and a data-path probe that passed;
 * `unprobed` says no probe was possible (dry-run, no virtual server with a reachable endpoint):
 * such a node is never counted healthy by probe. `injected` marks a verdict from the test-only
 * hook (applier --test-verdict-file), never set in production.
 */
export const HealthVerdictSchema = z.object({
  verdict: z.enum(['healthy', 'unhealthy', 'unprobed']),
  stateVerified: z.boolean(),
  reason: reportText(MAX_REPORT_DETAIL),
  probe: ProbeReportSchema.nullable(),
  injected: z.boolean().optional(),
  at: reportTime,
});

export const AckSchema = z.object({
  type: z.literal('ACK'),
  node: nodeName,
  version: count,
  configRevision: count,
  dataHash: reportHash,
  /** Hash of the node state programmed (contentHash of NodeState). */
  nodeStateHash: reportHash,
  /** The mode actually running; differs from the config when `--mode auto` fell back. */
  mode: modeName,
  kernelWrites: count,
  timings: AckTimingsSchema,
  /** The node's verdict on what it just programmed (absent from appliers older than the verdict). */
  health: HealthVerdictSchema.optional(),
  /**
   * false: the node knows its kernel does not hold what it ACKs (a periodic resync failed and was
   * not repaired since), `detail` says why, as a heartbeat would. Absent from appliers older than
   * the field (and planners older than it drop it): such an ACK says nothing about health.
   */
  healthy: z.boolean().optional(),
  detail: reportText(MAX_REPORT_DETAIL).optional(),
  /**
   * Random per applier process start: two processes reporting as one node (a cloned host, a second
   * applier with the same --node) show as two ids. Absent from appliers older than the field.
   */
  instance: z.string().max(64).optional(),
  at: reportTime,
});

export const NackSchema = z.object({
  type: z.literal('NACK'),
  node: nodeName,
  version: count,
  configRevision: count,
  error: reportText(MAX_REPORT_ERROR),
  lastGoodVersion: count,
  lastGoodConfigRevision: count,
  /**
   * Random per applier process start: two processes reporting as one node (a cloned host, a second
   * applier with the same --node) show as two ids. Absent from appliers older than the field.
   */
  instance: z.string().max(64).optional(),
  at: reportTime,
});

export const AckOrNackSchema = z.discriminatedUnion('type', [AckSchema, NackSchema]);

/** Most target field paths a node names as not known to it, and the longest one (UnknownTargetFieldsSchema). */
export const MAX_UNKNOWN_FIELD_PATHS = 10;
export const MAX_UNKNOWN_FIELD_PATH = 300;

/**
 * The fields of a version's entries that this applier's release does not know (probe15 U7): an
 * applier applies and ACKs what it knows and ignores the rest, which a newer planner's target may
 * need (a Node's `beingRemoved`, an endpoint's `hintNodes`). `paths`: distinct key paths
 * (`nodes[].beingRemoved`), at most MAX_UNKNOWN_FIELD_PATHS; `otherKeys`: how many unknown keys
 * were seen at paths not named (each occurrence counted: a count, never a list). See
 * libs/model/unknown-fields.ts.
 */
export const UnknownTargetFieldsSchema = z.object({
  paths: z.array(z.string().max(MAX_UNKNOWN_FIELD_PATH)).max(MAX_UNKNOWN_FIELD_PATHS),
  otherKeys: count,
});
export type UnknownTargetFields = z.infer<typeof UnknownTargetFieldsSchema>;

export const HeartbeatSchema = z.object({
  node: nodeName,
  appliedVersion: count,
  appliedConfigRevision: count,
  /**
   * The hashes of what the node runs (its last ACK's), so that a claim of version N is checked
   * against the log's N as an ACK is: after a restore or a lost versions stream, the planner's N
   * may be other content than the node's N, and numbers alone said SYNCED (probe13 R2). Absent
   * from appliers older than the field, and before the node applied anything.
   */
  dataHash: reportHash.optional(),
  nodeStateHash: reportHash.optional(),
  /**
   * Sent while this applier process has verified no apply yet (appliedVersion and
   * appliedConfigRevision are then 0: not "runs version 0", which no version is): what the node
   * last ACKed before this process started, from its --state-dir, not checked against the kernel
   * yet (it may still run it, appliers being fail-static, or have lost it, a reboot). Absent once
   * an apply verified, without a state file, and from appliers older than the field.
   */
  lastAckedBeforeStart: z.object({ version: count, configRevision: count }).optional(),
  mode: modeName,
  healthy: z.boolean(),
  detail: reportText(MAX_REPORT_DETAIL),
  /** The latest verdict (re-probed periodically), absent from appliers older than the verdict. */
  health: HealthVerdictSchema.optional(),
  /**
   * Random per applier process start: two processes reporting as one node (a cloned host, a second
   * applier with the same --node) show as two ids. Absent from appliers older than the field.
   */
  instance: z.string().max(64).optional(),
  /**
   * What the node wants an operator to know that is no failure (services/applier/node-warnings.ts:
   * its change-notification listener down, a forward drop policy): shown under `ctl status` and in
   * the console. Absent from appliers older than the field (and when there is nothing to say).
   * Bounded, and refused over its bounds rather than cut: the applier cuts each entry before it
   * sends (truncateReportText), so only a broken or hostile sender exceeds them.
   */
  warnings: z.array(z.string().max(MAX_NODE_WARNING)).max(MAX_NODE_WARNINGS).optional(),
  /**
   * Fields of the targets this applier process was sent that its release does not know (it applies
   * them without): `ctl status` names them in a WARNING. Absent when there were none, and from
   * appliers older than the field (which cannot say); planners older than it drop it.
   */
  unknownTargetFields: UnknownTargetFieldsSchema.optional(),
  at: reportTime,
});

/*
 * The fields of a version's entries, as this release knows them (cluster-data.ts). Entries are not
 * parsed with these (see the note at the top: the content hash protects them, and the readers keep
 * them whole); they say which keys this release reads, so that an applier notes the keys a newer
 * planner sends that it does not (libs/model/unknown-fields.ts). The types below keep them equal,
 * key for key, to the interfaces: a field added to an entry and not here does not compile.
 */
export const EndpointEntrySchema = z.object({
  ip: z.string(),
  port: z.number(),
  nodeName: z.string(),
  zone: z.string(),
  ready: z.boolean(),
  serving: z.boolean(),
  terminating: z.boolean(),
  hintZones: z.array(z.string()),
  hintNodes: z.array(z.string()).optional(),
});
export const ServicePortEntrySchema = z.object({
  name: z.string(),
  protocol: z.string(),
  port: z.number(),
  nodePort: z.number(),
  endpoints: z.array(EndpointEntrySchema),
});
export const ServiceEntrySchema = z.object({
  key: z.string(),
  clusterIPs: z.array(z.string()),
  externalIPs: z.array(z.string()),
  loadBalancerIngress: z.array(z.string()),
  loadBalancerSourceRanges: z.array(z.string()),
  affinityTimeoutSeconds: z.number(),
  externalTrafficPolicy: z.string(),
  internalTrafficPolicy: z.string(),
  healthCheckNodePort: z.number(),
  topologyAware: z.boolean(),
  nodePorts: z.boolean(),
  ports: z.array(ServicePortEntrySchema),
});
export const NodeFactsSchema = z.object({
  name: z.string(),
  addresses: z.array(z.string()),
  zone: z.string(),
  beingRemoved: z.string().optional(),
});

/** A type's field names, nested, every one required and every value a leaf or nested fields. */
type FieldNames<T> = T extends readonly (infer E)[]
  ? FieldNames<E>
  : T extends object
    ? { -readonly [K in keyof T]-?: FieldNames<NonNullable<T[K]>> }
    : null;
type SameFields<A, B> = [FieldNames<A>] extends [FieldNames<B>]
  ? [FieldNames<B>] extends [FieldNames<A>]
    ? true
    : false
  : false;
/** Compiles only while the entry schemas name exactly the interfaces' fields (cluster-data.ts). */
export type EntrySchemasMatchTypes = [
  SameFields<ServiceEntry, z.output<typeof ServiceEntrySchema>>,
  SameFields<NodeFacts, z.output<typeof NodeFactsSchema>>,
];
const entrySchemasMatchTypes: EntrySchemasMatchTypes = [true, true];
void entrySchemasMatchTypes;

/** One entry of a version's arrays: an object with its identity (see the note at the top). */
export const ServiceEntryShapeSchema = z.looseObject({ key: z.string() });
export const NodeFactsShapeSchema = z.looseObject({ name: z.string() });
const keyed = (id: string) => z.array(id === 'key' ? ServiceEntryShapeSchema : NodeFactsShapeSchema);

export const DataDeltaSchema = z.object({
  upsertServices: keyed('key'),
  removeServices: z.array(z.string()),
  upsertNodes: keyed('name'),
  removeNodes: z.array(z.string()),
});

const artifactHeader = { version: positive, parent: count, hash: sha256Hex, reason: z.string(), createdAt: z.string() };

/** See EntryHashes (libs/model/cluster-data.ts); their count is checked against the entries on decode. */
export const EntryHashesSchema = z.object({ services: z.array(sha256Hex), nodes: z.array(sha256Hex) });

const portNumber = z.number().int().min(0).max(65535);

/**
 * A service entry as a change from the one before it (libs/model/service-patch.ts). Endpoints are
 * looseObjects like entries (the hash protects their content); the shape applyServicePatch walks
 * is checked here.
 */
export const ServicePatchSchema = z.object({
  key: z.string(),
  base: sha256Hex,
  hash: sha256Hex,
  head: z.looseObject({
    key: z.string(),
    ports: z.array(z.looseObject({ endpoints: z.array(z.never()).max(0) })),
  }),
  ports: z.array(
    z.object({
      from: z.number().int().min(-1),
      remove: z.array(z.tuple([z.string(), portNumber])),
      upsert: z.array(z.looseObject({ ip: z.string(), port: portNumber })),
    }),
  ),
});

/**
 * A delta whose large service entries are patches (`servicePatches`, none of them also in
 * `delta.upsertServices`): what a target notice's `patch` carries. No entry hashes: the node
 * hashes what it rebuilds.
 */
export const PatchedDeltaSchema = z.object({
  ...artifactHeader,
  form: z.literal('delta'),
  delta: DataDeltaSchema,
  servicePatches: z.array(ServicePatchSchema).min(1),
});

/** A version artifact's envelope and array structure (see the note at the top on entries). */
export const VersionArtifactSchema = z.discriminatedUnion('form', [
  z.object({
    ...artifactHeader,
    form: z.literal('delta'),
    delta: DataDeltaSchema,
    entryHashes: EntryHashesSchema.optional(),
  }),
  z.object({
    ...artifactHeader,
    form: z.literal('checkpoint'),
    data: z.object({ services: keyed('key'), nodes: keyed('name') }),
  }),
]);

/**
 * A checkpoint's envelope: the artifact with its two arrays checked apart, entry by entry
 * (ServiceEntryShapeSchema, NodeFactsShapeSchema), as a streamed checkpoint is read
 * (libs/bus/artifact-codec.ts, CheckpointDecoder): there the whole artifact is never one value.
 * Same fields as VersionArtifactSchema's checkpoint form.
 */
export const CheckpointEnvelopeSchema = z.object({
  ...artifactHeader,
  form: z.literal('checkpoint'),
  data: z.object({ services: z.array(z.unknown()), nodes: z.array(z.unknown()) }),
});

/** A published config revision; `config` is checked by readProxyConfig (unknown fields refused). */
export const ConfigRevisionSchema = z.object({
  revision: count,
  config: z.unknown().transform((c, ctx) => {
    try {
      return readProxyConfig(c);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  }),
  hash: sha256Hex,
  reason: z.string(),
  createdAt: z.string(),
  /** The planner's signature over (revision, hash); see libs/bus/planner-signature.ts. */
  sig: z.string().optional(),
});

export type SignedTarget = z.infer<typeof SignedTargetSchema>;
export type TargetNotice = z.infer<typeof TargetNoticeSchema>;
export type NoticeDelta = z.infer<typeof NoticeDeltaSchema>;
export type PatchedDelta = z.infer<typeof PatchedDeltaSchema>;

/*
 * Hand-written checks for the two messages every node parses on every event: the default target's
 * notice and the delta it carries (also every fetched delta), and for the one the planner parses
 * from every node on every event: its ACK. Each returns true only for a value
 * its schema accepts AND whose schema output equals the value itself (every key known, so none
 * stripped; no own `__proto__`, which zod drops), so checkWire can hand back the parsed JSON as
 * it is instead of zod's copy of the notice, the delta and each entry. False means "not shown
 * here", never "invalid": zod then decides, and writes the error. So what checkWire accepts and
 * the value it returns are zod's by construction, provided a check never says true where zod
 * would refuse or change the value: test/libs/model/wire-schemas.test.ts checks exactly that
 * (property and mutations against the schemas), and that real notices take this path.
 */

/** A plain object (as JSON.parse makes) whose own keys are exactly `required` plus any of `optional`. */
function exactObject(
  v: unknown,
  required: readonly string[],
  optional: readonly string[] = [],
): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) return false;
  let expected = required.length;
  for (const k of required) if (!Object.hasOwn(v, k)) return false;
  for (const k of optional) if (Object.hasOwn(v, k)) expected++;
  let n = 0;
  for (const _ in v) n++;
  return n === expected; // an own __proto__ or any unknown key makes one too many
}

const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
const isPositive = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const isSha256Hex = (v: unknown) => typeof v === 'string' && SHA256_HEX.test(v);

function isStringArray(v: unknown, each: (x: unknown) => boolean = (x) => typeof x === 'string'): boolean {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (!each(v[i])) return false;
  return true;
}

/** Entries of a version (looseObject with a string identity): kept whole, as zod keeps them. */
function isEntryArray(v: unknown, id: 'key' | 'name'): boolean {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) {
    const e: unknown = v[i];
    if (typeof e !== 'object' || e === null || Object.getPrototypeOf(e) !== Object.prototype) return false;
    if (typeof (e as Record<string, unknown>)[id] !== 'string' || Object.hasOwn(e, '__proto__')) return false;
  }
  return true;
}

function isSignedTarget(v: unknown): boolean {
  if (exactObject(v, ['version', 'configRevision', 'issued', 'sig']))
    return isPositive(v.version) && isCount(v.configRevision) && isPositive(v.issued) && typeof v.sig === 'string';
  return (
    exactObject(v, ['cleared', 'issued', 'sig']) &&
    v.cleared === true &&
    isPositive(v.issued) &&
    typeof v.sig === 'string'
  );
}

function isNoticeDelta(v: unknown): boolean {
  if (!exactObject(v, ['headers', 'payload']) || typeof v.payload !== 'string') return false;
  const h = v.headers;
  if (typeof h !== 'object' || h === null || Object.getPrototypeOf(h) !== Object.prototype) return false;
  for (const k in h) if (k === '__proto__' || typeof (h as Record<string, unknown>)[k] !== 'string') return false;
  return true;
}

function isTargetNotice(v: unknown): boolean {
  return (
    exactObject(v, ['revision', 'target'], ['delta', 'patch', 'sig']) &&
    isCount(v.revision) &&
    isSignedTarget(v.target) &&
    (!Object.hasOwn(v, 'delta') || isNoticeDelta(v.delta)) &&
    (!Object.hasOwn(v, 'patch') || isNoticeDelta(v.patch)) &&
    (!Object.hasOwn(v, 'sig') || typeof v.sig === 'string')
  );
}

/** The delta form only: checkpoints are read entry by entry (CheckpointDecoder) and left to zod. */
function isDeltaArtifact(v: unknown): boolean {
  if (!exactObject(v, ['version', 'parent', 'hash', 'reason', 'createdAt', 'form', 'delta'], ['entryHashes']))
    return false;
  if (v.form !== 'delta' || !isPositive(v.version) || !isCount(v.parent) || !isSha256Hex(v.hash)) return false;
  if (typeof v.reason !== 'string' || typeof v.createdAt !== 'string') return false;
  const d = v.delta;
  if (!exactObject(d, ['upsertServices', 'removeServices', 'upsertNodes', 'removeNodes'])) return false;
  if (!isEntryArray(d.upsertServices, 'key') || !isEntryArray(d.upsertNodes, 'name')) return false;
  if (!isStringArray(d.removeServices) || !isStringArray(d.removeNodes)) return false;
  if (!Object.hasOwn(v, 'entryHashes')) return true;
  const h = v.entryHashes;
  return (
    exactObject(h, ['services', 'nodes']) &&
    isStringArray(h.services, isSha256Hex) &&
    isStringArray(h.nodes, isSha256Hex)
  );
}

/** A string zod keeps as it is: within `max` (free text over it would be cut, an identity refused). */
const isTextWithin = (v: unknown, max: number) => typeof v === 'string' && v.length <= max;
const isNonNegative = (v: unknown) => Number.isFinite(v) && (v as number) >= 0;
const isBoolean = (v: unknown) => typeof v === 'boolean';
const VERDICTS: ReadonlySet<unknown> = new Set(HealthVerdictSchema.shape.verdict.options);

function isProbeReport(v: unknown): boolean {
  if (!exactObject(v, ['attempted', 'succeeded', 'failed', 'unreachable', 'latencyMs', 'failures', 'at'])) return false;
  if (!isCount(v.attempted) || !isCount(v.succeeded) || !isCount(v.failed) || !isCount(v.unreachable)) return false;
  const l = v.latencyMs;
  if (l !== null && !(exactObject(l, ['p50', 'max']) && isNonNegative(l.p50) && isNonNegative(l.max))) return false;
  const f = v.failures;
  if (!Array.isArray(f) || f.length > 8) return false;
  for (const x of f)
    if (!(exactObject(x, ['target', 'error']) && isTextWithin(x.target, 200) && isTextWithin(x.error, 500)))
      return false;
  return isTextWithin(v.at, 40);
}

function isHealthVerdict(v: unknown): boolean {
  return (
    exactObject(v, ['verdict', 'stateVerified', 'reason', 'probe', 'at'], ['injected']) &&
    VERDICTS.has(v.verdict) &&
    isBoolean(v.stateVerified) &&
    isTextWithin(v.reason, MAX_REPORT_DETAIL) &&
    (v.probe === null || isProbeReport(v.probe)) &&
    (!Object.hasOwn(v, 'injected') || isBoolean(v.injected)) &&
    isTextWithin(v.at, 40)
  );
}

/**
 * An ACK, which the planner parses from every node on every event (at 5,000 nodes, 5,000 per
 * event on its one thread). NACKs, rarer, are left to zod.
 */
const ACK_KEYS = ['type', 'node', 'version', 'configRevision', 'dataHash', 'nodeStateHash', 'mode', 'kernelWrites'];
const ACK_REQUIRED = [...ACK_KEYS, 'timings', 'at'];
const ACK_OPTIONAL = ['health', 'healthy', 'detail', 'instance'];

function isAck(v: unknown): boolean {
  if (!exactObject(v, ACK_REQUIRED, ACK_OPTIONAL)) return false;
  if (v.type !== 'ACK' || !isTextWithin(v.node, 253) || !isCount(v.version) || !isCount(v.configRevision)) return false;
  if (!isTextWithin(v.dataHash, 128) || !isTextWithin(v.nodeStateHash, 128) || !isTextWithin(v.mode, 32)) return false;
  if (!isCount(v.kernelWrites) || !isTextWithin(v.at, 40)) return false;
  const t = v.timings;
  if (!exactObject(t, ['fetchMs', 'renderMs', 'applyMs'], ['probeMs'])) return false;
  if (!Number.isFinite(t.fetchMs) || !Number.isFinite(t.renderMs) || !Number.isFinite(t.applyMs)) return false;
  if (Object.hasOwn(t, 'probeMs') && !Number.isFinite(t.probeMs)) return false;
  return (
    (!Object.hasOwn(v, 'health') || isHealthVerdict(v.health)) &&
    (!Object.hasOwn(v, 'healthy') || isBoolean(v.healthy)) &&
    (!Object.hasOwn(v, 'detail') || isTextWithin(v.detail, MAX_REPORT_DETAIL)) &&
    (!Object.hasOwn(v, 'instance') || isTextWithin(v.instance, 64))
  );
}

const shownAsIs = new Map<z.ZodType, (v: unknown) => boolean>([
  [TargetNoticeSchema, isTargetNotice],
  [VersionArtifactSchema, isDeltaArtifact],
  [AckOrNackSchema, isAck],
  [AckSchema, isAck],
]);

/** Stateless (fatal, not streaming): one for all calls instead of one per message. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses JSON bytes (or text) against a schema; one line naming the first problem on failure. */
export function parseWire<S extends z.ZodType>(
  schema: S,
  input: Uint8Array | string,
  what: string,
): { value: z.infer<S> } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(typeof input === 'string' ? input : utf8.decode(input));
  } catch {
    return { error: `${what}: not JSON` };
  }
  return checkWire(schema, v, what);
}

/**
 * Like parseWire for an already-decoded value. The value returned is zod's output; for a target
 * notice, a delta artifact or an ACK that passes the hand-written check above it is `v` itself
 * (equal to zod's output, without the copy).
 */
export function checkWire<S extends z.ZodType>(
  schema: S,
  v: unknown,
  what: string,
): { value: z.infer<S> } | { error: string } {
  if (shownAsIs.get(schema)?.(v)) return { value: v as z.infer<S> };
  const r = schema.safeParse(v);
  if (r.success) return { value: r.data };
  const i = r.error.issues[0]!;
  return { error: `${what}: ${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}` };
}
