import {
  contentHash,
  parseWire,
  VersionArtifactSchema,
  type EntryHashes,
  type VersionArtifact,
} from '../model/index.ts';
import { payloadDigest } from './planner-signature.ts';
import { checkpointSubject, deltaSubject, H } from './subjects.ts';

/** One message to put on the versions stream. */
export interface EncodedMessage {
  readonly subject: string;
  /** Idempotency key (Nats-Msg-Id): the same artifact always gets the same id. */
  readonly msgId: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly payload: Uint8Array;
}

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const enc = new TextEncoder();

/**
 * Encodes an artifact as stream messages: a delta is one message; a checkpoint is split into
 * chunks of at most `chunkBytes` so that a large cluster never exceeds the server's max_payload.
 * `baseCheckpoint` goes on deltas so a node far behind learns where to restart from.
 */
export function encodeArtifact(
  a: VersionArtifact,
  opts: { chunkBytes: number; baseCheckpoint: number; anchor?: string },
  encoded?: Uint8Array,
): EncodedMessage[] {
  const common = {
    [H.version]: String(a.version),
    [H.parent]: String(a.parent),
    [H.form]: a.form,
    [H.hash]: a.hash,
    ...(opts.anchor ? { [H.anchor]: opts.anchor } : {}),
  };
  // undefined: an oversize delta, known from a prefix of its entries without encoding all of it.
  const bytes =
    a.form === 'delta' && encoded === undefined && deltaExceeds(a, opts.chunkBytes)
      ? undefined
      : (encoded ?? artifactBytes(a, opts.chunkBytes));
  if (bytes === undefined || (a.form === 'delta' && bytes.length > opts.chunkBytes)) {
    // Too big for one message (an initial sync, a mass change): the version's checkpoint, which
    // the publisher must have stored first, carries it; the delta is a marker naming it.
    if (opts.baseCheckpoint !== a.version)
      throw new Error(
        `delta ${a.version} is over ${opts.chunkBytes} bytes (one message): publish checkpoint ${a.version} first`,
      );
    return [
      {
        subject: deltaSubject(a.version),
        msgId: deltaSubject(a.version),
        payload: new Uint8Array(0),
        headers: { ...common, [H.checkpoint]: String(a.version), [H.checkpointOnly]: '1' },
      },
    ];
  }
  if (a.form === 'delta') {
    return [
      {
        subject: deltaSubject(a.version),
        msgId: deltaSubject(a.version),
        payload: bytes,
        headers: { ...common, [H.checkpoint]: String(opts.baseCheckpoint), [H.payloadDigest]: payloadDigest(bytes) },
      },
    ];
  }
  const size = Math.max(1024, Math.floor(opts.chunkBytes));
  const n = Math.max(1, Math.ceil(bytes.length / size));
  const out: EncodedMessage[] = [];
  for (let i = 0; i < n; i++) {
    const subject = checkpointSubject(a.version, i);
    out.push({
      subject,
      msgId: subject,
      payload: bytes.subarray(i * size, (i + 1) * size),
      headers: { ...common, [H.chunk]: String(i), [H.chunks]: String(n) },
    });
  }
  return out;
}

/**
 * An artifact's payload bytes. The publisher serializes a version once: the same bytes decide
 * whether a delta needs a checkpoint of its own, are signed and are stored. A delta also carries
 * its upserted entries' content hashes (`entryHashes`, computed here once for every node), unless
 * it is longer than `carryHashesUpTo` bytes without them: such a delta is published as a
 * checkpoint-only marker with no payload, and hashing its (many) entries would be wasted.
 */
export function artifactBytes(a: VersionArtifact, carryHashesUpTo = Number.POSITIVE_INFINITY): Uint8Array {
  const json = JSON.stringify(a);
  const plain = enc.encode(json);
  if (a.form !== 'delta' || a.entryHashes || plain.length > carryHashesUpTo) return plain;
  const hashes: EntryHashes = {
    services: a.delta.upsertServices.map((e) => contentHash(e)),
    nodes: a.delta.upsertNodes.map((f) => contentHash(f)),
  };
  // appended to the one serialization of the artifact (an object's JSON always ends with '}')
  return enc.encode(`${json.slice(0, -1)},"entryHashes":${JSON.stringify(hashes)}}`);
}

/**
 * Whether a delta's payload is certainly longer than `limit` bytes, found from its upserted
 * entries alone and stopping at the first entry that settles it. The artifact's JSON contains
 * each entry's JSON.stringify text verbatim (stringify is compositional), so their summed UTF-8
 * lengths are a lower bound of the payload's. An initial sync's delta (the whole cluster, ~14 MB
 * at 10k services) is thus recognised after ~chunk-size bytes of entries instead of being
 * encoded in full only to be dropped for a checkpoint-only marker. False means "not known to
 * be": the caller encodes it and compares the real length.
 */
export function deltaExceeds(a: VersionArtifact & { form: 'delta' }, limit: number): boolean {
  let bytes = 0;
  for (const list of [a.delta.upsertServices, a.delta.upsertNodes] as const) {
    for (const e of list) {
      bytes += Buffer.byteLength(JSON.stringify(e), 'utf8');
      if (bytes > limit) return true;
    }
  }
  return false;
}

/**
 * Decodes one delta message (bytes, or the text a target notice carries). Never throws: a corrupt
 * message is a value, not a crash. Carried entry hashes must pair up with the entries; whether a
 * node may rely on them is the caller's decision (withoutUnvouchedHashes).
 */
export function decodeDelta(payload: Uint8Array | string): Decoded<VersionArtifact & { form: 'delta' }> {
  const r = parseArtifact(payload);
  if (!r.ok) return r;
  if (r.value.form !== 'delta') return { ok: false, error: `expected a delta, got ${r.value.form}` };
  const h = r.value.entryHashes;
  if (
    h &&
    (h.services.length !== r.value.delta.upsertServices.length || h.nodes.length !== r.value.delta.upsertNodes.length)
  )
    return { ok: false, error: 'artifact: entryHashes do not pair up with the upserted entries' };
  return r as Decoded<VersionArtifact & { form: 'delta' }>;
}

/**
 * The delta as a node may use it: carried entry hashes stand in for hashing the entries only
 * when something vouches that they came with those entries from the planner: its signature over
 * the payload (checked by the caller), or, unsigned, the payload digest header (checked against
 * the bytes in VersionReader.genuine). A delta with neither is hashed entry by entry, as before.
 */
export function withoutUnvouchedHashes<T extends VersionArtifact & { form: 'delta' }>(d: T, vouched: boolean): T {
  if (vouched || !d.entryHashes) return d;
  const { entryHashes: _dropped, ...rest } = d;
  return rest as T;
}

/** Reassembles and decodes a chunked checkpoint (chunks in order). */
export function decodeCheckpoint(chunks: readonly Uint8Array[]): Decoded<VersionArtifact & { form: 'checkpoint' }> {
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const all = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  const r = parseArtifact(all);
  if (!r.ok) return r;
  if (r.value.form !== 'checkpoint') return { ok: false, error: `expected a checkpoint, got ${r.value.form}` };
  return r as Decoded<VersionArtifact & { form: 'checkpoint' }>;
}

function parseArtifact(payload: Uint8Array | string): Decoded<VersionArtifact> {
  const r = parseWire(VersionArtifactSchema, payload, 'artifact');
  return 'error' in r ? { ok: false, error: r.error } : { ok: true, value: r.value as unknown as VersionArtifact };
}
