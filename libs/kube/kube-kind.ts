// The three resource kinds Switchboard watches, and where their collections live.

export type KubeKind = 'Service' | 'EndpointSlice' | 'Node';

export const KUBE_KINDS: readonly KubeKind[] = ['Service', 'EndpointSlice', 'Node'];

export interface KubeKindInfo {
  kind: KubeKind;
  apiVersion: string;
  /** Cluster-wide collection path (all namespaces). */
  path: string;
  namespaced: boolean;
}

export const KUBE_KIND_INFO: Readonly<Record<KubeKind, KubeKindInfo>> = {
  Service: { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services', namespaced: true },
  EndpointSlice: {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    path: '/apis/discovery.k8s.io/v1/endpointslices',
    namespaced: true,
  },
  Node: { kind: 'Node', apiVersion: 'v1', path: '/api/v1/nodes', namespaced: false },
};

export function isKubeKind(value: unknown): value is KubeKind {
  return typeof value === 'string' && Object.hasOwn(KUBE_KIND_INFO, value);
}
