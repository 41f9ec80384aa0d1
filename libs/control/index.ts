export { parseWaves, formatWaves, type WaveSpec } from './parse-waves.ts';
export { planWaves } from './plan-waves.ts';
export {
  isActive,
  type Rollout,
  type RolloutStatus,
  type ConfigTargetState,
  type NodeReport,
  type NodeFailure,
  type NodeHealth,
} from './rollout.ts';
export {
  startRollout,
  stepRollout,
  decideRollout,
  promoteRollout,
  nextRolloutDeadline,
  rolloutWaitMs,
  pauseRollout,
  resumeRollout,
  rollbackConfig,
  rollbackExpectationMiss,
  configOverrides,
  type RollbackExpectation,
  type StartRolloutInput,
  type RolloutStep,
  type GateKind,
} from './step-rollout.ts';
export {
  DEFAULT_WAVE_POLICY,
  readWavePolicy,
  parseMaxFailures,
  parsePauseBefore,
  allowedFailures,
  formatMs,
  type WavePolicy,
} from './wave-policy.ts';
export { rolloutView } from './rollout-view.ts';
export {
  monoOfWall,
  rolloutElapsed,
  type ClockReading,
  type RolloutAnchors,
  type RolloutElapsed,
} from './rollout-clock.ts';
export { decideSync, decidePin, decideUnpin, type DataPin, type PublishDecision } from './data-pin.ts';
export {
  nodeStatus,
  ackMismatch,
  newestHealth,
  summarizeStatus,
  canaryBlocker,
  notCanaryNodes,
  unknownFieldsText,
  unknownFieldsWarnings,
  applyClock,
  applyClockOnSessionStart,
  applyClockOnTarget,
  DEFAULT_NODE_STATUS_THRESHOLDS,
  type ApplyClock,
  type ExpectedHashes,
  type NodeObservation,
  type NodeStatusRow,
  type NodeStatusThresholds,
} from './node-status.ts';
export {
  configDelta,
  unaskedChanges,
  formatFieldChanges,
  formatAssignments,
  type FieldChange,
} from './config-delta.ts';
