import { describe, expect, it } from 'vitest';
import {
  conntrackDeleteArgs,
  describeFlow,
  parseConntrackList,
  staleFlows,
  staleFlowsInTable,
} from '../../../libs/dataplane/conntrack-cleanup.ts';
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

  it('a restarted applier (no last state) filters the listed conntrack table against the endpoints it programmed (probe22 T1)', () => {
    const listed = [
      // NATed to an endpoint that is gone: stale
      'udp      17 29 src=10.2.0.9 dst=10.96.0.53 sport=40053 dport=53 src=10.1.0.1 dst=10.2.0.9 sport=53 dport=40053 mark=0 use=1',
      // the same endpoint from another client: one flow, deduplicated
      'udp      17 12 src=10.2.0.8 dst=10.96.0.53 sport=5000 dport=53 src=10.1.0.1 dst=10.2.0.8 sport=53 dport=5000 [ASSURED] mark=0 use=1',
      // NATed to an endpoint still there: kept
      'udp      17 29 src=10.2.0.9 dst=10.96.0.53 sport=40054 dport=53 src=10.1.0.2 dst=10.2.0.9 sport=53 dport=40054 mark=0 use=1',
      // not NATed (made while nothing served it) to a server that has endpoints now: stale
      'udp      17 29 src=10.2.0.9 dst=10.96.0.53 sport=40055 dport=53 [UNREPLIED] src=10.96.0.53 dst=10.2.0.9 sport=53 dport=40055 mark=0 use=1',
      // not a service of ours: left alone
      'udp      17 29 src=10.2.0.9 dst=8.8.8.8 sport=40056 dport=53 src=8.8.8.8 dst=10.2.0.9 sport=53 dport=40056 mark=0 use=1',
      // IPv6, the tool's compressed text against the model's: stale
      'udp      17 29 src=fd00:2::9 dst=fd00::a sport=4000 dport=53 src=fd00:1::1 dst=fd00:2::9 sport=53 dport=4000 mark=0 use=1',
      'tcp      6 117 TIME_WAIT src=10.2.0.9 dst=10.96.0.10 sport=4000 dport=80 src=10.1.0.1 dst=10.2.0.9 sport=8080 dport=4000 [ASSURED] mark=0 use=1',
      // TCP (probe22 T4): an un-NATed attempt made while the table was missing: stale; an un-NATed
      // established connection (to a real host then) is never touched
      'tcp      6 118 SYN_SENT src=10.2.0.9 dst=10.96.0.10 sport=4001 dport=80 [UNREPLIED] src=10.96.0.10 dst=10.2.0.9 sport=80 dport=4001 mark=0 use=1',
      'tcp      6 431999 ESTABLISHED src=10.2.0.9 dst=10.96.0.10 sport=4002 dport=80 src=10.96.0.10 dst=10.2.0.9 sport=80 dport=4002 [ASSURED] mark=0 use=1',
      'conntrack v1.4.7 (conntrack-tools): 9 flow entries have been shown.',
    ].join('\n');
    const entries = parseConntrackList(listed);
    expect(entries).toHaveLength(9);
    expect(entries.filter((e) => e.protocol === 'TCP').map((e) => e.state)).toEqual([
      'TIME_WAIT',
      'SYN_SENT',
      'ESTABLISHED',
    ]);
    const now = nodeState([dns(['10.1.0.2:53']), web(['10.1.0.2:8080']), dns(['[fd00:1::2]:53'], 'fd00:0::a')]);
    const flows = staleFlowsInTable(now, entries);
    expect(flows.map(describeFlow).sort()).toEqual([
      'TCP/10.96.0.10:80 → 10.96.0.10:80',
      'UDP/10.96.0.53:53 → 10.1.0.1:53',
      // the un-NATed entries only (reply source: the server itself), not the flows NATed to 10.1.0.2
      'UDP/10.96.0.53:53 → 10.96.0.53:53',
      'UDP/[fd00::a]:53 → [fd00:1::1]:53',
    ]);
    expect(flows.map(conntrackDeleteArgs)).toContainEqual([
      '-D',
      '-p',
      'tcp',
      '--orig-dst',
      '10.96.0.10',
      '--orig-port-dst',
      '80',
      '--reply-src',
      '10.96.0.10',
      '--reply-port-src',
      '80',
      '--state',
      'SYN_SENT',
    ]);
    expect(flows.map(conntrackDeleteArgs)).toContainEqual([
      '-D',
      '-p',
      'udp',
      '--orig-dst',
      '10.96.0.53',
      '--orig-port-dst',
      '53',
      '--reply-src',
      '10.96.0.53',
      '--reply-port-src',
      '53',
    ]);
    // a server without endpoints: its un-NATed entries are what the reject made, nothing to clear
    expect(staleFlowsInTable(nodeState([dns([])]), entries).map(describeFlow)).toEqual([
      'UDP/10.96.0.53:53 → 10.1.0.1:53',
      'UDP/10.96.0.53:53 → 10.1.0.2:53',
    ]);
  });
});
