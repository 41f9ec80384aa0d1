import { describe, expect, it } from 'vitest';
import { NODES, planFor, service, slice } from '../../support/plan-fixture.ts';

// Where kube-proxy's Service semantics and ours once differed (probe6 findings), checked on the
// plan every node renders (ipvsadm / ipset text, as `switchboard plan` prints it).

const HTTP = '[{name: http, port: 8080, protocol: TCP}]';
const ep = (ip: string, node: string, cond = '{ready: true}', extra = '') =>
  `{addresses: [${ip}], nodeName: ${node}, conditions: ${cond}${extra}}`;

describe('LoadBalancer ingress ipMode (probe6 P4)', () => {
  const yaml = (ingress: string) =>
    NODES +
    service(
      'lb',
      'type: LoadBalancer\n  clusterIP: 10.96.0.9\n  ports: [{name: http, port: 80, nodePort: 31009}]',
      `status: {loadBalancer: {ingress: ${ingress}}}`,
    ) +
    slice('lb', HTTP, [ep('10.244.2.9', 'node-b')]);

  it('programs VIP-mode and unset-mode addresses, never Proxy-mode ones (kube-proxy IsVIPMode)', () => {
    const plan = planFor(
      yaml('[{ip: 198.51.100.1, ipMode: Proxy}, {ip: 198.51.100.2, ipMode: VIP}, {ip: 198.51.100.3}]'),
    );
    expect(plan.rejected).toEqual([]);
    expect(plan.ipvsadm).toContain('-A -t 198.51.100.2:80 -s rr');
    expect(plan.ipvsadm).toContain('-A -t 198.51.100.3:80 -s rr');
    expect(plan.ipvsadm.filter((l) => l.includes('198.51.100.1'))).toEqual([]);
    expect(plan.ipsetAdds.filter((l) => l.includes('198.51.100.1'))).toEqual([]);
    expect(plan.state.boundAddresses).toEqual(['10.96.0.9', '198.51.100.2', '198.51.100.3']);
  });

  it('renders a Service whose ingress states no ipMode exactly as before ipMode was read', () => {
    const unset = planFor(yaml('[{ip: 198.51.100.2}]')).state;
    const vip = planFor(yaml('[{ip: 198.51.100.2, ipMode: VIP}]')).state;
    expect(vip).toEqual(unset);
    expect(unset.boundAddresses).toContain('198.51.100.2');
  });
});
