import type { ClusterDataIndex } from '../../libs/planner/index.ts';

export interface VersionDiff {
  readonly addedServices: string[];
  readonly removedServices: string[];
  readonly changedServices: string[];
  readonly addedNodes: string[];
  readonly removedNodes: string[];
  readonly changedNodes: string[];
}

/** What changed from content a to content b, by service key and node name. */
export function versionDiff(a: ClusterDataIndex, b: ClusterDataIndex): VersionDiff {
  const d = b.deltaFrom(a);
  const svc = d.upsertServices.map((s) => s.key);
  const nodes = d.upsertNodes.map((n) => n.name);
  return {
    addedServices: svc.filter((k) => a.service(k) === undefined),
    removedServices: [...d.removeServices],
    changedServices: svc.filter((k) => a.service(k) !== undefined),
    addedNodes: nodes.filter((n) => a.node(n) === undefined),
    removedNodes: [...d.removeNodes],
    changedNodes: nodes.filter((n) => a.node(n) !== undefined),
  };
}
