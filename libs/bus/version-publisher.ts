import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  jetstream,
  jetstreamManager,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
  type StreamInfo,
} from '@nats-io/jetstream';
import { StaleLeaderError } from './stale-leader.ts';
import { appendChain } from './chained-append.ts';
import type { KnownTexts, NoticeDelta, ServicePatch, VersionArtifact } from '../model/index.ts';
import {
  artifactBytes,
  artifactMessages,
  ChunkBuffers,
  deltaBytesLimit,
  deltaExceeds,
  patchNotice,
  type EncodedMessage,
} from './artifact-codec.ts';
import { leaseGroups } from './planner-lease.ts';
import {
  artifactStatement,
  groupTermClaimStatement,
  termClaimStatement,
  verifierFromPem,
  type Signer,
  type Verifier,
} from './planner-signature.ts';
import {
  checkpointChunkSubjects,
  DELTA_SUBJECTS,
  DELTA_PART_SUBJECTS,
  deltaPartSubjects,
  deltaSubject,
  H,
  parseVersionSubject,
  TERM_SUBJECT,
  VERSIONS_STREAM,
  VERSIONS_SUBJECTS,
} from './subjects.ts';
import { VersionReader } from './version-reader.ts';
import { asRefusal, ensureStreamReplicas } from './stream-replicas.ts';
import { liftStreamLimits, limitsTakenOffLine } from './stream-limits.ts';

/** Whether version `v` gets a full checkpoint when checkpoints are taken every `every` versions. */
export function isCheckpointVersion(v: number, every: number): boolean {
  return v === 1 || (every > 0 && v % every === 0);
}

/** Most parts one delta may take (VersionPublisherOptions.deltaParts). */
const DEFAULT_DELTA_PARTS = 16;

export interface VersionPublisherOptions {
  readonly nc: NatsConnection;
  /** A full checkpoint every this many versions (and at version 1). Default 50. */
  readonly checkpointEvery?: number;
  /** Checkpoint chunk size; default: half the server's max_payload. */
  readonly chunkBytes?: number;
  /**
   * Most messages of `chunkBytes` one delta may take as parts (default 16: 8 MB at the default
   * max_payload). A delta over one message (a change to a service of thousands of endpoints) goes
   * out in parts; only one over this many forces a checkpoint of its version (an initial sync, a
   * mass change), which every node behind then loads. 1: every oversize delta forces one (before
   * 2026-12-05, when each change of such a service made a checkpoint of the whole cluster).
   */
  readonly deltaParts?: number;
  readonly stream?: string;
  /** Stream retention; 0 = unlimited (default). Old deltas expiring only forces checkpoint jumps. */
  readonly maxAgeMs?: number;
  /**
   * Checkpoints the stream keeps (0, the default here, keeps everything; the planner passes its
   * --versions-keep-checkpoints, default 2). Once this publisher has stored
   * this many more, everything before the oldest kept one is purged: a node needs only the newest
   * checkpoint and the deltas after it, and a behind node loads a checkpoint instead of missing
   * deltas. Without it the stream grew by a whole checkpoint every `checkpointEvery` versions for
   * ever, until JetStream's storage was full and no version reached any node (review4 G2).
   */
  readonly keepCheckpoints?: number;
  /** Signs every message (appliers given the public key drop anything else). */
  readonly signer?: Signer;
  /**
   * The planner group this publisher writes for (--group): its term claims name it, and a claim of
   * another group never fences it (see claimRefusal). Omitted (tests): claims name no group.
   */
  readonly group?: string;
  /** Called for each stored message that is not one of ours (skipped when reading back). */
  readonly onForeign?: (subject: string, reason: string) => void;
  /** Copies of the stream in the NATS cluster (--replicas; default 1). */
  readonly replicas?: number;
  /**
   * Asked before every message is sent: a reason stops the append (a planner that lost its lease
   * sends no further chunk or delta of a version it was publishing). Default: always.
   */
  readonly mayAppend?: () => string | undefined;
  /**
   * A checkpoint's chunks sent before the oldest is acknowledged (default 8; 1: one at a time).
   * Each is still conditional on the one before it (see appendChain).
   */
  readonly pipeline?: number;
  /**
   * Told when the stream had limits of its own that drop or refuse versions (max_bytes, max_msgs,
   * max_msgs_per_subject, max_msg_size, another max_age) and they were taken off (probe17 N1).
   */
  readonly onLimitsReset?: (line: string) => void;
}

export interface PublishResult {
  readonly version: number;
  readonly form: 'delta' | 'checkpoint';
  readonly bytes: number;
  readonly messages: number;
  /** True when the artifact was already in the stream (a republish after a restart). */
  readonly duplicate: boolean;
}

/**
 * Planner side: puts versions on the SB_VERSIONS stream as immutable artifacts.
 *
 * A version counts as published once its delta is stored; its checkpoint (every K versions) goes
 * first, so a delta never names a checkpoint that is not complete. Each message carries
 * Nats-Msg-Id = its subject and the delta also Nats-Expected-Last-Subject-Sequence: 0, so a
 * republish (planner restart, retry after a lost ack) can never store a second copy, even after
 * the dedupe window; the publisher then checks the stored one has the same hash.
 * Numbers are strictly consecutive: publishing N requires N-1 published, so no gaps.
 */
export class VersionPublisher {
  private last = 0;
  private lastCheckpoint = 0;
  /** Checkpoints this process stored, oldest first, with their first chunk's stream sequence. */
  private readonly storedCheckpoints: { readonly version: number; readonly firstSeq: number }[] = [];
  /** The stream sequence everything below which was purged by this process (0: none). */
  private purgedBelow = 0;
  /** The creation time of the stream the two above are about (undefined: not read yet). */
  private streamIdentity: string | undefined;
  /** The newest delta this process stored itself (stream ack, not a duplicate), for target notices. */
  private stored: { readonly version: number; readonly delta: NoticeDelta } | undefined;
  /** The same version as patches (publishNext's `patches`), when this process stored its delta. */
  private storedPatches: { readonly version: number; readonly patch: NoticeDelta } | undefined;
  /** The stream's last sequence as this publisher knows it: every append expects exactly it. */
  private lastSeq = 0;
  /** The term this publisher writes for (0: none claimed; appends are still conditional). */
  private term = 0;
  /** When this publisher claimed its term (ms since the epoch; 0: none claimed). */
  private claimedAt = 0;
  /**
   * Set while rebase() sends: a suffix to every message id. JetStream remembers the ids of
   * messages for its duplicate window even after a limit dropped them, so a copy sent again
   * under the same id was answered "duplicate" and not stored.
   */
  private again: string | undefined;
  /** Counts recover() calls (each claim, each reopen after a lost store): an answer asked before one is void. */
  private recovers = 0;
  /** lacks() asked ahead (askLacksAhead), with the state it was asked in (lacksKey). */
  private lacksAhead: { readonly key: string; readonly answer: Promise<string | undefined> } | undefined;
  private readonly js: JetStreamClient;
  private readonly reader: VersionReader;
  /** The group's key (every planner of a group signs with the same one): checks term claims. */
  private readonly verifier: Verifier | undefined;
  readonly checkpointEvery: number;
  /** See VersionPublisherOptions.deltaParts. */
  private readonly deltaParts: number;

  private constructor(
    private readonly options: VersionPublisherOptions,
    private readonly jsm: JetStreamManager,
    private readonly chunkBytes: number,
  ) {
    this.js = jetstream(options.nc);
    this.deltaParts = Math.max(1, Math.floor(options.deltaParts ?? DEFAULT_DELTA_PARTS));
    const verifier = options.signer ? verifierFromPem(options.signer.publicKeyPem) : undefined;
    this.verifier = verifier;
    // A direct get is answered by any replica of the stream, a frozen one included (its route is
    // not yet known dead): such a read waits out its whole timeout. The reads here are a leader's
    // (its claim, a republish): asked of the stream's leader, and retried after a timeout
    // (claim-step.ts, the publish loop), so a short one costs a retry instead of 5 s while the
    // stream elects one (a frozen server of three: test/ha/frozen-server).
    this.reader = new VersionReader(options.nc, {
      stream: options.stream,
      verifier,
      onRejected: options.onForeign,
      timeoutMs: PUBLISHER_READ_TIMEOUT_MS,
      fromLeader: true,
    });
    this.checkpointEvery = options.checkpointEvery ?? 50;
  }

  /** Ensures the stream exists and learns the last published version from it. */
  static async open(o: VersionPublisherOptions): Promise<VersionPublisher> {
    const jsm = await jetstreamManager(o.nc);
    const chunk = o.chunkBytes ?? Math.floor((o.nc.info?.max_payload ?? 1024 * 1024) / 2);
    const p = new VersionPublisher(o, jsm, chunk);
    await p.ensureStream();
    await p.recover();
    return p;
  }

  lastPublishedVersion(): number {
    return this.last;
  }

  /**
   * Delta `version` as this process stored it (headers, signature and payload), or undefined
   * when it was not stored by this process (a republish found it there) or is a checkpoint-only
   * marker: a target notice carries it so nodes need no second message for the data.
   */
  storedDelta(version: number): NoticeDelta | undefined {
    return this.stored?.version === version ? this.stored.delta : undefined;
  }

  /**
   * Version `version` with its large services as patches (service-patch.ts), when this process
   * stored its delta just now and was given patches for it: a target notice carries it instead
   * of the delta, so each node gets a few endpoints instead of every large entry whole.
   */
  storedPatch(version: number): NoticeDelta | undefined {
    return this.storedPatches?.version === version ? this.storedPatches.patch : undefined;
  }

  lastCheckpointVersion(): number {
    return this.lastCheckpoint;
  }

  /** Whether `version` should also get a checkpoint under this publisher's K. */
  checkpointDue(version: number): boolean {
    return isCheckpointVersion(version, this.checkpointEvery);
  }

  /**
   * Publishes one version: its checkpoint first when due (`data` is only called then, since
   * building the full form is O(cluster)), then its delta. `texts`: JSON.stringify texts the
   * caller already holds for some entries (see EncodeOptions.texts): same bytes, less work.
   */
  async publishNext(a: {
    header: Omit<VersionArtifact, 'form' | 'delta' | 'data'>;
    delta: (VersionArtifact & { form: 'delta' })['delta'];
    data: () => (VersionArtifact & { form: 'checkpoint' })['data'];
    anchor?: string;
    texts?: KnownTexts;
    /** The version's large services as patches (NewVersion.patches), for storedPatch. */
    patches?: readonly ServicePatch[];
  }): Promise<PublishResult[]> {
    const out: PublishResult[] = [];
    const h = a.header as VersionArtifact;
    const delta = { ...strip(h), form: 'delta' as const, delta: a.delta };
    // An oversize delta (an initial sync: the whole cluster) is never encoded: it goes out as a
    // marker naming its checkpoint, and deciding that needs only a prefix of its entries. One
    // over a message but within `deltaParts` of them goes out in parts (artifactMessages).
    const most = deltaBytesLimit(this.chunkBytes, this.deltaParts);
    const deltaBytes = deltaExceeds(delta, most, a.texts) ? undefined : artifactBytes(delta, most);
    if (this.checkpointDue(h.version) || deltaBytes === undefined || deltaBytes.length > most) {
      out.push(
        await this.publishVersion({ ...strip(h), form: 'checkpoint', data: a.data() }, a.anchor, undefined, a.texts),
      );
    }
    // texts again: an oversize delta is decided once more from its entries' texts, not serialised
    const stored = await this.publishVersion(delta, a.anchor, deltaBytes, a.texts);
    out.push(stored);
    // only a delta this process stored itself (not a duplicate, not a marker naming a checkpoint)
    const patch = !stored.duplicate && deltaBytes !== undefined && deltaBytes.length <= most;
    const notice = patch ? patchNotice(delta, a.patches, a.anchor) : undefined;
    this.storedPatches = notice ? { version: h.version, patch: notice } : undefined;
    if (out.length > 1) await this.trim();
    return out;
  }

  /**
   * After a checkpoint's version is published: purges the stream below the oldest checkpoint kept
   * (keepCheckpoints), counting only checkpoints this process stored and knows the sequence of,
   * so it never removes one it has not seen superseded. Purging below a sequence never touches a
   * newer message, so a deposed leader's late purge cannot take the new leader's versions; it is
   * not sent at all once the lease is gone (mayAppend).
   */
  private async trim(): Promise<void> {
    const keep = this.options.keepCheckpoints ?? 0;
    if (keep <= 0 || this.storedCheckpoints.length <= keep) return;
    const oldestKept = this.storedCheckpoints[this.storedCheckpoints.length - keep]!;
    this.storedCheckpoints.splice(0, this.storedCheckpoints.length - keep);
    if (oldestKept.firstSeq <= this.purgedBelow || this.options.mayAppend?.() !== undefined) return;
    await this.jsm.streams.purge(this.stream, { seq: oldestKept.firstSeq });
    this.purgedBelow = oldestKept.firstSeq;
  }

  /** The sequence below which this publisher purged the stream (0: it purged nothing). */
  purgedBelowSeq(): number {
    return this.purgedBelow;
  }

  /**
   * Publishes one version as a base: its checkpoint, then its delta as the checkpoint-only marker
   * naming it, above whatever the stream holds (a gap is allowed). For a stream that lacks
   * versions the planner can no longer rebuild (NATS lost its store after the log was compacted:
   * review2 R8): a node loads a checkpoint-only version without its parent (the applier's
   * checkpoint path), and later versions follow as deltas on top of it.
   */
  async publishBase(a: {
    header: Omit<VersionArtifact, 'form' | 'delta' | 'data'>;
    data: () => (VersionArtifact & { form: 'checkpoint' })['data'];
    anchor?: string;
  }): Promise<PublishResult[]> {
    const h = strip(a.header as VersionArtifact);
    const marker = { ...h, form: 'delta' as const, delta: EMPTY_DELTA };
    if (h.version <= this.last) return [await this.confirmExisting(marker)];
    return [
      await this.publishVersion({ ...h, form: 'checkpoint', data: a.data() }, a.anchor, undefined, undefined, true),
      await this.publishVersion(marker, a.anchor, undefined, undefined, true),
    ];
  }

  /**
   * What the stream lacks of what a node needs to load the last published version (undefined:
   * nothing): that version's delta (or marker), the checkpoint it names and the deltas between.
   * With last 0, a stream that once held messages (its first sequence is past 1) and now holds
   * no version. A limit of JetStream's own with discard old (probe17 N1) drops the oldest
   * messages: taken off later (liftLimits), what it dropped stayed gone, and a node that starts
   * or falls behind answered "version N is not published" for ever. Two stream-info requests
   * listing subjects (no message is read): a checkpoint counts as held when its chunk 0 and every
   * chunk up to the highest held are (a dropped prefix of the stream removes chunk 0 first).
   */
  async lacks(o: { askedAhead?: boolean } = {}): Promise<string | undefined> {
    const ahead = this.lacksAhead;
    this.lacksAhead = undefined;
    if (o.askedAhead && ahead) {
      const answer = await ahead.answer.then(
        (a) => ({ a }),
        () => undefined,
      );
      // void once anything this publisher knows of the stream moved since it was asked: a claim, a
      // reopen (NATS lost its store, the stream was made again), an append or a purge of its own
      if (answer && ahead.key === this.lacksKey()) return answer.a;
    }
    return this.askLacks();
  }

  /**
   * Asks lacks() now, for a new leader's first look (lacks({ askedAhead: true })) while its source
   * lists: the claim fences the stream, so only this publisher appends to it, and the answer holds
   * until what this publisher knows of the stream moves (see lacks). What someone else does to the
   * stream meanwhile (a purge, a limit's drop) is found by the next periodic check, as it is when
   * it happens just after the look. Resolves once answered (never rejects: a failed answer is
   * asked again at the look).
   */
  askLacksAhead(): Promise<void> {
    const key = this.lacksKey();
    const answer = this.askLacks().then((a) => {
      if (this.lacksKey() !== key) throw new Error('the stream moved while asked');
      return a;
    });
    this.lacksAhead = { key, answer };
    return answer.then(
      () => undefined,
      () => undefined,
    );
  }

  /** What lacks() answers from: the stream's identity, its end and versions as this publisher knows them, its term. */
  private lacksKey(): string {
    return `${this.recovers} ${this.streamIdentity} ${this.lastSeq} ${this.last} ${this.lastCheckpoint} ${this.term} ${this.purgedBelow}`;
  }

  private async askLacks(): Promise<string | undefined> {
    const info = await this.jsm.streams.info(this.stream, { subjects_filter: DELTA_SUBJECTS });
    const held = new Set(Object.keys(info.state.subjects ?? {}));
    const last = this.last;
    if (last === 0)
      return info.state.first_seq > 1 && held.size === 0
        ? `every version it held (its messages before sequence ${info.state.first_seq} are gone)`
        : undefined;
    const lost: string[] = [];
    if (!held.has(deltaSubject(last))) lost.push(`version ${last}`);
    const base = Math.min(this.lastCheckpoint, last);
    if (base > 0) {
      const filter = checkpointChunkSubjects(base);
      const prefix = filter.slice(0, -1);
      const cp = await this.jsm.streams.info(this.stream, { subjects_filter: filter });
      const chunks = Object.keys(cp.state.subjects ?? {}).map((s) => Number(s.slice(prefix.length)));
      const top = Math.max(-1, ...chunks);
      if (!chunks.includes(0) || chunks.length !== top + 1) lost.push(`checkpoint ${base}`);
    }
    // a delta in parts needs every part: listed parts of a version from 0 up without a hole (a
    // dropped prefix of the stream takes part 0 first; anything before the checkpoint is not needed)
    const partInfo = await this.jsm.streams.info(this.stream, { subjects_filter: DELTA_PART_SUBJECTS });
    const partsOf = new Map<number, number[]>();
    for (const subject of Object.keys(partInfo.state.subjects ?? {})) {
      const p = parseVersionSubject(subject);
      if (p?.form === 'part' && p.version > base && p.version <= last)
        partsOf.set(p.version, [...(partsOf.get(p.version) ?? []), p.chunk]);
    }
    for (const [v, parts] of [...partsOf].sort(([a], [b]) => a - b))
      if (!parts.includes(0) || parts.length !== Math.max(...parts) + 1) lost.push(`parts of delta ${v}`);
    const gone: number[] = [];
    for (let v = base + 1; v < last; v++) if (!held.has(deltaSubject(v))) gone.push(v);
    if (gone.length > 0)
      lost.push(gone.length === 1 ? `delta ${gone[0]}` : `${gone.length} deltas of versions ${gone[0]}-${gone.at(-1)}`);
    return lost.length > 0 ? `${lost.join(', ')} (what a node needs to load version ${last})` : undefined;
  }

  /**
   * Publishes the newest version again as a base (its checkpoint, then its checkpoint-only marker)
   * when the stream lost what a node needs to load it (lacks()): one checkpoint, whatever the
   * gap, never the versions before it one by one. A delta of it still there (naming a checkpoint
   * that is gone) is purged first, so the marker takes its place; a node that runs the version
   * keeps it (same hash), a node behind loads the checkpoint. Messages go under fresh ids (see
   * `again`). Version `header.version` must be the last published or the next one above.
   */
  async rebase(a: {
    header: Omit<VersionArtifact, 'form' | 'delta' | 'data'>;
    data: () => (VersionArtifact & { form: 'checkpoint' })['data'];
    anchor?: string;
  }): Promise<PublishResult[]> {
    const h = strip(a.header as VersionArtifact);
    if (h.version < this.last)
      throw new Error(`cannot publish version ${h.version} again as a base: the last published is ${this.last}`);
    const refused = this.options.mayAppend?.();
    if (refused) throw new Error(`not appending to ${this.stream}: ${refused}`);
    await this.jsm.streams.purge(this.stream, { filter: deltaSubject(h.version) });
    await this.jsm.streams.purge(this.stream, { filter: deltaPartSubjects(h.version) });
    const before = this.last;
    this.again = `again${this.lastSeq}`;
    // below the version, so that its marker is sent rather than confirmed as already there
    this.last = h.version - 1;
    try {
      const marker = { ...h, form: 'delta' as const, delta: EMPTY_DELTA };
      return [
        await this.publishVersion({ ...h, form: 'checkpoint', data: a.data() }, a.anchor, undefined, undefined, true),
        await this.publishVersion(marker, a.anchor, undefined, undefined, true),
      ];
    } catch (e) {
      this.last = before;
      throw e;
    } finally {
      this.again = undefined;
    }
  }

  /**
   * `encoded`: the artifact already serialized (artifactBytes), so a version is encoded once;
   * undefined for a delta lets encodeArtifact find it oversize without encoding it. `texts`: see
   * publishNext. `base`: see publishBase (the delta goes out as a marker, above a gap).
   */
  async publishVersion(
    a: VersionArtifact,
    anchor = '',
    encoded?: Uint8Array,
    texts?: KnownTexts,
    base = false,
  ): Promise<PublishResult> {
    if (a.form === 'delta') {
      if (a.version <= this.last) return this.confirmExisting(a);
      if (a.version !== this.last + 1 && !base)
        throw new Error(
          `cannot publish version ${a.version}: last published is ${this.last} (publish ${this.last + 1} first)`,
        );
      if (a.parent !== a.version - 1)
        throw new Error(`delta ${a.version} must have parent ${a.version - 1}, got ${a.parent}`);
    } else if (a.version > this.last + 1 && !base) {
      throw new Error(`cannot publish checkpoint ${a.version}: last published is ${this.last}`);
    }
    if (base && a.form === 'delta' && this.lastCheckpoint !== a.version)
      throw new Error(`base version ${a.version}: publish its checkpoint first`);
    // a checkpoint's chunks are encoded as they are sent (artifactMessages): at most `pipeline` held,
    // each written into the buffer of one the stream acknowledged (ChunkBuffers)
    const buffers = a.form === 'checkpoint' ? new ChunkBuffers() : undefined;
    const msgs = artifactMessages(
      a,
      {
        chunkBytes: this.chunkBytes,
        baseCheckpoint: this.lastCheckpoint,
        anchor,
        texts,
        checkpointOnly: base,
        deltaParts: this.deltaParts,
        chunkBuffer: buffers?.take,
      },
      encoded,
    );
    let bytes = 0;
    let messages = 0;
    const outgoing = (function* (p: VersionPublisher): Generator<Outgoing> {
      for (const m of msgs) {
        messages++;
        bytes += m.payload.length;
        yield p.outgoing(m, a, anchor);
      }
    })(this);
    if (a.form === 'checkpoint') {
      // every chunk's append expects the stream's last sequence: the first new one is the next
      const firstSeq = this.lastSeq + 1;
      const { duplicate } = await this.appendChunks(outgoing, buffers);
      this.lastCheckpoint = Math.max(this.lastCheckpoint, a.version);
      if (!duplicate) this.storedCheckpoints.push({ version: a.version, firstSeq });
      return { version: a.version, form: a.form, bytes, messages, duplicate };
    }
    // a delta is one message, or its parts and then that message (no payload: it names them)
    let duplicate = false;
    let first: Outgoing | undefined;
    const all = [...outgoing];
    const parts = all.slice(0, -1);
    if (parts.length > 0) {
      // like a checkpoint's chunks: each conditional on the one before, a stored one deduped by
      // its content-qualified id; the delta message below names them only once all are stored
      const stored = await this.appendChunks(parts);
      duplicate = stored.duplicate;
    }
    for (const m of all.slice(-1)) {
      first ??= m;
      try {
        const ack = await this.append(m.subject, m.payload, m.msgID, natsHeadersOf(m.headers, m.term), 0);
        duplicate ||= ack.duplicate;
      } catch (e) {
        if (!(e instanceof JetStreamApiError && e.code === 10071)) throw e;
        // The subject already holds something: our own earlier publish, or foreign messages.
        const mine = await this.reader.delta(a.version);
        if (mine.ok || mine.checkpointOnly) {
          this.last = a.version;
          this.stored = undefined;
          return this.confirmExisting(a);
        }
        const lastOnSubject = await this.jsm.streams.getMessage(this.stream, { last_by_subj: m.subject });
        await this.append(m.subject, m.payload, m.msgID, natsHeadersOf(m.headers, m.term), lastOnSubject?.seq ?? 0);
      }
    }
    this.last = a.version;
    this.stored =
      !duplicate && first && first.payload.length > 0
        ? { version: a.version, delta: { headers: first.headers, payload: textDecoder.decode(first.payload) } }
        : undefined;
    return { version: a.version, form: a.form, bytes, messages, duplicate };
  }

  /** One encoded message as it is sent: signed (when a signer is set), stamped with the term. */
  private outgoing(m: EncodedMessage, a: VersionArtifact, anchor: string): Outgoing {
    const headers: Record<string, string> = { ...m.headers };
    let msgID = m.msgId;
    if (this.options.signer) {
      const sig = this.options.signer.sign(
        artifactStatement({
          subject: m.subject,
          version: a.version,
          parent: a.parent,
          hash: a.hash,
          anchor,
          payload: m.payload,
        }),
      );
      headers[H.sig] = sig;
      // Ed25519 is deterministic, so a retry dedupes; no one without the key can pre-empt the id.
      msgID = `${m.subject}:${sig.slice(0, 24)}`;
    }
    if (this.again) msgID = `${msgID}:${this.again}`;
    // the term header is not signed (nor part of what a target notice carries)
    const term = this.term ? String(this.term) : undefined;
    return { subject: m.subject, payload: m.payload, msgID, headers, term };
  }

  /**
   * A checkpoint's chunks, `pipeline` in flight at once, each conditional on the one before it
   * (appendChain): a stale leader is fenced as when each waited for the previous one's ack, and a
   * chunk stored by an earlier attempt dedupes. The caller appends the delta, which names the
   * checkpoint, only once every chunk is stored: a partial checkpoint is never a version.
   */
  private appendChunks(chunks: Iterable<Outgoing>, buffers?: ChunkBuffers): Promise<{ duplicate: boolean }> {
    const mayAppend = this.options.mayAppend;
    return appendChain(chunks, {
      acked: buffers && ((m) => buffers.giveBack(m.payload)),
      width: this.options.pipeline ?? DEFAULT_PIPELINE,
      lastSeq: () => this.lastSeq,
      stored: (seq) => {
        this.lastSeq = seq;
      },
      send: (m, expect) =>
        this.js.publish(m.subject, m.payload, {
          msgID: m.msgID,
          headers: natsHeadersOf(m.headers, m.term),
          expect: { streamName: this.stream, ...expect },
        }),
      alone: (m) => this.append(m.subject, m.payload, m.msgID, natsHeadersOf(m.headers, m.term)),
      mayAppend:
        mayAppend &&
        (() => {
          const refused = mayAppend();
          return refused && `not appending to ${this.stream}: ${refused}`;
        }),
    });
  }

  /**
   * Appends one message conditionally on the stream's last sequence (and, when given, the
   * subject's). When the stream moved under us, the messages since are looked at: another
   * leader's term claim or artifact is a fence (StaleLeaderError, nothing retried); anything
   * else is foreign (a core publish on our subjects) and is stepped over.
   */
  private async append(
    subject: string,
    payload: Uint8Array,
    msgID: string,
    h: MsgHdrs,
    lastSubjectSequence?: number,
  ): Promise<PubAck> {
    for (;;) {
      const refused = this.options.mayAppend?.();
      if (refused) throw new Error(`not appending to ${this.stream}: ${refused}`);
      try {
        const ack = await this.js.publish(subject, payload, {
          msgID,
          headers: h,
          expect: {
            streamName: this.stream,
            lastSequence: this.lastSeq,
            ...(lastSubjectSequence !== undefined ? { lastSubjectSequence } : {}),
          },
        });
        if (!ack.duplicate) this.lastSeq = ack.seq;
        return ack;
      } catch (e) {
        if (!(e instanceof JetStreamApiError && e.code === 10071) || !(await this.stepOverForeign())) throw e;
      }
    }
  }

  /**
   * False when the stream did not move (the subject-level expectation failed: the caller's case);
   * true after stepping over foreign messages; throws StaleLeaderError when another leader wrote.
   */
  private async stepOverForeign(): Promise<boolean> {
    const info = await this.jsm.streams.info(this.stream);
    const end = info.state.last_seq;
    if (end <= this.lastSeq) return false;
    for (let seq = Math.max(this.lastSeq + 1, info.state.first_seq); seq <= end; seq++) {
      let m;
      try {
        m = await this.jsm.streams.getMessage(this.stream, { seq });
      } catch (e) {
        if (e instanceof JetStreamApiError && e.code === 10037) continue; // deleted
        throw e;
      }
      if (!m) continue;
      const theirTerm = Number(m.header?.get(H.term) ?? 0);
      // Only a newer leader fences this one. Anyone allowed to publish on the subjects can store
      // a message (one core publish of {"term":1} deposed the leader for a lease TTL before), so a
      // claim counts only for a higher term and, where the group signs, with the group's
      // signature; a genuine version counts only as a newer term's next version, not a copy of
      // one already published (its Sb-Term header is outside the signature).
      if (m.subject === TERM_SUBJECT) {
        const claim = parseTermClaim(m.data);
        const why = claim ? await this.claimRefusal(claim) : 'not a term claim';
        if (why === undefined)
          throw new StaleLeaderError(
            `versions stream claimed by planner ${claim!.id} in term ${claim!.term}${claim!.group ? ` of group ${claim!.group}` : ''} (this planner's term: ${this.term})`,
          );
        if (why !== OWN_CLAIM) this.options.onForeign?.(m.subject, why);
        continue;
      }
      const parsed = parseVersionSubject(m.subject);
      const genuine =
        parsed &&
        this.reader.genuine({ subject: m.subject, data: m.data, header: (k) => m.header.get(k) }, parsed.version) ===
          undefined;
      if (genuine && theirTerm > this.term && parsed.version > this.last)
        throw new StaleLeaderError(
          `version ${parsed.version} was published in term ${theirTerm} (this planner's term: ${this.term})`,
        );
      if (genuine && theirTerm === this.term) continue; // ours: an append whose answer was lost
      if (genuine && theirTerm) {
        this.options.onForeign?.(m.subject, `a copy of version ${parsed.version} with term ${theirTerm}`);
        continue;
      }
      this.options.onForeign?.(m.subject, genuine ? 'published by another planner without a term' : 'not one of ours');
    }
    this.lastSeq = end;
    return true;
  }

  /**
   * Why a term claim found after this publisher's position does not fence it; undefined: it does.
   * A lower term fences too when it was claimed after this one: after NATS lost its store, terms
   * restart at 1 (docs/ha.md), and that new leader must still fence this one; a copy of an old
   * claim carries its old time.
   *
   * Terms are the revisions of each group's own lease bucket, and planners of several groups may
   * share a key and this stream, so a claim counts only for this publisher's group (probe5 H5:
   * another group's claim, signed with the same key, fenced this group's leader). A claim names
   * its group, signed (`groupSig`); a claim naming none is the release before's form (a group
   * mid-way through a rolling upgrade writes it) and counts only where it cannot be another
   * group's: this NATS account holds no lease bucket but this group's. Every group's planner
   * opens its lease bucket before it can win a term, so another group that claimed here is seen.
   */
  private async claimRefusal(c: TermClaim): Promise<string | undefined> {
    const group = this.options.group;
    if (group !== undefined && c.group !== undefined && c.group !== group)
      return `a term claim of another group (${c.group}, term ${c.term})`;
    if (c.term === this.term) return OWN_CLAIM;
    const signed =
      c.group !== undefined
        ? c.groupSig && this.verifier?.verify(groupTermClaimStatement({ ...c, group: c.group }), c.groupSig)
        : c.sig && this.verifier?.verify(termClaimStatement(c), c.sig);
    if (this.verifier && !signed) return `a term claim for term ${c.term} not signed by the group's key`;
    if (group !== undefined && c.group === undefined) {
      const others = (await leaseGroups(this.jsm)).filter((g) => g !== group);
      if (others.length > 0)
        return `a term claim naming no group (term ${c.term}, the release before's form) while this NATS account also holds the leases of ${others.join(', ')}: it may be theirs`;
    }
    if (c.term < this.term && !(Date.parse(c.at) > this.claimedAt))
      return `a term claim for an older term (${c.term}, at ${c.at}) made before this planner's (term ${this.term})`;
    return undefined;
  }

  /**
   * Claims the stream for a new leader's term: learns the stream's end and last version afresh,
   * then appends the term claim conditionally on that end. Fails with StaleLeaderError when a
   * newer term has claimed it meanwhile.
   */
  async claim(term: number, id: string): Promise<void> {
    await this.ensureStream();
    await this.recover();
    this.term = term;
    const h = natsHeaders();
    h.set(H.term, String(term));
    const at = new Date().toISOString();
    this.claimedAt = Date.parse(at);
    const group = this.options.group;
    // `sig` (no group) is what planners of the release before check: kept during a rolling upgrade.
    const sig = this.options.signer?.sign(termClaimStatement({ term, id, at }));
    const groupSig =
      group !== undefined ? this.options.signer?.sign(groupTermClaimStatement({ group, term, id, at })) : undefined;
    const body = new TextEncoder().encode(
      JSON.stringify({
        term,
        id,
        at,
        ...(sig ? { sig } : {}),
        ...(group !== undefined ? { group } : {}),
        ...(groupSig ? { groupSig } : {}),
      }),
    );
    await this.append(TERM_SUBJECT, body, `${TERM_SUBJECT}:${term}`, h);
  }

  private get stream(): string {
    return this.options.stream ?? VERSIONS_STREAM;
  }

  private async confirmExisting(a: VersionArtifact & { form: 'delta' }): Promise<PublishResult> {
    const got = await this.reader.delta(a.version);
    if (!got.ok && got.checkpointOnly) {
      if (got.checkpointOnly.hash !== a.hash)
        throw new Error(
          `version ${a.version} was already published with hash ${got.checkpointOnly.hash.slice(0, 12)}, not ${a.hash.slice(0, 12)}`,
        );
      return { version: a.version, form: 'delta', bytes: 0, messages: 0, duplicate: true };
    }
    if (!got.ok)
      throw new Error(`version ${a.version} is below the last published (${this.last}) but unreadable: ${got.error}`);
    if (got.value.hash !== a.hash)
      throw new Error(
        `version ${a.version} was already published with hash ${got.value.hash.slice(0, 12)}, not ${a.hash.slice(0, 12)}`,
      );
    return { version: a.version, form: 'delta', bytes: 0, messages: 0, duplicate: true };
  }

  private async ensureStream(): Promise<void> {
    const cfg = {
      name: this.stream,
      subjects: [VERSIONS_SUBJECTS],
      allow_direct: true,
      duplicate_window: 2 * 60 * 1_000_000_000,
      max_age: (this.options.maxAgeMs ?? 0) * 1_000_000,
      num_replicas: this.options.replicas ?? 1,
    };
    let info: StreamInfo | undefined;
    try {
      info = await this.jsm.streams.info(this.stream);
    } catch (e) {
      if (!(e instanceof JetStreamApiError) || e.code !== 10059) throw e; // 10059: stream not found
      try {
        await this.jsm.streams.add(cfg);
      } catch (err) {
        throw asRefusal(this.options.nc, cfg.num_replicas, err);
      }
    }
    if (info) await this.liftLimits(info);
    await ensureStreamReplicas(this.options.nc, this.jsm, this.stream, cfg.num_replicas);
  }

  /**
   * Takes off limits given to the stream since it was opened (see liftLimits): a leader checks
   * now and then and after a refused publish, as an edit while it leads is otherwise found at the
   * next claim only. Returns what it took off (undefined: nothing).
   */
  async checkLimits(): Promise<string | undefined> {
    return this.liftLimits(await this.jsm.streams.info(this.stream));
  }

  /**
   * Takes off limits the stream was given by someone else (liftStreamLimits): the publisher trims
   * the stream itself (keepCheckpoints), and a limit of JetStream's own drops what nodes still
   * need or refuses what they need next. With max_bytes and discard old the stream dropped every
   * version as it was stored, the planner saying all was well while a restarted node answered
   * "version N is not published"; with discard new every publish failed with "maximum bytes
   * exceeded" (probe17 N1). Checked whenever the stream is opened or claimed.
   */
  private async liftLimits(info: StreamInfo): Promise<string | undefined> {
    const what = await liftStreamLimits(
      this.jsm,
      this.stream,
      { maxAge: (this.options.maxAgeMs ?? 0) * 1_000_000 },
      info,
    );
    if (what) this.options.onLimitsReset?.(limitsTakenOffLine('versions', this.stream, what));
    return what;
  }

  /**
   * The stream's last message says where we are: a delta N means N is published; a checkpoint
   * chunk of N means a planner died mid-version, so N-1 is the last one and N will be redone.
   */
  private async recover(): Promise<void> {
    this.recovers++;
    const info = await this.jsm.streams.info(this.stream);
    if (this.streamIdentity !== undefined && info.created !== this.streamIdentity) {
      // Made again (NATS lost its store, or the stream was deleted): the checkpoints stored and the
      // sequence purged below were the old stream's. Kept, they made trim() purge the NEW stream
      // below an old sequence while the republish refilled it, its checkpoints included (probe13 R3).
      this.storedCheckpoints.length = 0;
      this.purgedBelow = 0;
      this.stored = undefined;
    }
    this.streamIdentity = info.created;
    this.last = 0;
    this.lastCheckpoint = 0;
    this.lastSeq = info.state.last_seq;
    if (info.state.messages === 0) return;
    const lastDelta = await this.lastGenuine(info.state.first_seq, info.state.last_seq);
    this.last = lastDelta;
    if (lastDelta === 0) return;
    const d = await this.reader.delta(lastDelta);
    if (!d.ok && !d.checkpointOnly)
      // the request's error as the cause: a timeout (a stream replica that does not answer) is
      // transient, and a new leader's claim retries it (claim-step.ts; a frozen server: it gave
      // the term up before)
      throw new Error(`stream ${this.stream}: cannot read delta ${lastDelta}: ${d.error}`, { cause: d.cause });
    // An incomplete checkpoint of N is simply not named by any delta; N's republish completes it.
    this.lastCheckpoint = d.ok ? d.baseCheckpoint : lastDelta;
  }

  /**
   * The version of the newest genuine artifact message, walking back from the stream's end over
   * anything foreign (a core publish on our subjects, a consumer delivering into them): garbage
   * on the bus never stops a planner start. A delta N means N is published; a checkpoint chunk of
   * N means a planner died mid-version, so N-1 is the last one and N will be redone.
   */
  private async lastGenuine(firstSeq: number, lastSeq: number): Promise<number> {
    for (let seq = lastSeq; seq >= firstSeq && seq > 0; seq--) {
      let m;
      try {
        m = await this.jsm.streams.getMessage(this.stream, { seq });
      } catch (e) {
        if (e instanceof JetStreamApiError && e.code === 10037) continue; // deleted message
        throw e;
      }
      if (!m || m.subject === TERM_SUBJECT) continue;
      const parsed = parseVersionSubject(m.subject);
      const fault = parsed
        ? this.reader.genuine({ subject: m.subject, data: m.data, header: (k) => m.header.get(k) }, parsed.version)
        : 'not a version subject';
      if (fault === undefined && parsed) {
        if (parsed.form === 'delta') return parsed.version;
        // A checkpoint chunk or delta part of N: a planner died before N's delta. N-1 is the last version,
        // unless N was a base above a gap (publishBase): then it is the newest delta before N's
        // chunks, which this walk goes on to find.
        const before = parsed.version - 1;
        if (before === 0) return 0;
        const d = await this.reader.delta(before);
        if (d.ok || d.checkpointOnly) return before;
        seq -= parsed.chunk; // chunk (part) i is i messages after chunk (part) 0
        continue;
      }
      this.options.onForeign?.(m.subject, fault ?? 'unknown');
    }
    return 0;
  }

  /** After NATS lost its store (or the stream was deleted): recreate it and start over at 0. */
  async reopen(): Promise<void> {
    await this.ensureStream();
    await this.recover();
  }

  /** The stream's identity (its creation time): it changes when NATS lost its store. */
  async streamCreated(): Promise<string | undefined> {
    try {
      return (await this.jsm.streams.info(this.stream)).created;
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === 10059) return undefined;
      throw e;
    }
  }
}

const textDecoder = new TextDecoder();

/** A base version's delta is never encoded (it goes out as a checkpoint-only marker). */
const EMPTY_DELTA = { upsertServices: [], removeServices: [], upsertNodes: [], removeNodes: [] };

/** A leader's direct gets of its own stream's messages: one message, answered in ms by a live replica. */
const PUBLISHER_READ_TIMEOUT_MS = 1500;

/** Checkpoint chunks in flight at once by default (8 × 512 KiB held at most). */
const DEFAULT_PIPELINE = 8;

/** A message ready to send: `headers` signed ones (what a target notice carries), `term` added on the wire. */
interface Outgoing {
  readonly subject: string;
  readonly payload: Uint8Array;
  readonly msgID: string;
  readonly headers: Record<string, string>;
  readonly term: string | undefined;
}

/** Fresh headers per send: the client adds its expectation headers to the object it is given. */
function natsHeadersOf(headers: Readonly<Record<string, string>>, term?: string): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(headers)) h.set(k, v);
  if (term) h.set(H.term, term);
  return h;
}

const OWN_CLAIM = "this planner's own term claim";

interface TermClaim {
  readonly term: number;
  readonly id: string;
  readonly at: string;
  /** Over termClaimStatement (no group): the release before's form, which its planners check. */
  readonly sig: string | undefined;
  /** Undefined: a claim of the release before, which names no group. */
  readonly group: string | undefined;
  /** Over groupTermClaimStatement. */
  readonly groupSig: string | undefined;
}

function parseTermClaim(data: Uint8Array): TermClaim | undefined {
  try {
    const v = JSON.parse(textDecoder.decode(data)) as Record<string, unknown>;
    if (!Number.isSafeInteger(v.term) || typeof v.id !== 'string') return undefined;
    const text = (x: unknown) => (typeof x === 'string' ? x : undefined);
    return {
      term: v.term as number,
      id: v.id,
      at: text(v.at) ?? '',
      sig: text(v.sig),
      group: text(v.group),
      groupSig: text(v.groupSig),
    };
  } catch {
    return undefined;
  }
}

function strip(h: VersionArtifact): {
  version: number;
  parent: number;
  hash: string;
  reason: string;
  createdAt: string;
} {
  return { version: h.version, parent: h.parent, hash: h.hash, reason: h.reason, createdAt: h.createdAt };
}
