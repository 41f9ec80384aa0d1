import { z } from 'zod';
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
  sig: z.string().optional(),
});

export const AckTimingsSchema = z.object({
  fetchMs: z.number(),
  renderMs: z.number(),
  applyMs: z.number(),
  probeMs: z.number().optional(),
});

/** One probe connection that failed: the virtual server (`tcp/10.96.0.1:80`) and why. */
export const ProbeFailureSchema = z.object({ target: z.string().max(200), error: z.string().max(500) });

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
  at: z.string(),
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
  reason: z.string().max(1000),
  probe: ProbeReportSchema.nullable(),
  injected: z.boolean().optional(),
  at: z.string(),
});

export const AckSchema = z.object({
  type: z.literal('ACK'),
  node: z.string(),
  version: count,
  configRevision: count,
  dataHash: z.string(),
  /** Hash of the node state programmed (contentHash of NodeState). */
  nodeStateHash: z.string(),
  /** The mode actually running; differs from the config when `--mode auto` fell back. */
  mode: z.string(),
  kernelWrites: count,
  timings: AckTimingsSchema,
  /** The node's verdict on what it just programmed (absent from appliers older than the verdict). */
  health: HealthVerdictSchema.optional(),
  at: z.string(),
});

export const NackSchema = z.object({
  type: z.literal('NACK'),
  node: z.string(),
  version: count,
  configRevision: count,
  error: z.string(),
  lastGoodVersion: count,
  lastGoodConfigRevision: count,
  at: z.string(),
});

export const AckOrNackSchema = z.discriminatedUnion('type', [AckSchema, NackSchema]);

export const HeartbeatSchema = z.object({
  node: z.string(),
  appliedVersion: count,
  appliedConfigRevision: count,
  mode: z.string(),
  healthy: z.boolean(),
  detail: z.string(),
  /** The latest verdict (re-probed periodically), absent from appliers older than the verdict. */
  health: HealthVerdictSchema.optional(),
  at: z.string(),
});

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

/** Parses JSON bytes (or text) against a schema; one line naming the first problem on failure. */
export function parseWire<S extends z.ZodType>(
  schema: S,
  input: Uint8Array | string,
  what: string,
): { value: z.infer<S> } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input));
  } catch {
    return { error: `${what}: not JSON` };
  }
  return checkWire(schema, v, what);
}

/** Like parseWire for an already-decoded value. */
export function checkWire<S extends z.ZodType>(
  schema: S,
  v: unknown,
  what: string,
): { value: z.infer<S> } | { error: string } {
  const r = schema.safeParse(v);
  if (r.success) return { value: r.data };
  const i = r.error.issues[0]!;
  return { error: `${what}: ${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}` };
}
