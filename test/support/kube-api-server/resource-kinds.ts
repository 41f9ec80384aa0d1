// The three resource kinds the test apiserver serves, and the discovery documents a
// client may fetch before using them.

export type ResourceKind = 'Service' | 'EndpointSlice' | 'Node';

export interface ResourceInfo {
  kind: ResourceKind;
  apiVersion: string;
  /** URL prefix of the API group version: `/api/v1` or `/apis/<group>/<version>`. */
  prefix: string;
  plural: string;
  namespaced: boolean;
  /** Kinds with a status subresource ignore status on a plain update, as the apiserver does. */
  hasStatus: boolean;
}

export const RESOURCES: Record<ResourceKind, ResourceInfo> = {
  Service: {
    kind: 'Service',
    apiVersion: 'v1',
    prefix: '/api/v1',
    plural: 'services',
    namespaced: true,
    hasStatus: true,
  },
  EndpointSlice: {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    prefix: '/apis/discovery.k8s.io/v1',
    plural: 'endpointslices',
    namespaced: true,
    hasStatus: false,
  },
  Node: { kind: 'Node', apiVersion: 'v1', prefix: '/api/v1', plural: 'nodes', namespaced: false, hasStatus: true },
};

export const RESOURCE_KINDS = Object.keys(RESOURCES) as ResourceKind[];

function resourceList(groupVersion: string, infos: ResourceInfo[]): unknown {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: infos.flatMap((r) => {
      const main = {
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['get', 'list', 'watch'],
      };
      const status = {
        name: `${r.plural}/status`,
        singularName: '',
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['get'],
      };
      return r.hasStatus ? [main, status] : [main];
    }),
  };
}

/** Discovery documents by exact path. */
export function discoveryDocuments(): Map<string, unknown> {
  const core = RESOURCE_KINDS.map((k) => RESOURCES[k]).filter((r) => r.prefix === '/api/v1');
  const discovery = RESOURCE_KINDS.map((k) => RESOURCES[k]).filter((r) => r.apiVersion === 'discovery.k8s.io/v1');
  return new Map<string, unknown>([
    [
      '/version',
      {
        major: '1',
        minor: '31',
        gitVersion: 'v1.31.0-switchboard-test',
        gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean',
        buildDate: '2024-08-13T00:00:00Z',
        goVersion: 'go1.22.5',
        compiler: 'gc',
        platform: 'linux/amd64',
      },
    ],
    [
      '/api',
      {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1:6443' }],
      },
    ],
    ['/api/v1', resourceList('v1', core)],
    [
      '/apis',
      {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [
          {
            name: 'discovery.k8s.io',
            versions: [{ groupVersion: 'discovery.k8s.io/v1', version: 'v1' }],
            preferredVersion: { groupVersion: 'discovery.k8s.io/v1', version: 'v1' },
          },
        ],
      },
    ],
    [
      '/apis/discovery.k8s.io',
      {
        kind: 'APIGroup',
        apiVersion: 'v1',
        name: 'discovery.k8s.io',
        versions: [{ groupVersion: 'discovery.k8s.io/v1', version: 'v1' }],
        preferredVersion: { groupVersion: 'discovery.k8s.io/v1', version: 'v1' },
      },
    ],
    ['/apis/discovery.k8s.io/v1', resourceList('discovery.k8s.io/v1', discovery)],
  ]);
}
