import { describe, expect, it } from 'vitest';
import { parseLabelSelector } from '../../../libs/model/index.ts';
import { fleetNodes } from '../../../services/planner/fleet-nodes.ts';

// Which nodes rollouts wave over and `ctl wait` waits for (probe4 K8): the pure rule.

const labels: Record<string, Record<string, string>> = {
  linux: { 'kubernetes.io/os': 'linux' },
  'linux-silent': { 'kubernetes.io/os': 'linux' },
  windows: { 'kubernetes.io/os': 'windows' },
  'windows-reporting': { 'kubernetes.io/os': 'windows' },
  fargate: { 'eks.amazonaws.com/compute-type': 'fargate', 'kubernetes.io/os': 'linux' },
};
const dataNodes = Object.keys(labels);
const heard = ['linux', 'windows-reporting', 'no-node-object'];
const labelsOf = (n: string) => labels[n];

describe('fleetNodes', () => {
  it('without a selector: every Node, and a node without one while it reports (review4 G1)', () => {
    expect(fleetNodes({ dataNodes, heard, labelsOf })).toEqual({
      nodes: ['fargate', 'linux', 'linux-silent', 'no-node-object', 'windows', 'windows-reporting'],
      outside: [],
    });
  });

  it('a selector leaves its non-matching Nodes out; one that reports anyway is shown as outside', () => {
    const selector = parseLabelSelector('kubernetes.io/os=linux,eks.amazonaws.com/compute-type!=fargate');
    expect(fleetNodes({ dataNodes, heard, labelsOf, selector })).toEqual({
      // silent linux nodes stay (a new node still starting its applier); no Node object: no labels to judge
      nodes: ['linux', 'linux-silent', 'no-node-object'],
      outside: ['windows-reporting'],
    });
  });

  it('the Node of the moment decides: a node the data names but whose Node is gone is judged by nothing', () => {
    const selector = parseLabelSelector('kubernetes.io/os=linux');
    expect(fleetNodes({ dataNodes: ['pinned-only'], heard: [], labelsOf: () => undefined, selector })).toEqual({
      nodes: ['pinned-only'],
      outside: [],
    });
    // an empty selector selects everything, as kubectl's does
    expect(fleetNodes({ dataNodes, heard, labelsOf, selector: parseLabelSelector('') }).outside).toEqual([]);
  });
});
