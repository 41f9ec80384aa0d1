import type { NodeProxySettings } from '../../model/index.ts';

/**
 * Sysctls kube-proxy's ipvs mode sets (pkg/proxy/ipvs/proxier.go). All of them are per network
 * namespace, so an applier running in a node netns sets them there. Values are what the kernel
 * prints (decimal text).
 */
export function nodeSysctls(
  settings: Pick<NodeProxySettings, 'strictARP'>,
  kernelRelease: string,
  rateEstimation?: boolean,
): Record<string, string> {
  const out: Record<string, string> = {
    // IPVS must keep conntrack entries so the SNAT rules (masquerade, hairpin) can see its traffic.
    'net.ipv4.vs.conntrack': '1',
    // Drop connections to deleted real servers at once instead of blackholing them.
    'net.ipv4.vs.expire_nodest_conn': '1',
    // Expire persistence templates whose real server went to weight 0.
    'net.ipv4.vs.expire_quiescent_template': '1',
    'net.ipv4.ip_forward': '1',
  };
  // Before 5.9 connection reuse caused 1 s delays on quick reconnects; kube-proxy sets 0 there and
  // leaves the (fixed) newer kernels alone.
  if (kernelOlderThan(kernelRelease, 5, 9)) out['net.ipv4.vs.conn_reuse_mode'] = '0';
  // Not kube-proxy's: IPVS's per-service and per-real-server rate estimators (Linux 5.16+), only
  // when the operator chose (--ipvs-rate-estimation); undefined leaves the kernel's setting alone.
  // Why and what it costs: docs/applier-ipvs.md "Rate estimation".
  if (rateEstimation !== undefined) out['net.ipv4.vs.run_estimation'] = rateEstimation ? '1' : '0';
  if (settings.strictARP) {
    // Do not answer ARP for the VIPs on kube-ipvs0 (needed for MetalLB-style L2 announcements).
    out['net.ipv4.conf.all.arp_ignore'] = '1';
    out['net.ipv4.conf.all.arp_announce'] = '2';
  }
  return out;
}

export function kernelOlderThan(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a < major || (a === major && b < minor);
}

/** /proc/sys path of a dotted sysctl name. */
export function sysctlPath(name: string): string {
  return `/proc/sys/${name.replace(/\./g, '/')}`;
}
