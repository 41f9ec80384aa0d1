import { statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { databaseOf } from './database-handle.ts';
import type { EventLog } from './event-log.ts';

/**
 * How much disk the event log takes and how much is left where it lives (review4 G8: nothing said
 * so, and the first sign of a growing log was SQLITE_FULL). Read per call: a few stat calls.
 */
export interface LogStorage {
  /** The log file with its WAL and shared-memory files, in bytes. */
  readonly bytes: number;
  /** Of which the WAL (it keeps its high-water mark until a checkpoint truncates it). */
  readonly walBytes: number;
  /** Bytes this process may still write on the log's filesystem (statfs: available blocks). */
  readonly freeBytes: number;
  readonly totalBytes: number;
  /** One line when free space is low (storageWarning); absent otherwise. */
  readonly warning?: string;
}

export interface StorageThresholds {
  /** Warn below this much free space (default 1 GiB). */
  readonly minFreeBytes?: number;
  /** Warn below this fraction of the filesystem free (default 0.05). */
  readonly minFreeRatio?: number;
}

const MB = 1024 * 1024;
const mb = (n: number) => `${(n / MB).toFixed(n < 10 * MB ? 1 : 0)} MB`;

/**
 * Why the space left is too little, or undefined (pure): less than the log's own size (`db backup`
 * and `db compact` write a copy of it, and at the log's growth the disk fills next), or below the
 * thresholds.
 */
export function storageWarning(
  u: Pick<LogStorage, 'bytes' | 'freeBytes' | 'totalBytes'>,
  t: StorageThresholds = {},
): string | undefined {
  const minFree = t.minFreeBytes ?? 1024 * MB;
  const minRatio = t.minFreeRatio ?? 0.05;
  const free = `${mb(u.freeBytes)} free on the event log's filesystem`;
  if (u.freeBytes < u.bytes)
    return `${free}, less than the log itself (${mb(u.bytes)}): a backup or compaction cannot copy it, and appends fail (disk full) soon`;
  if (u.freeBytes < minFree) return `${free} (below ${mb(minFree)}): appends fail (disk full) once it is gone`;
  if (u.freeBytes < u.totalBytes * minRatio)
    return `${free} (below ${Math.round(minRatio * 100)}% of ${mb(u.totalBytes)}): appends fail (disk full) once it is gone`;
  return undefined;
}

/** The storage of the log at `file`; undefined for a log in memory or a file that cannot be read. */
export function logStorage(file: string, t?: StorageThresholds): LogStorage | undefined {
  if (file === ':memory:' || file === '') return undefined;
  try {
    const size = (f: string) => {
      try {
        return statSync(f).size;
      } catch {
        return 0; // no WAL (closed cleanly) or shared-memory file
      }
    };
    const walBytes = size(`${file}-wal`);
    const bytes = statSync(file).size + walBytes + size(`${file}-shm`);
    const fs = statfsSync(path.dirname(path.resolve(file)));
    const u = { bytes, walBytes, freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
    const warning = storageWarning(u, t);
    return warning === undefined ? u : { ...u, warning };
  } catch {
    return undefined;
  }
}

/**
 * How fast the log grows (review4 G8, "growth rate"): the rows added over a recent window and the
 * bytes they take, estimated cheaply (index probes and the newest 1,000 rows of each table, never
 * a pass over a table). Events are those after the last version made before the window starts,
 * ACK/NACK rows those reporting a version made in it. Bytes are each table's rows times the mean
 * stored size (text columns, hash, index keys) of its newest 1,000 rows: SQLite's page overhead
 * and the WAL come on top. With retention on, what it removes makes room for as much again.
 */
export interface LogGrowth {
  readonly windowMs: number;
  readonly versions: number;
  readonly events: number;
  readonly acks: number;
  readonly bytes: number;
  readonly bytesPerHour: number;
  /** Bytes per version made in the window; null when none was. */
  readonly bytesPerVersion: number | null;
}

const MEAN_BYTES = {
  // each stored text, the row's integers (~8 bytes each) and the two index keys (events_by_service, events_by_object)
  events: `SELECT avg(length(received_at) + length(kind) * 2 + length(type) + length(origin) + length(namespace) * 3 +
    length(name) * 2 + length(uid) + length(resource_version) + length(service) * 2 + length(object) + length(row_hash) + 32)
    FROM (SELECT * FROM events ORDER BY seq DESC LIMIT 1000)`,
  acks: `SELECT avg(length(type) + length(node) * 3 + length(at) * 2 + length(body) + length(row_hash) +
    ifnull(length(received_at), 0) + 48) FROM (SELECT * FROM acks ORDER BY id DESC LIMIT 1000)`,
  versions: `SELECT avg(length(hash) + length(reason) + length(created_at) * 2 + ifnull(length(delta), 0) +
    length(row_hash) + 48) FROM (SELECT * FROM versions ORDER BY version DESC LIMIT 1000)`,
} as const;

export function logGrowth(log: EventLog, o: { windowMs?: number; now?: Date } = {}): LogGrowth {
  const windowMs = o.windowMs ?? 3_600_000;
  const db = databaseOf(log);
  const start = new Date((o.now ?? new Date()).getTime() - windowMs).toISOString();
  const head = (chain: string) =>
    db.prepare('SELECT anchor_id AS a, head_id AS h FROM chain_heads WHERE chain = ?').get(chain) as {
      a: number;
      h: number;
    };
  const before = db
    .prepare(
      'SELECT version, seq_to FROM versions WHERE created_at <= ? ORDER BY created_at DESC, version DESC LIMIT 1',
    )
    .get(start) as { version: number; seq_to: number } | undefined;
  const v = head('versions');
  const e = head('events');
  const a = head('acks');
  const versions = v.h - (before?.version ?? 0);
  const events = e.h - Math.max(e.a, before?.seq_to ?? 0);
  const firstAck = db
    .prepare('SELECT min(id) FROM acks INDEXED BY acks_by_version WHERE version > ?')
    .pluck()
    .get(before?.version ?? 0) as number | null;
  const acks = firstAck === null ? 0 : a.h - Math.max(a.a, firstAck - 1);
  const mean = (sql: string) => (db.prepare(sql).pluck().get() as number | null) ?? 0;
  const bytes = Math.round(
    events * mean(MEAN_BYTES.events) + acks * mean(MEAN_BYTES.acks) + versions * mean(MEAN_BYTES.versions),
  );
  return {
    windowMs,
    versions,
    events,
    acks,
    bytes,
    bytesPerHour: Math.round((bytes * 3_600_000) / windowMs),
    bytesPerVersion: versions > 0 ? Math.round(bytes / versions) : null,
  };
}
