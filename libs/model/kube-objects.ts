/**
 * Validated, normalised views of the three Kubernetes kinds the planner reads. Readers in
 * kube-readers.ts produce these from raw API objects; everything downstream trusts them.
 * Addresses are canonical text (see ip-address.ts), lists keep the API's order.
 */
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

/** The kinds Switchboard reads: one list, the type and the runtime check derive from it. */
export const KUBE_KINDS = ['Service', 'EndpointSlice', 'Node'] as const;
export type KubeKind = (typeof KUBE_KINDS)[number];
export const isKubeKind = (v: unknown): v is KubeKind => (KUBE_KINDS as readonly unknown[]).includes(v);

export interface ObjectMeta {
  readonly namespace: string; // '' for cluster-scoped kinds (Node)
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface ServicePort {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly nodePort: number; // 0 when not allocated
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export type TrafficPolicy = 'Cluster' | 'Local';

export interface ServiceObject {
  readonly kind: 'Service';
  readonly meta: ObjectMeta;
  readonly type: ServiceType;
  /** Canonical cluster IPs; empty for headless (clusterIP None) and ExternalName services. */
  readonly clusterIPs: readonly string[];
  readonly headless: boolean;
  readonly ports: readonly ServicePort[];
  readonly externalIPs: readonly string[];
  /** LoadBalancer status IPs with ipMode VIP (or none); `Proxy` ones are the load balancer's to serve. */
  readonly loadBalancerIngress: readonly string[];
  /** Canonical CIDRs. */
  readonly loadBalancerSourceRanges: readonly string[];
  readonly sessionAffinity: 'None' | 'ClientIP';
  readonly affinityTimeoutSeconds: number;
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  readonly healthCheckNodePort: number; // 0 when none
  /** Topology-aware routing requested (topology-mode annotation Auto or trafficDistribution PreferClose). */
  readonly topologyAware: boolean;
}

export interface EndpointPort {
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
}

export interface Endpoint {
  readonly addresses: readonly string[];
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly nodeName: string; // '' when unknown
  readonly zone: string; // '' when unknown
  readonly hintZones: readonly string[];
  /** hints.forNodes names (PreferSameNode), in the API's order. */
  readonly hintNodes: readonly string[];
}

export interface EndpointSliceObject {
  readonly kind: 'EndpointSlice';
  readonly meta: ObjectMeta;
  /** Name of the owning Service (label kubernetes.io/service-name). */
  readonly serviceName: string;
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  readonly ports: readonly EndpointPort[];
  readonly endpoints: readonly Endpoint[];
}

export interface NodeAddress {
  readonly type: string; // InternalIP, ExternalIP (Hostname entries are dropped)
  readonly address: string;
}

export interface NodeObject {
  readonly kind: 'Node';
  readonly meta: ObjectMeta;
  readonly addresses: readonly NodeAddress[];
  readonly zone: string; // topology.kubernetes.io/zone label, '' when absent
  /**
   * What marks the Node as on its way out, '' when nothing does: kube-proxy's proxier health
   * (proxy_health.go SyncNode) answers 503 on /healthz for a Node with a deletionTimestamp or the
   * cluster autoscaler's taint, so load balancers drain it before it goes.
   */
  readonly beingRemoved: '' | 'deletionTimestamp' | typeof TO_BE_DELETED_TAINT;
}

/** The taint the cluster autoscaler puts on a Node it is about to remove (kube-proxy reads it too). */
export const TO_BE_DELETED_TAINT = 'ToBeDeletedByClusterAutoscaler';

export type KubeObject = ServiceObject | EndpointSliceObject | NodeObject;

/** "Kind namespace/name" key used for the object everywhere (logs, change trackers, errors). */
export function objectKey(kind: KubeKind, namespace: string, name: string): string {
  return namespace ? `${kind} ${namespace}/${name}` : `${kind} ${name}`;
}

export function keyOf(obj: KubeObject): string {
  return objectKey(obj.kind, obj.meta.namespace, obj.meta.name);
}

/** "namespace/name" of a service, the key of its entry in cluster data. */
export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
/** A Service (and its slices) with this label belongs to the proxy it names, not to us (as kube-proxy). */
export const SERVICE_PROXY_NAME_LABEL = 'service.kubernetes.io/service-proxy-name';
/** Set by the EndpointSlice controller on the slices of a headless Service; kube-proxy skips those slices. */
export const HEADLESS_LABEL = 'service.kubernetes.io/headless';
