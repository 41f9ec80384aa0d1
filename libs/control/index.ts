export { parseWaves, formatWaves, type WaveSpec } from './parse-waves.ts';
export { planWaves } from './plan-waves.ts';
export { isActive, type Rollout, type RolloutStatus, type ConfigTargetState, type NodeReport } from './rollout.ts';
export { startRollout, stepRollout, pauseRollout, resumeRollout, rollbackConfig, configOverrides, type StartRolloutInput } from './step-rollout.ts';
export { decideSync, decidePin, decideUnpin, type DataPin, type PublishDecision } from './data-pin.ts';
export {
  nodeStatus, summarizeStatus, DEFAULT_NODE_STATUS_THRESHOLDS, type NodeObservation, type NodeStatusRow, type NodeStatusThresholds,
} from './node-status.ts';
