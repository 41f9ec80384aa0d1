export { buildServiceEntry, buildServiceEntrySteps, buildNodeFacts } from './build-service-entry.ts';
export { DataHashTree } from './data-hash-tree.ts';
export { ClusterDataIndex, sortDelta, type ClusterDataSource } from './cluster-data-index.ts';
export { ClusterState, type ObjectChange } from './cluster-state.ts';
export {
  renderNodeState,
  renderServiceForNode,
  renderContext,
  neutralContext,
  serviceClaims,
  mergeContributions,
  claimOrder,
  vipConflicts,
  type RenderContext,
  type ServiceContribution,
  type VipClaim,
} from './render-node-state.ts';
export { selectEndpoints } from './select-endpoints.ts';
export { IPSET_TABLE, ipPortNetEntry, ipsetName, nodePortSetBase, type IpsetBaseName } from './ipset-names.ts';
export { formatIpvsadm, ipvsadmServiceArg } from './format-ipvsadm.ts';
export { formatIpsetSave, ipsetCreateLine } from './format-ipset.ts';
export { nodeStateHash } from './node-state-hash.ts';
export { watchEventChange, rejectionKey, type WatchEventOutcome, type ObjectRejection } from './watch-event-change.ts';
export { NodeStateHashTree, nodeStateItem, nodeStateItems } from './node-state-hash.ts';
export {
  NodeStateRenderer,
  type KeyedClusterDataSource,
  type NodeStateRendererOptions,
  type RenderedChange,
} from './node-state-renderer.ts';
export { ExpectedNodeStateHashes, type ExpectedHashStats } from './expected-node-state-hashes.ts';
