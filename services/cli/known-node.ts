import type { ClusterDataIndex } from '../../libs/planner/index.ts';
import { UsageError } from './cli-errors.ts';

/**
 * `--node NAME` for plan and apply: a directory without Node objects renders for any name (no
 * node facts, no NodePorts); one that lists nodes makes a name outside them a mistake. For apply
 * that mistake would program the host for a node with no addresses (its NodePorts and Local
 * load-balancer rules gone), so both refuse it before rendering.
 */
export function requireKnownNode(data: ClusterDataIndex, node: string, manifests: string): void {
  const nodes = [...data.nodeNames()].sort();
  if (nodes.length === 0 || nodes.includes(node)) return;
  const listed = nodes.slice(0, 10).join(', ') + (nodes.length > 10 ? `, +${nodes.length - 10} more` : '');
  throw new UsageError(`--node ${node}: no Node of that name in ${manifests} (nodes: ${listed})`);
}
