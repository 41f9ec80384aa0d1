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

/**
 * These objects (all of a state's, or only those that changed since a verified state). Walked
 * with builtins rather than for-loops: see BULK_LOOPS in plan-kernel-ops.ts.
 */
export function validateParts(
  virtualServers: readonly VirtualServer[],
  addresses: readonly string[],
  ipsets: readonly IpsetState[],
): string | undefined {
  // findIndex, unlike some/forEach, also visits the holes of a sparse array (refused as undefined)
  let why: string | undefined;
  if (virtualServers.findIndex((vs) => (why = invalidVirtualServer(vs)) !== undefined) >= 0) return why;
  const a = addresses.findIndex((x) => canonicalIp(x) === undefined);
  if (a >= 0) return `invalid bound address ${JSON.stringify(addresses[a])}`;
  if (ipsets.findIndex((set) => !set || typeof set.name !== 'string' || !Array.isArray(set.entries)) >= 0)
    return 'invalid ipset';
  return undefined;
}

function invalidVirtualServer(vs: VirtualServer): string | undefined {
  if (
    !vs ||
    canonicalIp(vs.address) === undefined ||
    !Array.isArray(vs.realServers) ||
    !Array.isArray(vs.schedulerFlags)
  )
    return `invalid virtual server ${JSON.stringify(vs?.address)}`;
  if (!['TCP', 'UDP', 'SCTP'].includes(vs.protocol)) return `invalid protocol ${JSON.stringify(vs.protocol)}`;
  if (vs.realServers.findIndex((rs) => !rs || canonicalIp(rs.address) === undefined) >= 0)
    return `invalid real server in ${vs.address}:${vs.port}`;
  return undefined;
}
