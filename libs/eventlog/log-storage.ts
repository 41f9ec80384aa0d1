import { statSync, statfsSync } from 'node:fs';
import path from 'node:path';

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
