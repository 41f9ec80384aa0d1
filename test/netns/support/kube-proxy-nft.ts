import { createHash } from 'node:crypto';

/**
 * What kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go, Kubernetes 1.31+) programs for
 * a set of Services, in its own shapes and names: table `ip kube-proxy` with the filter/nat base
 * chains at kube-proxy's priorities, the `services` dispatch chain, the service-ips and
 * service-nodeports verdict maps, one `service-HASH-ns/name/proto/port` chain per service port
 * (numgen random mod N over endpoint chains) and one `endpoint-HASH-...__IP/PORT` chain per
 * endpoint (DNAT), mark-for-masquerade/masquerading; and `ip6 kube-proxy` with the same base
 * chains (a dual-stack node has both). Used to put a test node in the state kube-proxy leaves.
 */
export interface KubeProxyService {
  readonly namespace: string;
  readonly name: string;
  readonly portName: string;
  readonly clusterIP: string;
  readonly port: number;
  readonly nodePort?: number;
  readonly endpoints: readonly { ip: string; port: number }[];
}

const hash = (s: string) =>
  createHash('sha256')
    .update(s)
    .digest('base64')
    .replace(/[^A-Z2-7]/g, '')
    .slice(0, 8);

function baseChains(family: 'ip' | 'ip6'): string[] {
  const t = `${family} kube-proxy`;
  return [
    `add table ${t} { comment "rules for kube-proxy" ; }`,
    `add chain ${t} mark-for-masquerade`,
    `add rule ${t} mark-for-masquerade mark set mark or 0x4000`,
    `add chain ${t} masquerading`,
    `add rule ${t} masquerading mark and 0x4000 == 0 return`,
    `add rule ${t} masquerading mark set mark xor 0x4000`,
    `add rule ${t} masquerading masquerade fully-random`,
    `add chain ${t} services`,
    `add chain ${t} service-endpoints-check`,
    `add chain ${t} filter-prerouting { type filter hook prerouting priority -110 ; }`,
    `add chain ${t} filter-input { type filter hook input priority -110 ; }`,
    `add chain ${t} filter-forward { type filter hook forward priority -110 ; }`,
    `add chain ${t} filter-output { type filter hook output priority -110 ; }`,
    `add chain ${t} filter-output-post-dnat { type filter hook output priority -90 ; }`,
    `add chain ${t} nat-prerouting { type nat hook prerouting priority -100 ; }`,
    `add chain ${t} nat-output { type nat hook output priority -100 ; }`,
    `add chain ${t} nat-postrouting { type nat hook postrouting priority 100 ; }`,
    `add rule ${t} nat-prerouting jump services`,
    `add rule ${t} nat-output jump services`,
    `add rule ${t} nat-postrouting jump masquerading`,
    `add set ${t} cluster-ips { type ${family === 'ip' ? 'ipv4_addr' : 'ipv6_addr'} ; comment "Active ClusterIPs" ; }`,
    `add map ${t} service-ips { type ${family === 'ip' ? 'ipv4_addr' : 'ipv6_addr'} . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
    `add map ${t} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
    `add rule ${t} services ${family} daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${t} services fib daddr type local meta l4proto . th dport vmap @service-nodeports`,
  ];
}

export function kubeProxyNftRuleset(services: readonly KubeProxyService[], clusterCIDR = '10.77.0.0/16'): string {
  const lines = [...baseChains('ip'), ...baseChains('ip6')];
  const t = 'ip kube-proxy';
  for (const s of services) {
    const id = `${s.namespace}/${s.name}/tcp/${s.portName}`;
    const svc = `service-${hash(id)}-${id}`;
    const eps = s.endpoints.map((e) => `endpoint-${hash(`${id}${e.ip}`)}-${id}__${e.ip}/${e.port}`);
    lines.push(`add chain ${t} ${svc}`);
    lines.push(
      `add rule ${t} ${svc} ip daddr ${s.clusterIP} tcp dport ${s.port} ip saddr != ${clusterCIDR} jump mark-for-masquerade`,
    );
    s.endpoints.forEach((e, i) => {
      lines.push(`add chain ${t} ${eps[i]}`);
      lines.push(`add rule ${t} ${eps[i]} ip saddr ${e.ip} jump mark-for-masquerade`);
      lines.push(`add rule ${t} ${eps[i]} meta l4proto tcp dnat to ${e.ip}:${e.port}`);
    });
    lines.push(
      `add rule ${t} ${svc} numgen random mod ${s.endpoints.length} vmap { ${eps.map((c, i) => `${i} : goto ${c}`).join(' , ')} }`,
    );
    lines.push(`add element ${t} cluster-ips { ${s.clusterIP} }`);
    lines.push(`add element ${t} service-ips { ${s.clusterIP} . tcp . ${s.port} : goto ${svc} }`);
    if (s.nodePort) {
      const ext = `external-${hash(id)}-${id}`;
      lines.push(`add chain ${t} ${ext}`);
      lines.push(`add rule ${t} ${ext} jump mark-for-masquerade`);
      lines.push(`add rule ${t} ${ext} goto ${svc}`);
      lines.push(`add element ${t} service-nodeports { tcp . ${s.nodePort} : goto ${ext} }`);
    }
  }
  return lines.join('\n') + '\n';
}
