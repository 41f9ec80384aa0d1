import { gunzipSync, gzipSync } from 'node:zlib';
import type { JetStreamManager } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { rowCount, type RowBatch } from './log-rows.ts';
import { batchJson, parseBatch } from './replication-codec.ts';

/**
 * Snapshots of a group's log, so the log stream need not keep every batch forever: the leader
 * (at intervals that grow with the log, see snapshotIfDue) writes the whole log as of an
 * acknowledged stream seq S (one gzipped batch from the log's anchors)
 * as object `seq-S` in a JetStream object store (same replicas as the stream), then trims the
 * stream below the previous snapshot's seq and deletes all but the two newest snapshots. So the
 * stream always holds every batch since the second newest snapshot: a replica that lags less than
 * one snapshot interval reads only the stream, one further behind (or a new one) starts from the
 * newest snapshot whose seq the retained stream continues. Snapshots are named by seq, never
 * replaced, so a deposed leader writing a late snapshot adds an older one, which nobody picks.
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

export class SnapshotStore {
  private constructor(
    private readonly os: ObjectStore,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
  ) {}

  static async open(o: {
    nc: NatsConnection;
    jsm: JetStreamManager;
    group: string;
    stream: string;
    replicas: number;
  }): Promise<SnapshotStore> {
    const os = await new Objm(o.nc).create(snapshotBucket(o.group), { replicas: o.replicas });
    return new SnapshotStore(os, o.jsm, o.stream);
  }

  /** Snapshot seqs held, newest first. */
  async seqs(): Promise<number[]> {
    const list = await this.os.list();
    return list
      .map((i) => Number(NAME.exec(i.name)?.[1] ?? NaN))
      .filter((n) => Number.isSafeInteger(n))
      .sort((a, b) => b - a);
  }

  /** The newest snapshot at or after `minSeq` (undefined: none). */
  async newest(minSeq: number): Promise<Snapshot | undefined> {
    for (const seq of await this.seqs()) {
      if (seq < minSeq) return undefined;
      const blob = await this.os.getBlob(`seq-${seq}`);
      if (!blob) continue; // deleted between list and get
      const info = await this.os.info(`seq-${seq}`);
      const batch = parseBatch(gunzipSync(blob), `log snapshot seq-${seq}`, info?.metadata?.layout);
      return { streamSeq: seq, term: Number(info?.metadata?.term ?? 0), batch };
    }
    return undefined;
  }

  /**
   * Stores `batch` (the whole log as of stream seq `streamSeq`), then trims the stream below the
   * previous snapshot and drops older snapshots. Returns the rows it covers.
   */
  async write(streamSeq: number, term: number, batch: RowBatch): Promise<{ rows: number; trimmedBelow: number }> {
    // batchJson: checkpoint pieces stringified one at a time, and where they lie (read back alone)
    const { bytes, layout } = batchJson(batch);
    const body = gzipSync(bytes);
    const metadata = { term: String(term), rows: String(rowCount(batch.to)), ...(layout ? { layout } : {}) };
    await this.os.putBlob({ name: `seq-${streamSeq}`, metadata }, body);
    const seqs = await this.seqs();
    let trimmedBelow = 0;
    const previous = seqs.find((s) => s < streamSeq);
    if (previous !== undefined) {
      // Purge keeps `seq` itself: every batch after the previous snapshot stays readable.
      await this.jsm.streams.purge(this.stream, { seq: previous + 1 });
      trimmedBelow = previous + 1;
    }
    for (const old of seqs.slice(KEEP)) await this.os.delete(`seq-${old}`);
    return { rows: rowCount(batch.to), trimmedBelow };
  }
}
