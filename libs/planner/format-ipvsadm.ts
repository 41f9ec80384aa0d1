import { byCodeUnit, hostPort, kernelIpText, type NodeState, type VirtualServer } from '../model/index.ts';

/** The service part of an ipvsadm rule: "-t 10.0.0.1:80", "-u ...", "--sctp-service ...". */
export function ipvsadmServiceArg(vs: Pick<VirtualServer, 'protocol' | 'address' | 'port'>): string {
  const flag = vs.protocol === 'TCP' ? '-t' : vs.protocol === 'UDP' ? '-u' : '--sctp-service';
  return `${flag} ${hostPort(kernelIpText(vs.address), vs.port)}`;
}

/**
 * Lines exactly as `ipvsadm -Sn` prints these rules (print_service_entry in ipvsadm.c, save
 * format), sorted in C-locale order because the kernel's own order is its hash order; addresses
 * as inet_ntop writes them (kernelIpText: `[::1.2.3.4]`).
 * Persistence uses the kernel's default netmask (/32, /128), which ipvsadm leaves out.
 */
export function formatIpvsadm(state: Pick<NodeState, 'virtualServers'>): string {
  const lines: string[] = [];
  for (const vs of state.virtualServers) {
    const svc = ipvsadmServiceArg(vs);
    let head = `-A ${svc} -s ${vs.scheduler}`;
    if (vs.schedulerFlags.length > 0) head += ` -b ${vs.schedulerFlags.join(',')}`;
    if (vs.persistenceTimeout > 0) head += ` -p ${vs.persistenceTimeout}`;
    lines.push(head);
    for (const rs of vs.realServers)
      lines.push(`-a ${svc} -r ${hostPort(kernelIpText(rs.address), rs.port)} -m -w ${rs.weight}`);
  }
  return lines
    .sort(byCodeUnit)
    .map((l) => l + '\n')
    .join('');
}
