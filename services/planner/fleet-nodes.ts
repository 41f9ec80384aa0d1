import { matchesLabelSelector, type LabelSelector } from '../../libs/model/index.ts';

/** What decides the fleet: the nodes the cluster names, the ones reporting, and `--node-selector`. */
export interface FleetInput {
  /** Nodes the published data names (their Node objects). */
  readonly dataNodes: Iterable<string>;
  /** Nodes heard (an ACK/NACK or a heartbeat) within the silence threshold. */
  readonly heard: Iterable<string>;
  /** `planner --node-selector`: which Nodes run an applier. Absent: every Node. */
  readonly selector?: LabelSelector;
  /** The labels of a node's current Node object; undefined when the cluster has no Node of that name. */
  readonly labelsOf: (node: string) => Readonly<Record<string, string>> | undefined;
}

export interface Fleet {
  /** The nodes status lists and rollouts wave over, sorted. */
  readonly nodes: readonly string[];
  /** Nodes whose Node the selector leaves out but which report anyway (an applier runs there), sorted. */
  readonly outside: readonly string[];
}

/**
 * The fleet: every node the cluster's data names, silent or not, and a node it does not name (an
 * applier without a Node object, or one whose Node was deleted) only while it reports (review4
 * G1); minus the Nodes `--node-selector` leaves out (probe4 K8: Windows nodes, virtual-kubelet or
 * Fargate-style nodes, nodes the applier DaemonSet's nodeSelector skips never ACK, so a rollout
 * halted on them at its wave timeout and `ctl wait` never finished). Such a node is in no wave and
 * no wait; silent, it is not shown at all; reporting (an applier runs there anyway), it is in
 * `outside`, shown with the reason. A node without a Node object has no labels to judge: it stays
 * in the fleet while it reports, as before. Pure.
 */
export function fleetNodes(i: FleetInput): Fleet {
  const heard = new Set(i.heard);
  const nodes: string[] = [];
  const outside: string[] = [];
  for (const node of new Set([...i.dataNodes, ...heard])) {
    const place = fleetPlace(node, heard.has(node), i);
    if (place === 'fleet') nodes.push(node);
    else if (place === 'outside') outside.push(node);
  }
  return { nodes: nodes.sort(), outside: outside.sort() };
}

/**
 * fleetNodes' rule for one node the data names or that was heard (`heard`): in the fleet, or
 * outside it (the selector leaves its Node out, yet it reports), or neither (left out and
 * silent). For a caller that asks about a few nodes (a rollout's wave, on every ACK) without
 * building the whole fleet.
 */
export function fleetPlace(
  node: string,
  heard: boolean,
  i: Pick<FleetInput, 'selector' | 'labelsOf'>,
): 'fleet' | 'outside' | undefined {
  const labels = i.selector ? i.labelsOf(node) : undefined;
  if (labels === undefined || matchesLabelSelector(i.selector!, labels)) return 'fleet';
  return heard ? 'outside' : undefined;
}

/** The reason on an outside node's status row. */
export function outsideReason(selector: LabelSelector): string {
  return `outside the fleet: its Node does not match --node-selector '${selector.text}' (in no rollout wave and no ctl wait)`;
}
