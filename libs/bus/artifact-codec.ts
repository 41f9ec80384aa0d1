import {
  CheckpointEnvelopeSchema,
  checkWire,
  contentHash,
  JsonValueSplitter,
  NodeFactsShapeSchema,
  parseWire,
  PatchedDeltaSchema,
  ServiceEntryShapeSchema,
  VersionArtifactSchema,
  type ClusterData,
  type EntryHashes,
  type JsonPath,
  type KnownTexts,
  type NoticeDelta,
  type ServicePatch,
  type VersionArtifact,
} from '../model/index.ts';
import { payloadDigest } from './planner-signature.ts';
import { checkpointSubject, deltaPartSubject, deltaSubject, H } from './subjects.ts';

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

type Checkpoint = VersionArtifact & { form: 'checkpoint' };
type EncodeOptions = {
  chunkBytes: number;
  baseCheckpoint: number;
  anchor?: string;
  /**
   * JSON.stringify texts already made for some of the artifact's entries (the planner's, made to
   * hash them): written as they are instead of serialising those entries again. The payload is
   * the same bytes either way; a text that is not its entry's JSON.stringify text would change it.
   */
  texts?: KnownTexts;
  /**
   * A delta goes out as the marker naming its own checkpoint whatever its size: a base version,
   * published on a stream that lacks its parent (VersionPublisher.publishBase).
   */
  checkpointOnly?: boolean;
  /**
   * Most messages of `chunkBytes` a delta may take (default 1). A delta over one message but
   * within this many goes out as parts on deltaPartSubject, then its delta message with no
   * payload naming their count (H.deltaParts); only a larger one needs a checkpoint of its own.
   */
  deltaParts?: number;
  /**
   * Where a checkpoint's chunk of `bytes` bytes is written (ChunkBuffers.take: a buffer the sender
   * had stored, reused); every byte of it is written before it is yielded. Default: a new one.
   */
  chunkBuffer?: (bytes: number) => Uint8Array;
};

/**
 * Encodes an artifact as stream messages: a delta is one message; a checkpoint is split into
 * chunks of at most `chunkBytes` so that a large cluster never exceeds the server's max_payload.
 * `baseCheckpoint` goes on deltas so a node far behind learns where to restart from.
 * All messages at once: for tests and small artifacts; the publisher takes artifactMessages.
 */
export function encodeArtifact(a: VersionArtifact, opts: EncodeOptions, encoded?: Uint8Array): EncodedMessage[] {
  return [...artifactMessages(a, opts, encoded)];
}

/**
 * encodeArtifact's messages one at a time. A checkpoint's chunks are made as they are taken
 * (checkpointPayloads), so a publisher that sends each before taking the next holds one chunk,
 * never the whole checkpoint.
 */
export function* artifactMessages(
  a: VersionArtifact,
  opts: EncodeOptions,
  encoded?: Uint8Array,
): Generator<EncodedMessage> {
  const common = {
    [H.version]: String(a.version),
    [H.parent]: String(a.parent),
    [H.form]: a.form,
    [H.hash]: a.hash,
    ...(opts.anchor ? { [H.anchor]: opts.anchor } : {}),
  };
  const size = Math.max(1024, Math.floor(opts.chunkBytes));
  if (a.form === 'checkpoint') {
    const { chunks, payloads } = encoded
      ? splitBytes(encoded, size)
      : checkpointPayloads(a, size, opts.texts, opts.chunkBuffer);
    let i = 0;
    for (const payload of payloads) {
      const subject = checkpointSubject(a.version, i);
      yield {
        subject,
        // Qualified by the content: a deposed leader's partial checkpoint of this version (other
        // content) must not make the new leader's chunks count as already stored (dedupe).
        msgId: `${subject}:${a.hash}`,
        payload,
        headers: { ...common, [H.chunk]: String(i), [H.chunks]: String(chunks) },
      };
      i++;
    }
    return;
  }
  // undefined: an oversize delta, known from a prefix of its entries without encoding all of it.
  const most = deltaBytesLimit(opts.chunkBytes, opts.deltaParts);
  const bytes =
    opts.checkpointOnly || (encoded === undefined && deltaExceeds(a, most, opts.texts))
      ? undefined
      : (encoded ?? artifactBytes(a, most));
  if (bytes === undefined || bytes.length > most) {
    // Too big for one message (an initial sync, a mass change): the version's checkpoint, which
    // the publisher must have stored first, carries it; the delta is a marker naming it.
    if (opts.baseCheckpoint !== a.version)
      throw new Error(
        `delta ${a.version} is over ${opts.chunkBytes} bytes (one message): publish checkpoint ${a.version} first`,
      );
    yield {
      subject: deltaSubject(a.version),
      msgId: deltaSubject(a.version),
      payload: new Uint8Array(0),
      headers: { ...common, [H.checkpoint]: String(a.version), [H.checkpointOnly]: '1' },
    };
    return;
  }
  if (bytes.length > opts.chunkBytes) {
    // A few messages' worth (a change to a service of thousands of endpoints): in parts, each
    // signed and digested as a delta is, then the delta message naming their count. Without
    // parts such a delta forced a checkpoint of the whole cluster, for every change of that
    // service, and every node loaded it.
    const { chunks, payloads } = splitBytes(bytes, size);
    let i = 0;
    for (const payload of payloads) {
      const subject = deltaPartSubject(a.version, i);
      yield {
        subject,
        // qualified by the content, as a checkpoint's chunks are (a deposed leader's parts of N)
        msgId: `${subject}:${a.hash}`,
        payload,
        headers: {
          ...common,
          [H.chunk]: String(i),
          [H.chunks]: String(chunks),
          [H.payloadDigest]: payloadDigest(payload),
        },
      };
      i++;
    }
    yield {
      subject: deltaSubject(a.version),
      msgId: deltaSubject(a.version),
      payload: new Uint8Array(0),
      headers: { ...common, [H.checkpoint]: String(opts.baseCheckpoint), [H.deltaParts]: String(chunks) },
    };
    return;
  }
  yield {
    subject: deltaSubject(a.version),
    msgId: deltaSubject(a.version),
    payload: bytes,
    headers: { ...common, [H.checkpoint]: String(opts.baseCheckpoint), [H.payloadDigest]: payloadDigest(bytes) },
  };
}

/** The most bytes a delta may take as `parts` messages of `chunkBytes` (at least one message). */
export function deltaBytesLimit(chunkBytes: number, parts = 1): number {
  return chunkBytes * Math.max(1, Math.floor(parts));
}

function splitBytes(bytes: Uint8Array, size: number): { chunks: number; payloads: Iterable<Uint8Array> } {
  const n = Math.max(1, Math.ceil(bytes.length / size));
  return { chunks: n, payloads: Array.from({ length: n }, (_, i) => bytes.subarray(i * size, (i + 1) * size)) };
}

/** Stands in for one value while the checkpoint's small outer JSON is stringified. */
const HOLE = '\u0000sb-checkpoint-hole\u0000';
const HOLE_JSON = JSON.stringify(HOLE);

/**
 * A checkpoint's payload as chunks of `size` bytes, made one at a time: exactly the UTF-8 of
 * JSON.stringify(a) cut every `size` bytes (what the codec sent before, so old and new nodes
 * read it alike and a republish dedupes against an older planner's chunks), written entry by
 * entry so that no string or buffer of the whole document exists. JSON.stringify is
 * compositional, so the document is the outer JSON with each array's entries spliced in. The
 * chunk count travels on every chunk, so a first pass measures the entries (serialising each
 * once more: O(cluster) CPU, O(one entry) memory). An entry whose text `texts` holds is not
 * serialised at all: its text is measured, then written.
 */
export function checkpointPayloads(
  a: Checkpoint,
  size: number,
  texts?: KnownTexts,
  chunkBuffer: (bytes: number) => Uint8Array = (n) => new Uint8Array(n),
): { chunks: number; payloads: Iterable<Uint8Array> } {
  const entryJson = (e: object): string => texts?.get(e) ?? JSON.stringify(e) ?? 'null';
  const outer = splitAtHoles(JSON.stringify({ ...a, data: HOLE }), 1);
  const inner = splitAtHoles(JSON.stringify({ ...a.data, services: HOLE, nodes: HOLE }), 2);
  // the document: outer[0] inner[0] [services] inner[1] [nodes] inner[2] outer[1]
  const lists = [a.data.services, a.data.nodes] as const;
  let total = 0;
  for (const t of [...outer, ...inner]) total += Buffer.byteLength(t, 'utf8');
  for (const list of lists) {
    total += 2 + Math.max(0, list.length - 1); // brackets and commas
    for (const e of list) total += Buffer.byteLength(entryJson(e), 'utf8');
  }
  const chunks = Math.max(1, Math.ceil(total / size));
  function* pieces(): Generator<string> {
    yield outer[0]! + inner[0]!;
    for (let l = 0; l < lists.length; l++) {
      const list = lists[l]!;
      yield '[';
      for (let i = 0; i < list.length; i++) {
        if (i > 0) yield ',';
        yield entryJson(list[i]!);
      }
      yield ']';
      yield l === 0 ? inner[1]! : inner[2]! + outer[1]!;
    }
  }
  function* payloads(): Generator<Uint8Array> {
    let buf = chunkBuffer(Math.min(size, total));
    let fill = 0;
    let left = total;
    for (const t of pieces()) {
      if (t.length === 0) continue;
      // Straight into the chunk (no buffer per entry) while it fits whole; a text that runs past
      // the chunk's end is encoded on its own and cut, as a character may straddle the cut.
      if (t.length <= buf.length - fill) {
        const r = enc.encodeInto(t, buf.subarray(fill));
        if (r.read === t.length) {
          fill += r.written;
          if (fill < buf.length) continue;
          left -= fill;
          if (left < 0) throw new Error('checkpoint encoding: the document grew while it was written');
          yield buf;
          buf = chunkBuffer(Math.min(size, left));
          fill = 0;
          continue;
        }
        // encodeInto stopped short (the text's UTF-8 is longer than it): the slow path below
        // writes the same prefix again from `fill`, then the rest
      }
      const b = enc.encode(t);
      for (let o = 0; o < b.length; ) {
        const n = Math.min(buf.length - fill, b.length - o);
        buf.set(b.subarray(o, o + n), fill);
        fill += n;
        o += n;
        if (fill === buf.length) {
          left -= fill;
          if (left < 0) throw new Error('checkpoint encoding: the document grew while it was written');
          yield buf;
          buf = chunkBuffer(Math.min(size, left));
          fill = 0;
        }
      }
    }
    if (left !== 0 || fill !== 0) throw new Error('checkpoint encoding: the document changed while it was written');
  }
  return { chunks, payloads: payloads() };
}

/**
 * Buffers for a checkpoint's chunks, each used again once the stream answered the chunk written in
 * it: an acknowledged chunk was sent (the NATS client copies what it writes), so it is no longer
 * read. A new buffer per chunk (512 KiB, ~30 of them for version 1 at 10k services) cost a fresh
 * mapping, its page faults and its zeroing each; reused, a checkpoint touches about as many as it
 * has in flight (the next chunk is written once the oldest is answered). A chunk refused or unanswered is never given back (it may be sent again, or sit
 * in the client's queue until a reconnect).
 */
export class ChunkBuffers {
  private readonly free: ArrayBuffer[] = [];
  private readonly lent = new Set<ArrayBuffer>();

  /** A buffer of exactly `bytes` bytes (its previous content is overwritten by the codec). */
  readonly take = (bytes: number): Uint8Array => {
    const i = this.free.findIndex((b) => b.byteLength >= bytes);
    const b = i >= 0 ? this.free.splice(i, 1)[0]! : new ArrayBuffer(bytes);
    this.lent.add(b);
    return new Uint8Array(b, 0, bytes);
  };

  /** The chunk in `payload` was answered by the stream: its buffer may be taken again (others are ignored). */
  giveBack(payload: Uint8Array): void {
    const b = payload.buffer as ArrayBuffer;
    if (this.lent.delete(b)) this.free.push(b);
  }
}

function splitAtHoles(json: string, holes: number): string[] {
  const parts = json.split(HOLE_JSON);
  if (parts.length !== holes + 1) throw new Error('checkpoint encoding: a header field holds the placeholder text');
  return parts;
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
export function deltaExceeds(a: VersionArtifact & { form: 'delta' }, limit: number, texts?: KnownTexts): boolean {
  let bytes = 0;
  for (const list of [a.delta.upsertServices, a.delta.upsertNodes] as const) {
    for (const e of list) {
      bytes += Buffer.byteLength(texts?.get(e) ?? JSON.stringify(e), 'utf8');
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

/** A delta with its large service entries as patches (PatchedDeltaSchema), decoded. */
export type PatchedDeltaArtifact = VersionArtifact & {
  form: 'delta';
  readonly servicePatches: readonly ServicePatch[];
};

/**
 * The patch a target notice carries for delta `a` (see PatchedDeltaSchema): its headers name the
 * version as the stored delta's do (and the patch payload's digest), its payload is the delta with the patched services' entries
 * left out and `patches` in their place. Undefined when there are none.
 */
export function patchNotice(
  a: VersionArtifact & { form: 'delta' },
  patches: readonly ServicePatch[] | undefined,
  anchor = '',
): NoticeDelta | undefined {
  if (!patches || patches.length === 0) return undefined;
  const patched = new Set(patches.map((p) => p.key));
  const { entryHashes: _carried, ...artifact } = a;
  const payload = JSON.stringify({
    ...artifact,
    delta: { ...a.delta, upsertServices: a.delta.upsertServices.filter((e) => !patched.has(e.key)) },
    servicePatches: patches,
  });
  const headers: Record<string, string> = {
    [H.version]: String(a.version),
    [H.parent]: String(a.parent),
    [H.form]: a.form,
    [H.hash]: a.hash,
    ...(anchor ? { [H.anchor]: anchor } : {}),
    // unsigned, what vouches for the entry hashes the patches carry (as for a delta's)
    [H.payloadDigest]: payloadDigest(payload),
  };
  return { headers, payload };
}

/** Decodes a notice's patch payload. Never throws; a service both upserted and patched, or patched twice, is refused. */
export function decodePatchedDelta(payload: string): Decoded<PatchedDeltaArtifact> {
  const r = parseWire(PatchedDeltaSchema, payload, 'patch');
  if ('error' in r) return { ok: false, error: r.error };
  const upserted = new Set(r.value.delta.upsertServices.map((e) => e.key));
  const patched = new Set<string>();
  for (const p of r.value.servicePatches) {
    if (upserted.has(p.key)) return { ok: false, error: `patch: ${p.key} is both upserted and patched` };
    if (patched.has(p.key)) return { ok: false, error: `patch: ${p.key} is patched twice` };
    patched.add(p.key);
  }
  return { ok: true, value: r.value as unknown as PatchedDeltaArtifact };
}

/** Decodes a chunked checkpoint (chunks in order); see CheckpointDecoder. */
export function decodeCheckpoint(chunks: Iterable<Uint8Array>): Decoded<Checkpoint> {
  const d = new CheckpointDecoder();
  for (const c of chunks) d.push(c);
  return d.finish();
}

/**
 * Reads a checkpoint chunk by chunk as it arrives: each service and node entry is parsed and
 * checked as soon as its last byte is in, and the chunk can be dropped, so a node never holds
 * the checkpoint's text, its joined bytes or one string of it (a 10,000-service checkpoint is
 * ~400 MB of JSON, near V8's longest string). Any payload the joined-bytes decoder accepted
 * (every checkpoint published so far) decodes to the same value; errors name what is wrong
 * (`artifact: not JSON`, `artifact: data.services.3.key: ...`). Never throws.
 */
export class CheckpointDecoder {
  private readonly header: Record<string, unknown> = {};
  private readonly dataFields: Record<string, unknown> = {};
  private readonly services: unknown[] = [];
  private readonly nodes: unknown[] = [];
  private readonly walked = new Set<string>();
  private error: string | undefined;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });
  private readonly splitter = new JsonValueSplitter({
    descend: (p, kind) => isWalked(p, kind) && this.walk(p),
    onValue: (p, element, bytes) => this.value(p, element, bytes),
  });

  /** The first problem found so far (the rest of the chunks need not be fetched), or undefined. */
  get failed(): string | undefined {
    return this.error;
  }

  push(chunk: Uint8Array): void {
    if (this.error) return;
    try {
      this.splitter.push(chunk);
    } catch (e) {
      this.error ??= e instanceof SyntaxError ? 'artifact: not JSON' : (e as Error).message;
    }
  }

  finish(): Decoded<Checkpoint> {
    if (!this.error) {
      try {
        this.splitter.end();
      } catch {
        this.error = 'artifact: not JSON';
      }
    }
    if (this.error) return { ok: false, error: this.error };
    if (!this.walked.has('')) return { ok: false, error: 'artifact: not a JSON object' };
    const form = this.header.form;
    // a delta read as a checkpoint: say so, as the joined-bytes decoder did
    if (form !== 'checkpoint' && typeof form === 'string')
      return { ok: false, error: `expected a checkpoint, got ${form}` };
    const walkedData = this.walked.has('data');
    const envelope = {
      ...this.header,
      ...(walkedData
        ? {
            data: {
              ...this.dataFields,
              ...(this.walked.has('data.services') ? { services: [] } : {}),
              ...(this.walked.has('data.nodes') ? { nodes: [] } : {}),
            },
          }
        : {}),
    };
    const r = checkWire(CheckpointEnvelopeSchema, envelope, 'artifact');
    if ('error' in r) return { ok: false, error: r.error };
    const data: ClusterData = {
      services: this.services as ClusterData['services'],
      nodes: this.nodes as ClusterData['nodes'],
    };
    return { ok: true, value: { ...r.value, data } as Checkpoint };
  }

  private walk(p: JsonPath): true {
    const k = p.join('.');
    if (this.walked.has(k)) throw new Error(`artifact: ${k || 'the document'} appears twice`);
    this.walked.add(k);
    return true;
  }

  private value(p: JsonPath, element: boolean, bytes: Uint8Array): void {
    let v: unknown;
    try {
      v = JSON.parse(this.utf8.decode(bytes));
    } catch {
      throw new SyntaxError('not JSON');
    }
    if (element) {
      const services = p[1] === 'services';
      const list = services ? this.services : this.nodes;
      const r = (services ? ServiceEntryShapeSchema : NodeFactsShapeSchema).safeParse(v);
      if (!r.success) {
        const issue = r.error.issues[0]!;
        throw new Error(`artifact: ${[...p, list.length, ...issue.path].join('.')}: ${issue.message}`);
      }
      list.push(r.data);
      return;
    }
    if (p.length === 0) return; // the document itself was one value: not an object (finish says so)
    const fields = p.length === 1 ? this.header : this.dataFields;
    const k = p[p.length - 1]!;
    if (Object.hasOwn(fields, k)) throw new Error(`artifact: ${p.join('.')} appears twice`);
    fields[k] = v;
  }
}

/**
 * The containers a checkpoint decoder walks: the document and `data` (objects) and its two arrays.
 * Anything else, of another kind too, is one value, which the envelope schema then refuses.
 */
function isWalked(p: JsonPath, kind: 'object' | 'array'): boolean {
  if (p.length === 0 || (p.length === 1 && p[0] === 'data')) return kind === 'object';
  return kind === 'array' && p.length === 2 && p[0] === 'data' && (p[1] === 'services' || p[1] === 'nodes');
}

function parseArtifact(payload: Uint8Array | string): Decoded<VersionArtifact> {
  const r = parseWire(VersionArtifactSchema, payload, 'artifact');
  return 'error' in r ? { ok: false, error: r.error } : { ok: true, value: r.value as unknown as VersionArtifact };
}
