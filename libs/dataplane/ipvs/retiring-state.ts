import { virtualServerKey, type NodeState } from '../../model/index.ts';
import type { ObservedKernel } from './observed-kernel.ts';

/**
 * What ipvs mode keeps while it retires behind nftables mode (ModeFollowingDataplane), so that
 * connections IPVS made keep their endpoint until they close. nftables DNATs every new connection
 * in prerouting, before IPVS sees it at local-in, and its filter rules match `ct state new` only;
 * a connection IPVS made is IPVS's (ip_vs_conn), not a conntrack NAT binding, so its packets
 * need the VIP still local and the IPVS service still there (probe23: without this they reset).
 *
 * Kept: each TCP service of `state` whose real servers in the kernel still hold a connection, with none
 * wanted, so graceful termination (graceful-termination.ts) sets them to weight 0 and deletes
 * each once its connections reach 0 or the drain timeout passes, its start kept in the ownership
 * record across restarts. Its VIP stays bound, the glue and sets stay as `state` has them.
 * Not kept: services without connections (nothing to drain), UDP and SCTP ones (no
 * connection to wait for; graceful termination deletes those at once too), and services gone from
 * `state` (deleted at once, as ipvs mode deletes a removed service), nor any service new since
 * the switch: nothing is added to IPVS while it retires.
 */
export function retiringState(state: NodeState, observed: ObservedKernel): NodeState {
  const holding = new Set(
    observed.virtualServers
      .filter((v) => v.realServers.some((rs) => rs.activeConns + rs.inactiveConns > 0))
      .map((v) => virtualServerKey(v)),
  );
  const kept = state.virtualServers
    .filter((vs) => vs.protocol === 'TCP' && holding.has(virtualServerKey(vs)))
    .map((vs) => ({ ...vs, realServers: [] }));
  const addresses = new Set(kept.map((vs) => vs.address));
  return {
    ...state,
    virtualServers: kept,
    boundAddresses: state.boundAddresses.filter((a) => addresses.has(a)),
  };
}

/** Real servers left on a retiring state's services (each still draining), and their connections. */
export interface DrainingLeft {
  readonly realServers: number;
  readonly connections: number;
}

export function drainingLeft(state: NodeState, observed: ObservedKernel): DrainingLeft {
  const keys = new Set(state.virtualServers.map((vs) => virtualServerKey(vs)));
  let realServers = 0;
  let connections = 0;
  for (const v of observed.virtualServers) {
    if (!keys.has(virtualServerKey(v))) continue;
    realServers += v.realServers.length;
    for (const rs of v.realServers) connections += rs.activeConns + rs.inactiveConns;
  }
  return { realServers, connections };
}
