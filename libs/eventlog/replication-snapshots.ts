import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { JetStreamManager, MsgRequest } from '@nats-io/jetstream';
import { Base64UrlPaddedCodec, Objm, type ObjectInfo, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { rowCount, type LogPosition, type RawRow, type RowBatch } from './log-rows.ts';
import type { RowSlice } from './log-row-slices.ts';
import { parseBatch } from './replication-codec.ts';
import {
  LineSplitter,
  SNAPSHOT_TEXT_FORMAT,
  SnapshotTextReader,
  SnapshotTextWriter,
} from './replication-snapshot-text.ts';

/**
 * Snapshots of a group's log, so the log stream need not keep every batch forever: the leader
 * (at intervals that grow with the log, see snapshotIfDue) writes the whole log as of an
 * acknowledged stream seq S (one gzipped batch from the log's anchors, one row per line:
 * replication-snapshot-text.ts) as object `seq-S` in a JetStream object store (same replicas as
 * the stream), then trims the stream below the previous snapshot's seq and deletes all but the two
 * newest snapshots. So the stream always holds every batch since the second newest snapshot: a
 * replica that lags less than one snapshot interval reads only the stream, one further behind (or a
 * new one) starts from the newest snapshot whose seq the retained stream continues. Snapshots are
 * named by seq, never replaced, so a deposed leader writing a late snapshot adds an older one,
 * which nobody picks; and it is the group's log as of S all the same (rows the group acknowledged).
 *
 * Written and read as streams (review4 G4): the writer pulls the log in slices from a connection
 * of its own (log-row-slices.ts) as the object store takes chunks, gzipped by a CompressionStream
 * (zlib's thread pool); the reader gunzips and parses line by line. Listed and read without a
 * consumer (objects(), chunks(): message gets; P21-4), so no reader leaves one on the server. An
 * object becomes visible only with its metadata, which the object store publishes after the last
 * chunk: a write that fails or is abandoned half way purges its chunks, and one whose process dies
 * leaves only unnamed chunks.
 *
 * Signed (probe10 H11's class, for snapshots): a replica far behind (or new) takes the newest
 * snapshot as its whole log, so whoever may write the bucket gave it another history. With the
 * group's key the metadata carries `sig` over logSnapshotStatement (libs/bus/planner-signature.ts:
 * group, seq, term, rows, format and the object store's SHA-256 digest of the stored bytes, which
 * the reader checks the chunks against before the data stream ends), and a reader refuses
 * an object whose `sig` is missing or does not verify, in one line naming it, and tries the next
 * older one. The digest is known only once the last chunk is sent (the text is streamed), and the
 * metadata is given to `put` before the first: so the object is put under a name no reader takes
 * (`writing-seq-S`), then renamed to `seq-S` with its signed metadata (one meta write; the old
 * name's meta is purged). Signing a hash of the text computed while writing would need the same
 * late metadata, and the store's own digest is what a reader gets checked for free.
 *
 * A writer killed between the put and the rename leaves a `writing-seq-S` object: no reader takes
 * it (only `seq-S` names are listed as snapshots), and the next write removes every one up to its
 * own seq before it puts its own. One killed inside the rename (the object store publishes the
 * new name's metadata, then purges the old name's) leaves `writing-seq-S` and `seq-S` naming the
 * same chunks: deleting the `writing-` object would purge them under the signed snapshot (and a
 * put over that name would too), so only its name is purged, which is the rename finished.
 * `writing-` objects past the writer's seq (none a writer of this group makes: seqs only grow)
 * are left alone.
 */
export interface Snapshot {
  readonly streamSeq: number;
  readonly term: number;
  readonly batch: RowBatch;
}

/** What this file reads of an object's metadata (the object store's ObjectInfo, as the bucket holds it). */
type StoredObject = Pick<ObjectInfo, 'name' | 'nuid' | 'chunks' | 'size' | 'digest' | 'metadata' | 'options'>;

const NAME = /^seq-(\d+)$/;
/** An object put but not yet signed and named (see above): no reader takes it. */
const WRITING = /^writing-seq-(\d+)$/;
const KEEP = 2;
/** A chunks' nuid as the object store makes it (one subject token: a marker naming `>` purges no other object's chunks). */
const NUID = /^[A-Za-z0-9]+$/;

/** What a snapshot's signature covers, less the group the replicator adds (logSnapshotStatement). */
export interface SnapshotSigned {
  readonly seq: number;
  readonly term: number;
  readonly rows: string;
  readonly format: string;
  /** The object store's digest of the stored (gzipped) bytes, as it names it (`SHA-256=…`). */
  readonly digest: string;
}
/** Signs a snapshot; the store passes it when it has a key. */
export type SnapshotSign = (s: SnapshotSigned) => string;
/** Why a snapshot is not the group's leader's (undefined: it is); `sig` as its metadata has it. */
export type SnapshotCheck = (s: SnapshotSigned, sig: string | undefined) => string | undefined;

export function snapshotBucket(group: string): string {
  return `sb_logsnap_${group.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export interface SnapshotSource {
  readonly streamSeq: number;
  readonly term: number;
  /** The position the snapshot ends at (rowCount of it goes in the object's metadata `rows`). */
  readonly to: LogPosition;
  /** The informer resume points as of `to` (the flushed batch's). */
  readonly resumePoints: readonly RawRow[];
  /** The whole log as of `to` (EventLog.wholeSlices), pulled as the object store takes it. */
  readonly slices: AsyncIterable<RowSlice>;
  /**
   * Whether the writer still leads the term it snapshots for: asked before each slice, so a
   * deposed leader stops (its chunks purged) instead of finishing; when it no longer leads once
   * the object is stored, it leaves trimming to the new leader.
   */
  readonly leading: () => boolean;
}

export class SnapshotStore {
  private constructor(
    private readonly os: ObjectStore,
    private readonly bucket: string,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly maxLineBytes: number | undefined,
    private readonly signing: { sign?: SnapshotSign; check?: SnapshotCheck; say: (line: string) => void },
    /** Whether the bucket's stream answers direct gets (allow_direct). */
    private readonly direct: boolean,
  ) {}

  static async open(o: {
    nc: NatsConnection;
    jsm: JetStreamManager;
    group: string;
    stream: string;
    replicas: number;
    /** The longest line a reader makes into one string (tests; default V8's longest string). */
    maxLineBytes?: number;
    /** Signs what it writes (the group's key; absent: unsigned, as before). */
    sign?: SnapshotSign;
    /** Refuses what the group's leader did not sign (absent: nothing is checked, as before). */
    check?: SnapshotCheck;
    /** Gets the line for each snapshot refused. */
    say?: (line: string) => void;
  }): Promise<SnapshotStore> {
    const bucket = snapshotBucket(o.group);
    const os = await new Objm(o.nc).create(bucket, { replicas: o.replicas });
    const direct = (await o.jsm.streams.info(`OBJ_${bucket}`)).config.allow_direct === true;
    return new SnapshotStore(
      os,
      bucket,
      o.jsm,
      o.stream,
      o.maxLineBytes,
      {
        ...(o.sign ? { sign: o.sign } : {}),
        ...(o.check ? { check: o.check } : {}),
        say: o.say ?? (() => {}),
      },
      direct,
    );
  }

  /** Snapshot seqs held (signed by the group's key, with one), newest first. */
  async seqs(): Promise<number[]> {
    return (await this.held()).filter((s) => s.refused === undefined).map((s) => s.seq);
  }

  /**
   * The objects the bucket names, deleted ones left out (the object store's list() without its
   * consumer, P21-4): the metadata subjects from the stream's per-subject counts (one stream-info
   * request, paged by the client), then each one's last message (STREAM.MSG.GET). list() makes an
   * ordered push consumer per call that nobody deletes: file-stored, it outlived the listing by
   * its 5 min inactive threshold, and every nats-server restart made it again with a fresh clock,
   * so with NATS restarted more often than that each role change's listing stayed for good.
   */
  private async objects(): Promise<StoredObject[]> {
    return (await this.metadata()).live;
  }

  /**
   * The bucket's metadata subjects' last messages: the objects (`live`) and the deletion markers
   * (`deleted`: what the object store's delete leaves, with the marker's stream seq), asked 32 at a time.
   */
  private async metadata(): Promise<{ live: StoredObject[]; deleted: DeletedMarker[] }> {
    const prefix = `$O.${this.bucket}.M.`;
    const stream = `OBJ_${this.bucket}`;
    const s = await this.jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
    const subjects = Object.keys(s.state.subjects ?? {}).filter((subj) => subj.startsWith(prefix));
    const live: StoredObject[] = [];
    const deleted: DeletedMarker[] = [];
    for (let at = 0; at < subjects.length; at += 32) {
      const batch = subjects.slice(at, at + 32);
      const held = await Promise.all(batch.map((subj) => this.jsm.streams.getMessage(stream, { last_by_subj: subj })));
      held.forEach((m, k) => {
        if (!m) return; // purged since the counts (a rename's old name, a deletion marker swept)
        const o = metadataOf(m.data);
        if (o?.deleted) deleted.push({ subject: batch[k] as string, seq: m.seq, nuid: o.deleted.nuid });
        else if (o) live.push(o);
      });
    }
    return { live, deleted };
  }

  /**
   * Removes what deleted objects left: each deletion marker (the object store's delete publishes
   * it, then purges the chunks, and the marker stayed for good: a subject per snapshot ever
   * dropped, listed at every listing). The chunks are purged again first (a delete cut short
   * between its two steps left them), unless a live object names them (two names on the same
   * chunks: a rename cut short, whose other name the delete already emptied); then the marker,
   * only up to its own seq, so metadata a put published on that name since stays. Cut short here,
   * a marker stays (still saying deleted) and the next sweep takes it; a missing marker means
   * gone to every reader (what a rename leaves of the old name), this release's and older ones.
   */
  private async sweep(m: { live: StoredObject[]; deleted: DeletedMarker[] }): Promise<void> {
    if (m.deleted.length === 0) return;
    const stream = `OBJ_${this.bucket}`;
    const s = await this.jsm.streams.info(stream, { subjects_filter: `$O.${this.bucket}.C.>` });
    const held = new Set(Object.keys(s.state.subjects ?? {})); // chunk subjects (the kept objects' and a cut-short delete's)
    for (const d of m.deleted) {
      const chunks = `$O.${this.bucket}.C.${d.nuid}`;
      if (NUID.test(d.nuid) && held.has(chunks) && !m.live.some((o) => o.nuid === d.nuid))
        await this.jsm.streams.purge(stream, { filter: chunks });
      await this.jsm.streams.purge(stream, { filter: d.subject, seq: d.seq + 1 });
    }
  }

  /**
   * The object's data, read chunk by chunk with message gets (`next_by_subj` from the last chunk's
   * seq): no consumer, so nothing outlives the read, whatever ends it (P21-4: the object store's
   * get() makes an ordered push consumer that stays as its list() did). Errors the stream when a
   * chunk is gone before it is read (deleted or replaced meanwhile) and when the data is not the
   * one the metadata's digest names (checked as the last chunk arrives, as get() does).
   *
   * Direct gets where the stream allows them (the object store makes its streams so): raw
   * payloads from any replica, 0.3-0.5 × get()'s time for 64 MB on loopback, where the leader's
   * STREAM.MSG.GET (base64 in JSON) took 1.1-1.8 ×. A replica behind the leader may not hold a
   * chunk yet (the leader is asked then), and a frozen one answers nothing (after its timeout the
   * rest of the read asks the leader).
   */
  private chunks(info: StoredObject, what: string): ReadableStream<Uint8Array> {
    const stream = `OBJ_${this.bucket}`;
    const subject = `$O.${this.bucket}.C.${info.nuid}`;
    const jsm = this.jsm;
    let direct = this.direct;
    const next = async (seq: number) => {
      if (direct) {
        try {
          const m = await jsm.direct.getMessage(stream, { seq, next_by_subj: subject });
          if (m) return m;
        } catch {
          direct = false;
        }
      }
      // next_by_subj: STREAM.MSG.GET has it since nats-server 2.9; the client's type names seq and last_by_subj only
      return jsm.streams.getMessage(stream, { seq, next_by_subj: subject } as unknown as MsgRequest);
    };
    const hash = createHash('sha256');
    let seq = 0;
    let read = 0;
    let bytes = 0;
    return new ReadableStream<Uint8Array>({
      async pull(c) {
        if (read === info.chunks) {
          const want = Buffer.from(info.digest.replace(/^SHA-256=/, ''), 'base64url');
          if (bytes !== info.size || !hash.digest().equals(want))
            throw new Error(
              `${what}: its data is not what its metadata's digest and size name (corrupt, or replaced while read)`,
            );
          c.close();
          return;
        }
        const m = await next(seq + 1);
        if (!m)
          throw new Error(`${what}: chunk ${read + 1} of ${info.chunks} is gone (deleted or replaced while read)`);
        seq = m.seq;
        read++;
        bytes += m.data.length;
        hash.update(m.data);
        c.enqueue(m.data);
      },
    });
  }

  /**
   * Snapshots held with the rows each covers (metadata `rows`; NaN when absent), newest first, and
   * why one is not the group's leader's (its signature; checked from the listing's metadata).
   */
  private async held(): Promise<{ seq: number; rows: number; refused: string | undefined }[]> {
    const list = await this.objects();
    return list
      .map((i) => ({ i, seq: Number(NAME.exec(i.name)?.[1] ?? NaN) }))
      .filter((s) => Number.isSafeInteger(s.seq))
      .map(({ i, seq }) => ({ seq, rows: Number(i.metadata?.rows ?? NaN), refused: this.refusal(seq, i) }))
      .sort((a, b) => b.seq - a.seq);
  }

  /**
   * Why the object's data is not all there (undefined: it is): a limit someone gave the object
   * store's stream (max_bytes with discard old, probe17) dropped its first chunks while its
   * metadata stayed, and the client's read of it then waited for ever for chunks that are gone.
   */
  private async lostChunks(info: StoredObject): Promise<string | undefined> {
    if (info.chunks === 0) return undefined;
    const subject = `$O.${this.bucket}.C.${info.nuid}`;
    const s = await this.jsm.streams.info(`OBJ_${this.bucket}`, { subjects_filter: subject });
    const held = s.state.subjects?.[subject] ?? 0;
    return held >= info.chunks
      ? undefined
      : `${held} of its ${info.chunks} chunks are held (dropped by a limit on stream OBJ_${this.bucket}?)`;
  }

  /** Why object `seq-S` (its info) is not signed by the group's key; undefined when it is, or nothing is checked. */
  private refusal(seq: number, info: StoredObject): string | undefined {
    const m = info.metadata ?? {};
    return this.signing.check?.(
      { seq, term: Number(m.term ?? 0), rows: m.rows ?? '', format: m.format ?? '', digest: info.digest },
      m.sig,
    );
  }

  /**
   * The rows the newest snapshot covers (0: none held): a new leader's snapshot baseline, so the
   * spacing of snapshots (every doubling of the log) does not start again at each claim (review4 G4).
   * With a key only signed ones count: the first leader of a group upgraded from unsigned snapshots
   * writes a signed one at its first flush once the log holds `snapshotEveryRows` rows.
   */
  async newestRows(): Promise<number> {
    const rows = (await this.held()).find((s) => s.refused === undefined && Number.isSafeInteger(s.rows))?.rows;
    return rows ?? 0;
  }

  /**
   * The newest snapshot at or after `minSeq` (undefined: none). One not signed by the group's key
   * is refused in one line and the next older one tried: nothing of it is read.
   */
  async newest(minSeq: number): Promise<Snapshot | undefined> {
    const refuse = (what: string, why: string) =>
      this.signing.say(`${what} refused: ${why}; not used (an older one, or the stream, is read instead)`);
    for (const held of await this.held()) {
      const seq = held.seq;
      if (seq < minSeq) return undefined;
      const name = `seq-${seq}`;
      const what = `log snapshot ${name}`;
      if (held.refused) {
        refuse(what, held.refused);
        continue;
      }
      const info = await this.os.info(name); // a message get of its metadata: no consumer
      if (!info || info.deleted) continue; // deleted between list and get
      if (info.options?.link) {
        refuse(what, 'a link to another object, not a snapshot');
        continue;
      }
      const lost = await this.lostChunks(info);
      if (lost) {
        refuse(what, lost);
        continue;
      }
      // checked again on the info the data is read by (the listing's may have been replaced since)
      const refused = this.refusal(seq, info);
      if (refused) {
        refuse(what, refused);
        continue;
      }
      const meta = info.metadata ?? {};
      const data = this.chunks(info, what);
      // the digest is checked as the last chunk arrives: a mismatch errors the data stream
      const batch =
        meta.format === SNAPSHOT_TEXT_FORMAT
          ? await readText(data, what, this.maxLineBytes)
          : parseBatch(gunzipSync(await collect(data)), what, meta.layout); // written before the text form
      return { streamSeq: seq, term: Number(meta.term ?? 0), batch };
    }
    return undefined;
  }

  /**
   * Stores the whole log as of `s.to` as object `seq-S`, then (still leading) trims the stream
   * below the previous snapshot and drops older snapshots. Returns the rows it covers.
   */
  async write(s: SnapshotSource): Promise<{ rows: number; trimmedBelow: number; bytes: number }> {
    const rows = rowCount(s.to);
    const slices = s.slices[Symbol.asyncIterator]();
    const text = new SnapshotTextWriter();
    const utf8 = new TextEncoder();
    let ended = false;
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (!s.leading()) throw new Error('no longer leading the term it was taken for; abandoned');
        const n = await slices.next();
        if (n.done) {
          ended = true;
          c.enqueue(utf8.encode(text.end()));
          c.close();
        } else {
          const v = n.value;
          c.enqueue(
            utf8.encode(v.kind === 'head' ? text.head(v.from, v.to, s.resumePoints) : text.rows(v.section, v.rows)),
          );
        }
      },
    });
    const name = `seq-${s.streamSeq}`;
    const metadata = { term: String(s.term), rows: String(rows), format: SNAPSHOT_TEXT_FORMAT };
    const sign = this.signing.sign;
    let info;
    try {
      await this.dropWriting(s.streamSeq);
      info = await this.os.put(
        { name: sign ? `writing-${name}` : name, metadata },
        body.pipeThrough(new CompressionStream('gzip')),
      );
    } finally {
      // the object store does not cancel its source when a publish fails: end the reading (its transaction)
      if (!ended) await slices.return?.(undefined);
    }
    if (sign) await this.signAndName(info, name, s.streamSeq, metadata, sign);
    if (!s.leading()) return { rows, trimmedBelow: 0, bytes: info.size };
    const held = await this.held();
    const seqs = held.filter((h) => h.refused === undefined).map((h) => h.seq);
    let trimmedBelow = 0;
    const previous = seqs.find((x) => x < s.streamSeq);
    if (previous !== undefined) {
      // Purge keeps `seq` itself: every batch after the previous snapshot stays readable.
      await this.jsm.streams.purge(this.stream, { seq: previous + 1 });
      trimmedBelow = previous + 1;
    }
    for (const old of seqs.slice(KEEP)) await this.os.delete(`seq-${old}`);
    // Refused objects below the oldest kept snapshot (unsigned ones of the release before, forgeries)
    // are never read; those above stay (each refused when met) and the kept count only signed ones,
    // so a forged `seq-N` past the leader's seq cannot make it delete its own snapshots.
    const oldest = seqs[Math.min(KEEP, seqs.length) - 1];
    if (oldest !== undefined)
      for (const h of held) if (h.refused !== undefined && h.seq < oldest) await this.os.delete(`seq-${h.seq}`);
    // Best-effort: the snapshot is stored and trimmed; a marker left now is taken at the next write.
    await this.metadata()
      .then((m) => this.sweep(m))
      .catch(() => {});
    return { rows, trimmedBelow, bytes: info.size };
  }

  /**
   * Drops the `writing-` objects up to `seq` that killed writers left (see the top of this file):
   * deleted with their chunks, or, when another name holds the same chunks (a rename cut short),
   * only their name is purged.
   */
  private async dropWriting(seq: number): Promise<void> {
    const all = await this.objects();
    for (const i of all) {
      const w = Number(WRITING.exec(i.name)?.[1] ?? NaN);
      if (!(w <= seq)) continue;
      if (all.some((o) => o.name !== i.name && o.nuid === i.nuid)) await this.purgeName(i.name);
      else await this.os.delete(i.name);
    }
  }

  /**
   * Purges the metadata of object `name`, never its chunks: what the object store's rename does to
   * the old name (its subjects as the object store spec, NATS ADR-20, names them; the client has no call for it).
   */
  private async purgeName(name: string): Promise<void> {
    await this.jsm.streams.purge(`OBJ_${this.bucket}`, {
      filter: `$O.${this.bucket}.M.${Base64UrlPaddedCodec.encode(name)}`,
    });
  }

  /**
   * Signs the object just put as `writing-seq-S` (its digest is now known) and renames it to
   * `seq-S` with the signature in its metadata. An object already named `seq-S` that is not the
   * group's (a forgery put ahead of the leader) is deleted and the rename made again; a signed one
   * (the same seq written twice) stays and this copy is dropped (by name only when the rename got
   * as far as naming these very chunks `seq-S`).
   */
  private async signAndName(
    info: ObjectInfo,
    name: string,
    seq: number,
    metadata: { term: string; rows: string; format: string },
    sign: SnapshotSign,
  ): Promise<void> {
    const temp = `writing-${name}`;
    const sig = sign({
      seq,
      term: Number(metadata.term),
      rows: metadata.rows,
      format: metadata.format,
      digest: info.digest,
    });
    const rename = () => this.os.update(temp, { name, metadata: { ...metadata, sig }, options: info.options });
    try {
      await rename();
    } catch (e) {
      const there = await this.os.info(name);
      if (!there || there.deleted) throw e;
      if (this.refusal(seq, there) === undefined) {
        if (there.nuid === info.nuid) await this.purgeName(temp);
        else await this.os.delete(temp);
        return;
      }
      await this.os.delete(name);
      await rename();
    }
  }
}

/** A snapshot in the text form, gunzipped and parsed line by line as its chunks arrive. */
async function readText(
  data: ReadableStream<Uint8Array>,
  what: string,
  maxLineBytes: number | undefined,
): Promise<RowBatch> {
  const lines = new LineSplitter(what, maxLineBytes);
  const reader = new SnapshotTextReader(what);
  for await (const chunk of data.pipeThrough(new DecompressionStream('gzip')))
    for (const line of lines.push(chunk)) reader.line(line);
  const rest = lines.end();
  if (rest !== '') reader.line(rest);
  return reader.end();
}

/** A deleted object's marker on its metadata subject: its stream seq and the chunks' nuid it names. */
interface DeletedMarker {
  readonly subject: string;
  readonly seq: number;
  readonly nuid: string;
}

/** An object's metadata message, or its deletion marker (`deleted`, with the nuid it names); undefined: not one. */
function metadataOf(
  data: Uint8Array,
): (StoredObject & { deleted?: undefined }) | { deleted: { nuid: string } } | undefined {
  let o: Partial<StoredObject & { deleted: boolean }>;
  try {
    o = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || typeof o.name !== 'string') return undefined;
  if (o.deleted === true) return { deleted: { nuid: typeof o.nuid === 'string' ? o.nuid : '' } };
  if (o.deleted) return undefined;
  return {
    name: o.name,
    nuid: String(o.nuid ?? ''),
    chunks: Number(o.chunks ?? 0),
    size: Number(o.size ?? 0),
    digest: String(o.digest ?? ''),
    metadata: o.metadata ?? {},
    ...(o.options ? { options: o.options } : {}),
  };
}

async function collect(data: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of data) chunks.push(c);
  return Buffer.concat(chunks);
}
