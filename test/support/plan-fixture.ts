import { parseManifestText, readProxyConfig, type NodeState } from '../../libs/model/index.ts';
import {
  ClusterState,
  formatIpsetSave,
  formatIpvsadm,
  renderNodeState,
  vipConflicts,
} from '../../libs/planner/index.ts';

export interface PlanResult {
  state: NodeState;
  /** `ipvsadm -Sn` lines. */
  ipvsadm: string[];
  /** `add SET ENTRY` lines of `ipset save`. */
  ipsetAdds: string[];
  rejected: string[];
  /** vipConflicts, as `ref: reason`. */
  conflicts: string[];
}

/** Renders manifests (YAML text) for one node, the way `switchboard plan` does. */
export function planFor(yaml: string, node = 'node-a', config: Record<string, unknown> = {}): PlanResult {
  const { objects, rejected } = parseManifestText(yaml, 'test.yaml');
  const cluster = ClusterState.fromObjects(objects);
  const proxyConfig = readProxyConfig(config);
  const state = renderNodeState(cluster.data, node, proxyConfig);
  return {
    state,
    ipvsadm: formatIpvsadm(state).split('\n').filter(Boolean),
    ipsetAdds: formatIpsetSave(state)
      .split('\n')
      .filter((l) => l.startsWith('add ')),
    rejected: rejected.map((r) => `${r.ref}: ${r.reason}`),
    conflicts: vipConflicts(cluster.data, proxyConfig).map((r) => `${r.ref}: ${r.reason}`),
  };
}

/** Two nodes in different zones, with InternalIP addresses in TEST-NET-1. */
export const NODES = `
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {topology.kubernetes.io/zone: zone-a}}
status: {addresses: [{type: InternalIP, address: 192.0.2.10}, {type: InternalIP, address: "2001:db8::10"}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b, labels: {topology.kubernetes.io/zone: zone-b}}
status: {addresses: [{type: InternalIP, address: 192.0.2.11}]}
`;

/** A Service manifest with a default cluster IP and one TCP port 80; `spec` is merged in. */
export function service(name: string, spec: string, extra = ''): string {
  return `
---
apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
  ${spec}
${extra}`;
}

/** An EndpointSlice for service `svc` with the given endpoints (YAML flow items). */
export function slice(
  svc: string,
  ports: string,
  endpoints: string[],
  opts: { name?: string; addressType?: string } = {},
): string {
  return `
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${opts.name ?? svc + '-1'}, namespace: default, labels: {kubernetes.io/service-name: ${svc}}}
addressType: ${opts.addressType ?? 'IPv4'}
ports: ${ports}
endpoints:
${endpoints.map((e) => `  - ${e}`).join('\n')}
`;
}
