export {
  ApplierSession,
  type ApplierSessionOptions,
  type AppliedState,
  type SessionEvent,
  type BusClock,
} from './applier-session.ts';
export { DataSync, type SyncResult } from './data-sync.ts';
export { planFetch, type FetchPlan } from './fetch-plan.ts';
export {
  applyDeltaChain,
  applyWithUndo,
  expandPatchedDelta,
  indexFromCheckpoint,
  type ChainResult,
  type HeldEntry,
} from './version-chain.ts';
export { TargetView, signedTargetFault } from './target-view.ts';
export { TargetWatcher, type TargetWatcherOptions } from './target-watcher.ts';
export { judgeHealth, verdictSaysDataplaneDown, type HealthProbe, type ProbeOutcome } from './health-verdict.ts';
export {
  DataplaneProbe,
  DEFAULT_PROBE_SETTINGS,
  RateBudget,
  noProbe,
  tcpConnect,
  type Connector,
  type ProbeSettings,
} from './dataplane-probe.ts';
export { pickProbeTargets, type ProbeTarget } from './probe-targets.ts';
export { withInjectedVerdict } from './injected-verdict.ts';
