import type Database from 'better-sqlite3';
import { byCodeUnit, keyOf, sha256Hex, type KubeObject } from '../model/index.ts';
import type { ClusterState, ObjectRejection } from '../planner/index.ts';
import { EventLogError } from './event-log-error.ts';

/** A full-state checkpoint: the objects of ClusterState after every event up to `seq`. */
export interface Checkpoint {
  readonly seq: number;
  /** Latest data version when the checkpoint was taken (informational). */
  readonly version: number;
  /** ClusterState.hash() of these objects. */
  readonly dataHash: string;
  readonly objectCount: number;
  readonly createdAt: string;
}

export interface CheckpointWithObjects extends Checkpoint {
  readonly objects: readonly KubeObject[];
  /** Objects whose latest event up to `seq` was rejected (their good state is in `objects`). */
  readonly rejections: readonly ObjectRejection[];
}

interface CheckpointRow {
  seq: number;
  version: number;
  data_hash: string;
  object_count: number;
  objects: string;
  objects_hash: string;
  rejections: string;
  created_at: string;
}

/**
 * The hash a checkpoint row stores: over its objects, and its rejections when there are any (so
 * checkpoints written before rejections were kept, with '[]', keep their hash).
 */
export function checkpointHash(objects: string, rejections: string): string {
  return sha256Hex(rejections === '[]' ? objects : `${objects}\n${rejections}`);
}

/**
 * Writes a checkpoint of `state`, which must reflect exactly the events up to `seq`. Objects are
 * stored sorted by key so equal states give identical text (and identical objects_hash).
 */
export function writeCheckpoint(
  db: Database.Database,
  opts: {
    state: ClusterState;
    rejections: Iterable<ObjectRejection>;
    seq: number;
    version: number;
    createdAt: string;
  },
): Checkpoint {
  const objects = [...opts.state.objects()].sort((a, b) => byCodeUnit(keyOf(a), keyOf(b)));
  const text = JSON.stringify(objects);
  const rejections = JSON.stringify([...opts.rejections].sort((a, b) => a.seq - b.seq));
  const cp = {
    seq: opts.seq,
    version: opts.version,
    dataHash: opts.state.hash(),
    objectCount: objects.length,
    createdAt: opts.createdAt,
  };
  db.prepare(`INSERT OR REPLACE INTO checkpoints (seq, version, data_hash, object_count, objects, objects_hash, rejections, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
    cp.seq,
    cp.version,
    cp.dataHash,
    cp.objectCount,
    text,
    checkpointHash(text, rejections),
    rejections,
    cp.createdAt,
  );
  return cp;
}

export function listCheckpoints(db: Database.Database): Checkpoint[] {
  const rows = db
    .prepare('SELECT seq, version, data_hash, object_count, created_at FROM checkpoints ORDER BY seq')
    .all() as CheckpointRow[];
  return rows.map(toCheckpoint);
}

/** The nearest checkpoint at or before `seq`, with its objects (undefined: start from empty). */
export function checkpointAtOrBefore(db: Database.Database, seq: number): CheckpointWithObjects | undefined {
  const row = db.prepare('SELECT * FROM checkpoints WHERE seq <= ? ORDER BY seq DESC LIMIT 1').get(seq) as
    | CheckpointRow
    | undefined;
  if (!row) return undefined;
  if (checkpointHash(row.objects, row.rejections) !== row.objects_hash) {
    throw new EventLogError('INVALID', `checkpoint at seq ${row.seq} is damaged (objects hash mismatch)`);
  }
  return {
    ...toCheckpoint(row),
    objects: JSON.parse(row.objects) as KubeObject[],
    rejections: JSON.parse(row.rejections) as ObjectRejection[],
  };
}

function toCheckpoint(r: CheckpointRow): Checkpoint {
  return {
    seq: r.seq,
    version: r.version,
    dataHash: r.data_hash,
    objectCount: r.object_count,
    createdAt: r.created_at,
  };
}
