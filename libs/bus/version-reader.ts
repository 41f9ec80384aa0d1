import type { VersionArtifact } from '../model/index.ts';
import { CheckpointDecoder, decodeDelta, withoutUnvouchedHashes } from './artifact-codec.ts';
import { directGet, leaderGet, type DirectGot, type Requester } from './direct-get.ts';
import { artifactStatement, payloadDigest, type Verifier } from './planner-signature.ts';
import { checkpointSubject, deltaPartSubject, deltaSubject, H, VERSIONS_STREAM } from './subjects.ts';

export type { Requester, ReplyMsg } from './direct-get.ts';

export type Fetched<T> =
  | {
      readonly ok: true;
      readonly value: T;
      readonly bytes: number;
      readonly baseCheckpoint: number;
      /** The log anchor the planner stamped on this version ('' when none). */
      readonly anchor?: string;
    }
  /** `checkpointOnly`: the version exists but its content is only in its own checkpoint. */
  | {
      readonly ok: false;
      readonly missing: boolean;
      readonly error: string;
      /** The failed request's own error, when one failed (a timeout: transient). */
      readonly cause?: unknown;
      readonly checkpointOnly?: { readonly hash: string; readonly anchor: string };
    };

type Delta = VersionArtifact & { form: 'delta' };
type Checkpoint = VersionArtifact & { form: 'checkpoint' };
type Got = Extract<DirectGot, { ok: true }>;

export interface VersionReaderOptions {
  readonly stream?: string;
  readonly timeoutMs?: number;
  /** The planner's public key: messages it did not sign are skipped (and reported). */
  readonly verifier?: Verifier;
  /** Called for each stored message skipped as not a genuine artifact. */
  readonly onRejected?: (subject: string, reason: string) => void;
  /** Most foreign messages skipped on one subject before giving up (default 256). */
  readonly maxSkipped?: number;
  /**
   * Ask the stream's leader (leaderGet) instead of any replica (directGet): the planner's own
   * reads, which a frozen replica would hold for a whole timeout. Nodes read by direct get (their
   * permissions name exactly those subjects, and any replica may serve them).
   */
  readonly fromLeader?: boolean;
}

/**
 * Reads single artifacts from the versions stream by direct get. A JetStream stream stores every
 * publish on its subjects, from anyone allowed to publish there, so a subject may hold foreign
 * messages besides (before or after) the planner's one: the reader walks a subject's messages
 * from the oldest and takes the first genuine one (signed by the planner when a verifier is
 * given; otherwise one that decodes as the version asked for), skipping and reporting the rest.
 * The planner publishes each artifact once, so in the normal case this is one request.
 */
export class VersionReader {
  private readonly stream: string;
  private readonly timeoutMs: number;

  constructor(
    private readonly nc: Requester,
    private readonly opts: VersionReaderOptions = {},
  ) {
    this.stream = opts.stream ?? VERSIONS_STREAM;
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  async delta(version: number): Promise<Fetched<Delta>> {
    let decoded: Delta | undefined;
    let partsBytes = 0;
    let partsFailure: { missing: boolean; error: string; cause?: unknown } | undefined;
    const r = await this.first(deltaSubject(version), version, async (m) => {
      if (m.header(H.checkpointOnly) === '1')
        return m.data.length === 0 ? undefined : 'checkpoint-only marker with a payload';
      let payload: Uint8Array = m.data;
      let vouched = this.vouches(m.header);
      const parts = m.header(H.deltaParts);
      if (parts !== undefined && parts !== '') {
        if (m.data.length !== 0) return 'delta in parts with a payload';
        const joined = await this.parts(version, m.header(H.hash) ?? '', parts);
        if (!joined.ok) {
          partsFailure = joined;
          return undefined; // the genuine delta message is this one: its parts are what failed
        }
        payload = joined.payload;
        vouched = joined.vouched;
        partsBytes = payload.length;
      }
      const d = decodeDelta(payload);
      if (!d.ok) return d.error;
      if (d.value.version !== version) return `payload says version ${d.value.version}`;
      if (this.opts.verifier && (d.value.hash !== m.header(H.hash) || String(d.value.parent) !== m.header(H.parent)))
        return 'payload and signed headers disagree';
      // The checkpoint header is not signed: a copy of a genuine delta with only it changed still
      // verifies. A base above the version would stall a node (no such checkpoint yet) or load
      // data newer than the version it ACKs; skip such a copy (the planner's own is further on).
      const base = Number(m.header(H.checkpoint));
      if (Number.isSafeInteger(base) && base > version)
        return `checkpoint header ${base} is above the version ${version}`;
      decoded = withoutUnvouchedHashes(d.value, vouched);
      return undefined;
    });
    if (!r.ok) return r;
    if (partsFailure) return { ok: false, ...partsFailure };
    const anchor = r.header(H.anchor) ?? '';
    if (r.header(H.checkpointOnly) === '1') {
      return {
        ok: false,
        missing: true,
        error: `delta ${version} is published as a checkpoint only`,
        checkpointOnly: { hash: r.header(H.hash), anchor },
      };
    }
    const base = Number(r.header(H.checkpoint));
    return {
      ok: true,
      value: decoded!,
      bytes: r.data.length + partsBytes,
      baseCheckpoint: Number.isSafeInteger(base) && base >= 0 ? base : 0,
      anchor,
    };
  }

  /**
   * A delta's parts 0..n-1 (n as its delta message says), joined: each the first genuine one of
   * its subject carrying the version's hash and the same count (a deposed leader's parts of the
   * version, other content, may be stored before them). Vouched when every part is.
   */
  private async parts(
    version: number,
    hash: string,
    count: string,
  ): Promise<
    | { ok: true; payload: Uint8Array; vouched: boolean }
    | { ok: false; missing: boolean; error: string; cause?: unknown }
  > {
    const n = Number(count);
    if (!Number.isSafeInteger(n) || n < 2 || n > 10_000)
      return { ok: false, missing: false, error: `delta ${version}: bad part count ${JSON.stringify(count)}` };
    const payloads: Uint8Array[] = [];
    let vouched = true;
    for (let i = 0; i < n; i++) {
      const p = await this.first(deltaPartSubject(version, i), version, (m) =>
        m.header(H.hash) === hash && m.header(H.chunks) === count && m.header(H.chunk) === String(i)
          ? undefined
          : 'part of another delta',
      );
      if (!p.ok) return { ...p, error: `delta ${version} part ${i} of ${n}: ${p.error}` };
      vouched &&= this.vouches(p.header);
      payloads.push(p.data);
    }
    return { ok: true, payload: Buffer.concat(payloads), vouched };
  }

  /**
   * Version `version`'s checkpoint. A subject may also hold chunks of a checkpoint that never
   * became the version (a leader deposed mid-checkpoint, other content), stored before the real
   * one: chunk 0 is the first genuine one carrying the version's hash, `expectedHash` when the caller
   * knows it, else the hash its delta or checkpoint-only marker names (the first genuine chunk 0
   * when neither is stored: a checkpoint that is not a version yet).
   */
  async checkpoint(version: number, expectedHash?: string): Promise<Fetched<Checkpoint>> {
    const want = expectedHash ?? (await this.versionHash(version));
    const first = await this.first(checkpointSubject(version, 0), version, (m) =>
      want === undefined || m.header(H.hash) === want ? undefined : 'chunk of a checkpoint that is not the version',
    );
    if (!first.ok) return first;
    const n = Number(first.header(H.chunks));
    if (!Number.isSafeInteger(n) || n < 1 || n > 100_000)
      return { ok: false, missing: false, error: `checkpoint ${version}: bad chunk count` };
    const hash = first.header(H.hash);
    // each chunk is decoded as it arrives and dropped: the checkpoint is never one buffer or string
    const decoder = new CheckpointDecoder();
    decoder.push(first.data);
    let bytes = first.data.length;
    // bad content stops the fetching: finish() reports it
    for (let i = 1; i < n && !decoder.failed; i++) {
      const sameCheckpoint = (m: Got) =>
        m.header(H.hash) === hash && m.header(H.chunks) === String(n) ? undefined : 'chunk of another checkpoint';
      const c = await this.first(checkpointSubject(version, i), version, sameCheckpoint);
      if (!c.ok) return { ok: false, missing: c.missing, error: `checkpoint ${version} chunk ${i}: ${c.error}` };
      decoder.push(c.data);
      bytes += c.data.length;
    }
    const d = decoder.finish();
    if (!d.ok) return { ok: false, missing: false, error: `checkpoint ${version}: ${d.error}` };
    if (d.value.version !== version)
      return { ok: false, missing: false, error: `checkpoint ${version}: payload says version ${d.value.version}` };
    return {
      ok: true,
      value: d.value,
      bytes,
      baseCheckpoint: version,
      anchor: first.header(H.anchor) ?? '',
    };
  }

  /** The hash version `version`'s delta or checkpoint-only marker carries; undefined when neither is stored. */
  private async versionHash(version: number): Promise<string | undefined> {
    const head = await this.delta(version);
    if (head.ok) return head.value.hash;
    return head.checkpointOnly?.hash;
  }

  /**
   * Whether a stored message is the planner's (signature over subject, headers and payload), or
   * the reason it is not. Exported through the class for the publisher's own recovery scan.
   * Without a verifier nothing is authenticated, but a payload that does not match its digest
   * header (altered on the way) is still refused: the digest is what vouches, unsigned, for the
   * entry hashes a delta carries. `data`: the payload, or its text as a target notice carries it.
   */
  genuine(
    m: { subject: string; data: Uint8Array | string; header(k: string): string | undefined },
    version: number,
  ): string | undefined {
    // An absent header reads as '' (probe10 H12: 'header says version ' named nothing).
    const said = m.header(H.version);
    if (said !== String(version)) return said ? `header says version ${said}, not ${version}` : 'no version header';
    const v = this.opts.verifier;
    if (!v) {
      const digest = m.header(H.payloadDigest); // '' or undefined when absent (planners before it)
      return !digest || digest === payloadDigest(m.data) ? undefined : 'payload does not match its digest';
    }
    const sig = m.header(H.sig);
    if (!sig) return 'unsigned';
    const statement = artifactStatement({
      subject: m.subject,
      version,
      parent: Number(m.header(H.parent)),
      hash: m.header(H.hash) ?? '',
      anchor: m.header(H.anchor) ?? '',
      payload: m.data,
    });
    return v.verify(statement, sig) ? undefined : 'bad signature';
  }

  /**
   * Whether a message that passed genuine() vouches for the entry hashes its delta carries: signed
   * (the signature covers the payload), or unsigned with a payload digest header (genuine() checked it).
   */
  vouches(header: (k: string) => string | undefined): boolean {
    return this.opts.verifier !== undefined || !!header(H.payloadDigest);
  }

  /** The first genuine message on `subject` for which `accept` finds no fault. */
  private async first(
    subject: string,
    version: number,
    accept: (m: Got) => string | undefined | Promise<string | undefined>,
  ): Promise<Got | { ok: false; missing: boolean; error: string; cause?: unknown }> {
    let seq = 1;
    let skipped = 0;
    const max = this.opts.maxSkipped ?? 256;
    for (;;) {
      const m = await (this.opts.fromLeader ? leaderGet : directGet)(
        this.nc,
        this.stream,
        { next: subject, seq },
        this.timeoutMs,
      );
      if (!m.ok)
        return skipped > 0 && m.missing
          ? { ok: false, missing: true, error: `${subject}: no genuine artifact (${skipped} foreign messages skipped)` }
          : m;
      const fault = this.genuine({ subject: m.subject, data: m.data, header: m.header }, version) ?? (await accept(m));
      if (fault === undefined) return m;
      this.opts.onRejected?.(subject, fault);
      if (++skipped >= max)
        return { ok: false, missing: false, error: `${subject}: more than ${max} foreign messages` };
      seq = m.seq + 1;
    }
  }
}
