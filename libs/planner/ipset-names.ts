import { parseCidr, type IpFamily, type IpsetType, type Protocol } from '../model/index.ts';

/**
 * The ipsets kube-proxy's ipvs mode keeps, with their types, in kube-proxy's order. IPv6 sets carry
 * the "KUBE-6-" prefix kube-proxy uses so both families can coexist (names cut at 31 characters).
 */
export const IPSET_TABLE = [
  ['KUBE-LOOP-BACK', 'hash:ip,port,ip'],
  ['KUBE-CLUSTER-IP', 'hash:ip,port'],
  ['KUBE-EXTERNAL-IP', 'hash:ip,port'],
  ['KUBE-EXTERNAL-IP-LOCAL', 'hash:ip,port'],
  ['KUBE-LOAD-BALANCER', 'hash:ip,port'],
  ['KUBE-LOAD-BALANCER-FW', 'hash:ip,port'],
  ['KUBE-LOAD-BALANCER-LOCAL', 'hash:ip,port'],
  ['KUBE-LOAD-BALANCER-SOURCE-IP', 'hash:ip,port,ip'],
  ['KUBE-LOAD-BALANCER-SOURCE-CIDR', 'hash:ip,port,net'],
  ['KUBE-NODE-PORT-TCP', 'bitmap:port'],
  ['KUBE-NODE-PORT-LOCAL-TCP', 'bitmap:port'],
  ['KUBE-NODE-PORT-UDP', 'bitmap:port'],
  ['KUBE-NODE-PORT-LOCAL-UDP', 'bitmap:port'],
  ['KUBE-NODE-PORT-SCTP-HASH', 'hash:ip,port'],
  ['KUBE-NODE-PORT-LOCAL-SCTP-HASH', 'hash:ip,port'],
  ['KUBE-HEALTH-CHECK-NODE-PORT', 'bitmap:port'],
  ['KUBE-IPVS-IPS', 'hash:ip'],
] as const satisfies readonly (readonly [string, IpsetType])[];

export type IpsetBaseName = (typeof IPSET_TABLE)[number][0];

export function ipsetName(base: IpsetBaseName, family: IpFamily): string {
  return family === 'IPv4' ? base : base.replace('KUBE-', 'KUBE-6-').slice(0, 31);
}

export function nodePortSetBase(protocol: Protocol, local: boolean): IpsetBaseName {
  switch (protocol) {
    case 'TCP':
      return local ? 'KUBE-NODE-PORT-LOCAL-TCP' : 'KUBE-NODE-PORT-TCP';
    case 'UDP':
      return local ? 'KUBE-NODE-PORT-LOCAL-UDP' : 'KUBE-NODE-PORT-UDP';
    case 'SCTP':
      return local ? 'KUBE-NODE-PORT-LOCAL-SCTP-HASH' : 'KUBE-NODE-PORT-SCTP-HASH';
  }
}

/** "10.0.0.1,tcp:80" — the `ipset save` form of a hash:ip,port member. */
export function ipPortEntry(ip: string, protocol: Protocol, port: number): string {
  return `${ip},${protocol.toLowerCase()}:${port}`;
}

/**
 * "203.0.113.9,tcp:80,192.0.2.0/24" — the `ipset save` form of a hash:ip,port,net member. A
 * host-length network (x/32, x/128) is written without its prefix, as the kernel reads it back
 * (libs/netlink/ipset-entry-text.ts), so verification and resync compare equal text.
 */
export function ipPortNetEntry(ip: string, protocol: Protocol, port: number, cidr: string): string {
  const net = parseCidr(cidr);
  const host = net !== undefined && net.prefix === (net.family === 'IPv4' ? 32 : 128);
  return `${ipPortEntry(ip, protocol, port)},${host ? net.text.slice(0, net.text.indexOf('/')) : (net?.text ?? cidr)}`;
}
