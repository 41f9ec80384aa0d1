import { rebuildAtSeq, type EventLog } from '../../../../libs/eventlog/index.ts';
import { writeCheckpoint } from '../../../../libs/eventlog/checkpoints.ts';
import { databaseOf } from '../../../../libs/eventlog/database-handle.ts';

/** Writes the checkpoint at `seq` (as the planner would, in one call) in pieces of at most `pieceChars`. */
export function piecedCheckpointAt(log: EventLog, seq: number, pieceChars: number): void {
  const r = rebuildAtSeq(log, seq);
  writeCheckpoint(databaseOf(log), {
    state: r.state,
    rejections: r.rejections.values(),
    seq,
    version: log.latestVersion()?.version ?? 0,
    createdAt: '2025-01-01T00:00:00.000Z',
    pieceChars,
  });
}
