import { gunzipSync } from 'node:zlib';
import type { JetStreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
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
 * (zlib's thread pool); the reader gunzips and parses line by line. An object becomes visible only
 * with its metadata, which the object store publishes after the last chunk: a write that fails or
 * is abandoned half way purges its chunks, and one whose process dies leaves only unnamed chunks.
 */
export interface Snapshot {
  readonly streamSeq: number;
  readonly term: number;
  readonly batch: RowBatch;
}

const NAME = /^seq-(\d+)$/;
const KEEP = 2;

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
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly maxLineBytes: number | undefined,
  ) {}

  static async open(o: {
    nc: NatsConnection;
    jsm: JetStreamManager;
    group: string;
    stream: string;
    replicas: number;
    /** The longest line a reader makes into one string (tests; default V8's longest string). */
    maxLineBytes?: number;
  }): Promise<SnapshotStore> {
    const os = await new Objm(o.nc).create(snapshotBucket(o.group), { replicas: o.replicas });
    return new SnapshotStore(os, o.jsm, o.stream, o.maxLineBytes);
  }

  /** Snapshot seqs held, newest first. */
  async seqs(): Promise<number[]> {
    return (await this.held()).map((s) => s.seq);
  }

  /** Snapshots held with the rows each covers (metadata `rows`; NaN when absent), newest first. */
  private async held(): Promise<{ seq: number; rows: number }[]> {
    const list = await this.os.list();
    return list
      .map((i) => ({ seq: Number(NAME.exec(i.name)?.[1] ?? NaN), rows: Number(i.metadata?.rows ?? NaN) }))
      .filter((s) => Number.isSafeInteger(s.seq))
      .sort((a, b) => b.seq - a.seq);
  }

  /**
   * The rows the newest snapshot covers (0: none held): a new leader's snapshot baseline, so the
   * spacing of snapshots (every doubling of the log) does not start again at each claim (review4 G4).
   */
  async newestRows(): Promise<number> {
    const rows = (await this.held()).find((s) => Number.isSafeInteger(s.rows))?.rows;
    return rows ?? 0;
  }

  /** The newest snapshot at or after `minSeq` (undefined: none). */
  async newest(minSeq: number): Promise<Snapshot | undefined> {
    for (const seq of await this.seqs()) {
      if (seq < minSeq) return undefined;
      const name = `seq-${seq}`;
      const r = await this.os.get(name);
      if (!r) continue; // deleted between list and get
      const what = `log snapshot ${name}`;
      const meta = r.info.metadata ?? {};
      const settled = r.error.then(
        (e) => e,
        (e: unknown) => e,
      );
      // the digest is checked as the last chunk arrives: a mismatch errors the data stream
      const batch =
        meta.format === SNAPSHOT_TEXT_FORMAT
          ? await readText(r.data, what, this.maxLineBytes)
          : parseBatch(gunzipSync(await collect(r.data)), what, meta.layout); // written before the text form
      const failed = await settled;
      if (failed) throw failed;
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
    let info;
    try {
      info = await this.os.put(
        {
          name: `seq-${s.streamSeq}`,
          metadata: { term: String(s.term), rows: String(rows), format: SNAPSHOT_TEXT_FORMAT },
        },
        body.pipeThrough(new CompressionStream('gzip')),
      );
    } finally {
      // the object store does not cancel its source when a publish fails: end the reading (its transaction)
      if (!ended) await slices.return?.(undefined);
    }
    if (!s.leading()) return { rows, trimmedBelow: 0, bytes: info.size };
    const seqs = await this.seqs();
    let trimmedBelow = 0;
    const previous = seqs.find((x) => x < s.streamSeq);
    if (previous !== undefined) {
      // Purge keeps `seq` itself: every batch after the previous snapshot stays readable.
      await this.jsm.streams.purge(this.stream, { seq: previous + 1 });
      trimmedBelow = previous + 1;
    }
    for (const old of seqs.slice(KEEP)) await this.os.delete(`seq-${old}`);
    return { rows, trimmedBelow, bytes: info.size };
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

async function collect(data: ReadableStream<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of data) chunks.push(c);
  return Buffer.concat(chunks);
}
