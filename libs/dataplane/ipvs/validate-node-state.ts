import { canonicalIp, parseCidr, type IpsetState, type NodeState, type VirtualServer } from '../../model/index.ts';

/**
 * Checks the shape of a NodeState before anything is planned from it. A corrupt or truncated
 * state (missing arrays, bad addresses) must be refused outright: planned naively it would
 * read as "nothing desired" and delete everything that is programmed.
 */
export function validateNodeState(s: NodeState): string | undefined {
  return validateShape(s) ?? validateParts(s.virtualServers, s.boundAddresses, s.ipsets);
}

/** The state's frame and settings, without its (possibly many) objects. */
export function validateShape(s: NodeState): string | undefined {
  if (!s || typeof s !== 'object') return 'node state is not an object';
  if (!Array.isArray(s.virtualServers) || !Array.isArray(s.boundAddresses) || !Array.isArray(s.ipsets))
    return 'node state lacks virtualServers/boundAddresses/ipsets';
  if (!s.settings || typeof s.settings !== 'object' || !Array.isArray(s.settings.excludeCIDRs))
    return 'node state lacks settings';
  for (const c of s.settings.excludeCIDRs) if (!parseCidr(c)) return `invalid excludeCIDR ${JSON.stringify(c)}`;
  if (s.settings.clusterCIDR !== '' && !parseCidr(s.settings.clusterCIDR))
    return `invalid clusterCIDR ${JSON.stringify(s.settings.clusterCIDR)}`;
  return undefined;
}

/** These objects (all of a state's, or only those that changed since a verified state). */
export function validateParts(
  virtualServers: readonly VirtualServer[],
  addresses: readonly string[],
  ipsets: readonly IpsetState[],
): string | undefined {
  for (const vs of virtualServers) {
    if (
      !vs ||
      canonicalIp(vs.address) === undefined ||
      !Array.isArray(vs.realServers) ||
      !Array.isArray(vs.schedulerFlags)
    )
      return `invalid virtual server ${JSON.stringify(vs?.address)}`;
    if (!['TCP', 'UDP', 'SCTP'].includes(vs.protocol)) return `invalid protocol ${JSON.stringify(vs.protocol)}`;
    for (const rs of vs.realServers)
      if (!rs || canonicalIp(rs.address) === undefined) return `invalid real server in ${vs.address}:${vs.port}`;
  }
  for (const a of addresses) if (canonicalIp(a) === undefined) return `invalid bound address ${JSON.stringify(a)}`;
  for (const set of ipsets)
    if (!set || typeof set.name !== 'string' || !Array.isArray(set.entries)) return 'invalid ipset';
  return undefined;
}
