export {
  EventLog,
  type EventLogOptions,
  type RecordVersionInput,
  type OperationRecord,
  type SlowWrites,
} from './event-log.ts';
export { fdUsage, fdWarning } from './file-health.ts';
export { prepareEventRow, rowToEvent, type EventRow, type PreparedEventRow } from './event-row.ts';
export { EventLogError, type EventLogErrorCode } from './event-log-error.ts';
export type { VersionRecord } from './version-record.ts';
export type { Checkpoint, CheckpointWithObjects } from './checkpoints.ts';
export { SqliteResumeStore } from './sqlite-resume-store.ts';
export {
  rebuildAtSeq,
  rebuildAtSeqSteps,
  replayVersion,
  rebuildVersionContent,
  rebuildVersionContentSteps,
  replayAt,
  readingRevisionAtSeq,
  contentSource,
  versionArtifact,
  type RebuildResult,
  type VersionReplay,
  type RebuildOptions,
} from './replay.ts';
export { GENESIS_HASH, chainHash } from './row-chain.ts';
export { APPLICATION_ID, LOG_SCHEMA_VERSION, type SchemaStatus } from './open-database.ts';
export { STORAGE, verifyLog, type VerifyReport, type VerifyProblem } from './verify-log.ts';
export { CLOCK_STEP_BOUND_MS, placeInTime, StepSpan } from './stamp-order.ts';
export {
  compactLog,
  replayableFrom,
  compactionRecords,
  describeCompaction,
  Compaction,
  type CompactResult,
  type CompactionLimits,
  type CompactionRecord,
} from './compact-log.ts';
export {
  nodeLifecycle,
  nodeLifecycleOf,
  type NodeLifecycleEntry,
  type NodeChange,
  type NodeEventRow,
} from './node-lifecycle.ts';
export {
  serviceHistory,
  nodeAt,
  diffVersions,
  nodesBehind,
  nodesOfNewestVersion,
  type ServiceHistoryEntry,
  type AckedBy,
  type NodeAtTime,
  type VersionDiff,
  type NodeLag,
  type NodeLagStatus,
} from './audit-queries.ts';
export type { ServiceNow, ServiceOperationVersion } from './service-operation-versions.ts';
export { eventChurn, type EventChurn, type NamespaceChurn } from './churn-query.ts';
export { EventAppender } from './event-appender.ts';
export { backupLog } from './backup-log.ts';
export {
  logStorage,
  logGrowth,
  storageWarning,
  type LogGrowth,
  type LogStorage,
  type StorageThresholds,
} from './log-storage.ts';
export {
  OnlineRetention,
  policyKeepsFrom,
  retentionStatus,
  retentionTarget,
  type OnlineRetentionOptions,
  type RetentionBounds,
  type RetentionFloor,
  type RetentionPolicy,
  type RetentionRun,
  type RetentionStatus,
} from './online-retention.ts';
export { versionAnchor, checkVersionAnchor } from './version-anchor.ts';
export {
  EMPTY_POSITION,
  rowCount,
  batchRows,
  samePosition,
  type LogPosition,
  type ChainHead,
  type RowBatch,
  type RawRow,
} from './log-rows.ts';
export type { ReplicationMark, TruncationRecord } from './replication-mark.ts';
export {
  AHEAD_OF_NEW_STREAM,
  FencedError,
  createLogReplicator,
  logStreamName,
  logSubject,
  type LogReplicator,
  type LogReplicatorOptions,
} from './replication.ts';
