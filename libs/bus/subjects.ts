/**
 * Names on the bus, in one place so that publisher, applier, collector and the generated server
 * permissions can never disagree.
 *
 *   stream SB_VERSIONS   sb.v.delta.<n>                 one delta per version (published last)
 *                        sb.v.dpart.<n>.<part>          a delta too large for one message, in parts
 *                                                       (before its delta, which then has no payload)
 *                        sb.v.checkpoint.<n>.<chunk>    full data every K versions, chunked
 *   KV sb_targets        default | node.<token> -> NodeTarget;  config.<rev> -> ConfigRevision
 *   core NATS            sb.ack.<token> (ACK/NACK), sb.hb.<token> (heartbeats)
 *   inboxes              _INBOX_<token>.>  (per node, so one node cannot read another's replies)
 */
export const VERSIONS_STREAM = 'SB_VERSIONS';
export const VERSIONS_SUBJECTS = 'sb.v.>';
export const TARGETS_BUCKET = 'sb_targets';
export const TARGETS_STREAM = `KV_${TARGETS_BUCKET}`;
export const DEFAULT_TARGET_KEY = 'default';
/**
 * A new leader's claim on the versions stream: one message per election, carrying its term,
 * appended conditionally on the stream's last sequence. Any write a deposed leader still has in
 * flight expects an older last sequence and fails (version-publisher.ts).
 */
export const TERM_SUBJECT = 'sb.v.term';

export function deltaSubject(version: number): string {
  return `sb.v.delta.${version}`;
}

export function checkpointSubject(version: number, chunk: number): string {
  return `sb.v.checkpoint.${version}.${chunk}`;
}

/**
 * Part `part` of version `version`'s delta when it is too large for one message (a change to a
 * service of thousands of endpoints): the parts are stored before the delta message, which names
 * how many there are (H.deltaParts) and carries no payload.
 */
export function deltaPartSubject(version: number, part: number): string {
  return `sb.v.dpart.${version}.${part}`;
}

/** Every part subject of version `version`'s delta (a filter). */
export function deltaPartSubjects(version: number): string {
  return `sb.v.dpart.${version}.*`;
}

/** Every version's delta parts (a filter). */
export const DELTA_PART_SUBJECTS = 'sb.v.dpart.*.*';

/** Every version's delta subject (a filter: stream info listing which versions the stream holds). */
export const DELTA_SUBJECTS = 'sb.v.delta.*';

/** Every chunk subject of version `version`'s checkpoint (a filter). */
export function checkpointChunkSubjects(version: number): string {
  return `sb.v.checkpoint.${version}.*`;
}

/**
 * Parses sb.v.delta.<n> / sb.v.checkpoint.<n>.<i> / sb.v.dpart.<n>.<i> (form 'part', its part in
 * `chunk`); undefined for anything else.
 */
export function parseVersionSubject(
  subject: string,
): { form: 'delta' | 'checkpoint' | 'part'; version: number; chunk: number } | undefined {
  const p = subject.split('.');
  if (p[0] !== 'sb' || p[1] !== 'v') return undefined;
  const version = Number(p[3]);
  if (!Number.isSafeInteger(version) || version < 1) return undefined;
  if (p[2] === 'delta' && p.length === 4) return { form: 'delta', version, chunk: 0 };
  const chunk = Number(p[4]);
  if (p[2] === 'checkpoint' && p.length === 5 && Number.isSafeInteger(chunk) && chunk >= 0)
    return { form: 'checkpoint', version, chunk };
  if (p[2] === 'dpart' && p.length === 5 && Number.isSafeInteger(chunk) && chunk >= 0)
    return { form: 'part', version, chunk };
  return undefined;
}

/**
 * A node name as one subject token. Kubernetes node names are DNS subdomains (lowercase
 * alphanumerics, '-' and '.'); dots would split the name into several tokens, so that a
 * permission for node "a" with a trailing wildcard would also cover node "a.b". Dots become '_',
 * which Kubernetes names never contain, so the mapping stays one-to-one.
 */
export function nodeToken(node: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(node)) {
    throw new Error(`invalid node name ${JSON.stringify(node)} (DNS subdomain expected)`);
  }
  return node.replaceAll('.', '_');
}

/** The node an sb.ack.<token> / sb.hb.<token> subject names (nodeToken reversed; unchecked). */
export function nodeOfReportSubject(subject: string): string {
  return subject.split('.').slice(2).join('.').replaceAll('_', '.');
}

export function nodeTargetKey(node: string): string {
  return `node.${nodeToken(node)}`;
}

export function configKey(revision: number): string {
  return `config.${revision}`;
}

export function kvSubject(key: string): string {
  return `$KV.${TARGETS_BUCKET}.${key}`;
}

export function ackSubject(node: string): string {
  return `sb.ack.${nodeToken(node)}`;
}

export function heartbeatSubject(node: string): string {
  return `sb.hb.${nodeToken(node)}`;
}

/**
 * Core-NATS view of the stream's delta subjects. Appliers of earlier releases followed it;
 * current ones take each delta from the default target notice, because a core subscriber here
 * also receives publishes the stream refused. Still allowed in node permissions for them.
 */
export const DELTA_WILDCARD = 'sb.v.delta.*';
/** Live target notices (core NATS) mirroring every KV target write: sb.target.<kv key>. */
export function targetNoticeSubject(key: string): string {
  return `sb.target.${key}`;
}
export const ACK_WILDCARD = 'sb.ack.*';
export const HEARTBEAT_WILDCARD = 'sb.hb.*';

export function nodeInboxPrefix(node: string): string {
  return `_INBOX_${nodeToken(node)}`;
}

/** Message headers carried by version artifacts. */
export const H = {
  version: 'Sb-Version',
  form: 'Sb-Form',
  hash: 'Sb-Hash',
  /** On deltas: the newest complete checkpoint at or before this version (0 = none). */
  checkpoint: 'Sb-Checkpoint',
  chunk: 'Sb-Chunk',
  chunks: 'Sb-Chunks',
  /** On a delta too large for one message: no payload; the version's checkpoint has the content. */
  checkpointOnly: 'Sb-Checkpoint-Only',
  /**
   * On a delta too large for one message but not for a few: no payload; its content is the
   * payloads of parts 0..N-1 (deltaPartSubject) joined, each of which carries Sb-Chunk / Sb-Chunks.
   */
  deltaParts: 'Sb-Delta-Parts',
  parent: 'Sb-Parent',
  /** The event log's chain anchor for this version (`db verify --nats` checks the log against it). */
  anchor: 'Sb-Anchor',
  /** The planner's signature over the message (see planner-signature.ts, artifactStatement). */
  sig: 'Sb-Sig',
  /**
   * On deltas: SHA-256 (hex) of the payload. Unsigned, it is what vouches for the entry hashes a
   * delta carries (a payload altered on the way no longer matches it); signed, the signature does.
   */
  payloadDigest: 'Sb-Payload-Sha256',
  /** The term of the leader that published the message (planner-lease.ts). */
  term: 'Sb-Term',
} as const;
