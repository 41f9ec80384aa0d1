export { EventLog, type EventLogOptions, type RecordVersionInput, type OperationRecord, type EventRow } from './event-log.ts';
export { EventLogError, type EventLogErrorCode } from './event-log-error.ts';
export type { VersionRecord } from './version-record.ts';
export type { Checkpoint, CheckpointWithObjects } from './checkpoints.ts';
export { SqliteResumeStore } from './sqlite-resume-store.ts';
export { watchEventChange } from './watch-event-change.ts';
export { rebuildAtSeq, replayVersion, replayAt, contentSource, versionArtifact, type RebuildResult, type VersionReplay, type RebuildOptions } from './replay.ts';
export { GENESIS_HASH, chainHash } from './row-chain.ts';
export { APPLICATION_ID, type SchemaStatus } from './open-database.ts';
