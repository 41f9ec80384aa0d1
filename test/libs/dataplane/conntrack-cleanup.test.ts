import { describe, expect, it } from 'vitest';
import { conntrackDeleteArgs, describeFlow, staleFlows } from '../../../libs/dataplane/conntrack-cleanup.ts';
import { nodeState, type VsSpec } from '../../netns/support/node-state-builder.ts';

const dns = (endpoints: string[], address = '10.96.0.53'): VsSpec => ({
  servicePort: 'kube-system/dns:dns',
  address,
  port: 53,
  protocol: 'UDP',
  endpoints,
});
const web = (endpoints: string[]): VsSpec => ({
  servicePort: 'default/web:http',
  address: '10.96.0.10',
  port: 80,
  endpoints,
});

describe('stale UDP/SCTP flows after an apply (probe6 P13, like kube-proxy conntrack cleanup)', () => {
  it('a removed UDP endpoint: its entries; a removed TCP one: none; a first endpoint: every entry to the address', () => {
    const before = nodeState([dns(['10.1.0.1:53', '10.1.0.2:53']), web(['10.1.0.1:8080']), dns([], 'fd00::a')]);
    const after = nodeState([dns(['10.1.0.2:53']), web([]), dns(['[fd00:1::1]:53'], 'fd00::a')]);
    const flows = staleFlows(before, after);
    expect(flows.map(describeFlow).sort()).toEqual(['UDP/10.96.0.53:53 → 10.1.0.1:53', 'UDP/[fd00::a]:53']);
    expect(flows.map(conntrackDeleteArgs).sort()).toEqual([
      ['-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', 'fd00::a', '--orig-port-dst', '53'],
      [
        '-D',
        '-p',
        'udp',
        '--orig-dst',
        '10.96.0.53',
        '--orig-port-dst',
        '53',
        '--reply-src',
        '10.1.0.1',
        '--reply-port-src',
        '53',
      ],
    ]);
    // a virtual server that goes entirely takes its endpoints' entries with it
    expect(staleFlows(before, nodeState([])).map(describeFlow)).toEqual([
      'UDP/10.96.0.53:53 → 10.1.0.1:53',
      'UDP/10.96.0.53:53 → 10.1.0.2:53',
    ]);
  });

  it('nothing without a last state (a restarted applier) or without a change', () => {
    const s = nodeState([dns(['10.1.0.1:53'])]);
    expect(staleFlows(undefined, s)).toEqual([]);
    expect(staleFlows(s, s)).toEqual([]);
  });
});
