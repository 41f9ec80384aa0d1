// The three resource kinds Switchboard watches, and where their collections live.

import type { KubeKind } from '../model/index.ts';

// One list of kinds (libs/model); the type and the check come from it.
export { KUBE_KINDS, isKubeKind, type KubeKind } from '../model/index.ts';

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
