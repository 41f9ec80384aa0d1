import type { NodeObject, Protocol, TrafficPolicy } from './kube-objects.ts';

/**
 * Cluster data: the node-independent content of a data version. One entry per proxied service
 * (its spec merged with the endpoints of all its slices) and one per node (only the facts that
 * rendering uses), so that status-only churn on Nodes or Services never makes a new version.
 */
export interface EndpointEntry {
  readonly ip: string;
  readonly port: number;
  readonly nodeName: string;
  readonly zone: string;
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly hintZones: readonly string[];
  /** Present only when the slice gave node hints (PreferSameNode): entries without stay as they were. */
  readonly hintNodes?: readonly string[];
}

export interface ServicePortEntry {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly nodePort: number;
  /** Sorted by (ip, port); one entry per ip:port. */
  readonly endpoints: readonly EndpointEntry[];
}

export interface ServiceEntry {
  readonly key: string; // namespace/name
  readonly clusterIPs: readonly string[];
  readonly externalIPs: readonly string[];
  readonly loadBalancerIngress: readonly string[];
  readonly loadBalancerSourceRanges: readonly string[];
  readonly affinityTimeoutSeconds: number; // 0 = no session affinity
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  readonly healthCheckNodePort: number;
  /**
   * The Service's topology opt-in, as read. Kept in the data (its hash), but endpoint selection
   * follows the slice hints alone, as kube-proxy's does: the EndpointSlice controller writes hints
   * only for Services that opted in.
   */
  readonly topologyAware: boolean;
  /** NodePorts are programmed only for NodePort and LoadBalancer services. */
  readonly nodePorts: boolean;
  /** Sorted by name. */
  readonly ports: readonly ServicePortEntry[];
}

export interface NodeFacts {
  readonly name: string;
  /** InternalIP and ExternalIP addresses, sorted, unique. */
  readonly addresses: readonly string[];
  readonly zone: string;
  /**
   * What marks the Node as on its way out (NodeObject.beingRemoved); absent when nothing does, so
   * a Node that is not leaving hashes as it did before this field existed (replayed versions keep
   * their hashes).
   */
  readonly beingRemoved?: Exclude<NodeObject['beingRemoved'], ''>;
}

/** A whole data version's content, as plain sorted arrays (checkpoint form). */
export interface ClusterData {
  readonly services: readonly ServiceEntry[];
  readonly nodes: readonly NodeFacts[];
}

/** The difference between two data versions: O(change) in size, whatever the cluster size. */
export interface DataDelta {
  readonly upsertServices: readonly ServiceEntry[];
  readonly removeServices: readonly string[];
  readonly upsertNodes: readonly NodeFacts[];
  readonly removeNodes: readonly string[];
}

/**
 * The content hashes (contentHash: SHA-256 of the canonical JSON) of a delta's upserted entries,
 * in the same order as `upsertServices` and `upsertNodes`. The planner computes them once and a
 * delta message carries them, so a node can check the version hash without hashing every entry
 * again; a node takes them only when the payload is vouched for (docs/distribution.md).
 */
export interface EntryHashes {
  readonly services: readonly string[];
  readonly nodes: readonly string[];
}

export function isEmptyDelta(d: DataDelta): boolean {
  return d.upsertServices.length + d.removeServices.length + d.upsertNodes.length + d.removeNodes.length === 0;
}
