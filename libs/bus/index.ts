export * from './subjects.ts';
export {
  deltaExceeds,
  encodeArtifact,
  decodeDelta,
  decodeCheckpoint,
  artifactMessages,
  checkpointPayloads,
  CheckpointDecoder,
  withoutUnvouchedHashes,
  patchNotice,
  decodePatchedDelta,
  type PatchedDeltaArtifact,
  type EncodedMessage,
  type Decoded,
} from './artifact-codec.ts';
export { directGet, leaderGet, type DirectGot, type Requester, type ReplyMsg } from './direct-get.ts';
export {
  computeNodeStatus,
  DEFAULT_NODE_STATUS_THRESHOLDS,
  type NodeStatus,
  type NodeStatusInput,
  type NodeStatusThresholds,
} from './node-status.ts';
export { VersionReader, type Fetched, type VersionReaderOptions } from './version-reader.ts';
export {
  VersionPublisher,
  isCheckpointVersion,
  type VersionPublisherOptions,
  type PublishResult,
} from './version-publisher.ts';
export { TargetStore, replicatedBucket, type Targets, type TargetStoreOptions } from './target-store.ts';
export { ReplicasRefused, checkReplicas, clusterOf, ensureStreamReplicas } from './stream-replicas.ts';
export { AckCollector, handleReport, parseAckOrNack, parseHeartbeat, type AckCallbacks } from './ack-collector.ts';
export {
  renderServerAuthConfig,
  nodePermissions,
  plannerPermissions,
  observerPermissions,
  accountWiring,
  SWITCHBOARD_ACCOUNT,
  READERS_ACCOUNT,
  type AccountWiring,
  type ServerConfigInput,
  type Credential,
  type Permissions,
} from './server-config.ts';
export {
  connectBus,
  connectBusWaiting,
  checkServerUrls,
  isCredentialRefusal,
  isSubscriptionRefusal,
  serversText,
  sleepUnlessAborted,
  watchConnectionRefusals,
  watchCredentialRefusals,
  watchSubscriptionRefusals,
  type BusAuth,
  type SubscriptionRetry,
} from './bus-connection.ts';
export { checkAuthFiles, credsFileExpiry, credsNodeMismatch } from './bus-auth-files.ts';
export {
  artifactStatement,
  configStatement,
  noticeStatement,
  payloadDigest,
  targetNoticeStatement,
  targetStatement,
  termClaimStatement,
  groupTermClaimStatement,
  logMessageStatement,
  logSnapshotStatement,
  defaultSigningKeyFile,
  loadOrCreateSigningKey,
  readSigningKeyFile,
  readVerifierFile,
  signerFromKey,
  verifierFromPem,
  targetPatchStatement,
  type Signer,
  type Verifier,
} from './planner-signature.ts';
export { secretFileExposure } from './secret-file-mode.ts';
export {
  LeaderLease,
  atMost,
  checkGroupName,
  describeHolder,
  leaseBucket,
  leaseGroups,
  type LeaseHolder,
  type LeaderLeaseOptions,
  type NoLeader,
} from './planner-lease.ts';
export {
  GroupMembers,
  membersBucket,
  membersFromRecords,
  type GroupMember,
  type MemberRecord,
} from './group-members.ts';
export { ServerClock, SERVER_CLOCK_BOUND_MS } from './server-clock.ts';
export { StaleLeaderError } from './stale-leader.ts';
export {
  abandonSignal,
  isTransientJetStreamError,
  retryTransient,
  type RetryTransientOptions,
} from './jetstream-transient.ts';
export {
  describeJetStreamFailure,
  explainJetStreamFailure,
  namingJetStreamSilence,
  PLANNER_STREAMS,
  streamLimitRefusal,
  consumerLimitRefusal,
  type CoreNats,
  type JetStreamFailure,
} from './jetstream-refusal.ts';
export { newestPublishedAnchor, type PublishedAnchor } from './published-anchor.ts';
