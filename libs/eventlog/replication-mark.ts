import type Database from 'better-sqlite3';
import { batchRows, type LogPosition, type RowBatch } from './log-rows.ts';

/** Where this file stands in the group's log stream (local bookkeeping, never replicated). */
export interface ReplicationMark {
  readonly stream: string;
  /** The last stream message applied to (or, on the leader, acknowledged for) this file. */
  readonly streamSeq: number;
  /** The newest leader term seen in the stream. */
  readonly term: number;
  /** The log position that message leaves the group at. */
  readonly position: LogPosition;
  /** Creation time of the stream `streamSeq` counts in (stream info's `created`); absent in older marks. */
  readonly streamCreated?: string;
}

/** One recorded truncation: rows this file held that the group's stream did not. */
export interface TruncationRecord {
  readonly id: number;
  readonly at: string;
  readonly stream: string;
  readonly streamSeq: number;
  readonly reason: string;
  readonly from: LogPosition;
  readonly to: LogPosition;
  readonly rowsDropped: number;
  /** The dropped rows themselves, as a batch from `to`. */
  readonly dropped: RowBatch;
}

export function readMark(db: Database.Database): ReplicationMark | undefined {
  const r = db
    .prepare('SELECT stream, stream_seq, term, position, stream_created FROM replication_mark WHERE id = 1')
    .get() as
    | { stream: string; stream_seq: number; term: number; position: string; stream_created: string | null }
    | undefined;
  return (
    r && {
      stream: r.stream,
      streamSeq: r.stream_seq,
      term: r.term,
      position: JSON.parse(r.position) as LogPosition,
      ...(r.stream_created === null ? {} : { streamCreated: r.stream_created }),
    }
  );
}

export function writeMark(db: Database.Database, m: ReplicationMark, at: string): void {
  db.prepare(`INSERT INTO replication_mark (id, stream, stream_seq, term, position, stream_created, updated_at)
    VALUES (1, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET stream = excluded.stream, stream_seq = excluded.stream_seq, term = excluded.term,
      position = excluded.position, stream_created = excluded.stream_created, updated_at = excluded.updated_at`).run(
    m.stream,
    m.streamSeq,
    m.term,
    JSON.stringify(m.position),
    m.streamCreated ?? null,
    at,
  );
}

export function recordTruncation(db: Database.Database, t: Omit<TruncationRecord, 'id' | 'rowsDropped'>): number {
  return Number(
    db
      .prepare(`INSERT INTO replication_truncations (at, stream, stream_seq, reason, from_position, to_position, rows_dropped, dropped)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(
        t.at,
        t.stream,
        t.streamSeq,
        t.reason,
        JSON.stringify(t.from),
        JSON.stringify(t.to),
        batchRows(t.dropped),
        JSON.stringify(t.dropped),
      ).lastInsertRowid,
  );
}

export function listTruncations(db: Database.Database): TruncationRecord[] {
  const rows = db.prepare('SELECT * FROM replication_truncations ORDER BY id').all() as {
    id: number;
    at: string;
    stream: string;
    stream_seq: number;
    reason: string;
    from_position: string;
    to_position: string;
    rows_dropped: number;
    dropped: string;
  }[];
  return rows.map((r) => ({
    id: r.id,
    at: r.at,
    stream: r.stream,
    streamSeq: r.stream_seq,
    reason: r.reason,
    rowsDropped: r.rows_dropped,
    from: JSON.parse(r.from_position) as LogPosition,
    to: JSON.parse(r.to_position) as LogPosition,
    dropped: JSON.parse(r.dropped) as RowBatch,
  }));
}
