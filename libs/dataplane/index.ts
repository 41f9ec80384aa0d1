// Public surface of libs/dataplane: the Dataplane interface and its backends (IPVS, nftables,
// dry run), the factory that picks one, mode switching and kube-proxy take-over.
export type {
  ApplyResult,
  Dataplane,
  DataplaneMode,
  NodeStateChange,
  ResyncOptions,
  RetireResult,
} from './dataplane.ts';
export { NOTHING_VERIFIED, ResyncYielded } from './dataplane.ts';
export { applyNodeState, type ApplySummary } from './apply-node-state.ts';
export {
  createDataplane,
  DEFAULT_STATE_DIR,
  ipvsStatePath,
  withNotes,
  type CreateDataplaneOptions,
  type DataplaneChoice,
} from './create-dataplane.ts';
export { DryRunDataplane } from './dry-run-dataplane.ts';
export { ModeFollowingDataplane, type ModeFollowingOptions } from './mode-following-dataplane.ts';
export { ModeSwitchError, switchMode, type SwitchModeOptions, type SwitchModeResult } from './switch-mode.ts';
export {
  KUBE_PROXY_NFT_TABLES,
  removeKubeProxyNftTables,
  takeOverLeftovers,
  withKubeProxyTakeOver,
  type TakeOverOptions,
} from './kube-proxy-takeover.ts';
export {
  competingLeftovers,
  describeLeftovers,
  findKubeProxyLeftovers,
  ipv6GlueChains,
  isKubeProxyChain,
  isLeftoverChain,
  planIptablesLeftovers,
  removeKubeProxyLeftovers,
  type IptablesBackend,
  type IptablesLeftoverTable,
  type Ipv6GlueChains,
  type KubeProxyLeftovers,
} from './kube-proxy-leftovers.ts';
export { leftoverReport, withKubeProxyLeftoverCheck, type LeftoverCheckOptions } from './kube-proxy-leftover-check.ts';
export {
  findForwardDrops,
  forwardDropReport,
  forwardDropsWithoutOurAccept,
  legacyForwardDrops,
  nftForwardDropChains,
  withForwardDropCheck,
  type ForwardDropCheckOptions,
} from './forward-drop-check.ts';
export {
  chooseIptablesBackend,
  detectIptablesBackend,
  NFTABLES_MIN_KERNEL,
  nftablesKernelProblem,
  refuseUnfitNode,
} from './node-preflight.ts';
export {
  KUBE_PROXY_CHAINS,
  planKubeProxyIpvsRemoval,
  removeKubeProxyIpvs,
  snapshotKubeProxyIpvs,
  type KubeProxyIpvsSnapshot,
  type RemovalPlan,
} from './kube-proxy-ipvs-takeover.ts';
// IPVS backend
export { IpvsDataplane, driftRepairsCounter, type IpvsDataplaneOptions } from './ipvs/ipvs-dataplane.ts';
export {
  DEFAULT_IPVS_RECEIVE_BUFFER,
  NetlinkKernel,
  probeIpv6Netfilter,
  type NetlinkKernelOptions,
} from './ipvs/netlink-kernel.ts';
export {
  concurrentGroups,
  KernelTransaction,
  TransactionError,
  type KernelInterface,
} from './ipvs/kernel-transaction.ts';
export { describeOp, type KernelOp, type VsKey } from './ipvs/kernel-op.ts';
export type {
  NetfilterObservation,
  ObservedIpset,
  ObservedKernel,
  ObservedRealServer,
  ObservedVirtualServer,
} from './ipvs/observed-kernel.ts';
export { observeNetfilter, parseIptablesSave, splitTableKey, tableKey } from './ipvs/netfilter-glue.ts';
export {
  EMPTY_RECORD,
  FileOwnershipStore,
  MemoryOwnershipStore,
  type OwnershipRecord,
  type OwnershipStore,
} from './ipvs/ownership-record.ts';
export { detectIpvsCapabilities, type IpvsCapabilities } from './ipvs/detect-capabilities.ts';
// nftables backend
export * from './nftables/index.ts';
