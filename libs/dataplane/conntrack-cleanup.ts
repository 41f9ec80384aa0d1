import { execFile } from 'node:child_process';
import { virtualServerKey, realServerKey, type NodeState, type Protocol } from '../model/index.ts';

/**
 * Conntrack entries that would keep connectionless traffic on the wrong path after an apply. A UDP
 * (or SCTP) "connection" lives as long as the client keeps sending: a DNS client or a game server's
 * peer whose flow was NATed to an endpoint that is gone keeps being sent there (conntrack NATs every
 * later datagram of the entry the same way) until the client stops for the entry's timeout. TCP
 * needs nothing: a removed endpoint's connections fail and the client reconnects. Like kube-proxy
 * (pkg/proxy/conntrack/cleanup.go), after an apply:
 * - an endpoint removed from a UDP/SCTP virtual server: the entries NATed to it are deleted;
 * - a UDP/SCTP virtual server that had no endpoint and now has one: every entry to its address and
 *   port is deleted (made while nothing answered, none is NATed to an endpoint).
 * Pure; deleteStaleFlows runs the conntrack tool.
 */
export interface StaleFlow {
  /** UDP or SCTP from staleFlows; the IPVS backend also names the protocol its op removed. */
  readonly protocol: Protocol;
  /** The virtual server's address and port: the entry's original destination. */
  readonly address: string;
  readonly port: number;
  /** The endpoint the entries were NATed to; absent: every entry to address:port. */
  readonly endpoint?: { readonly address: string; readonly port: number };
}

export function staleFlows(prev: NodeState | undefined, next: NodeState): StaleFlow[] {
  if (!prev) return [];
  const before = new Map(prev.virtualServers.map((vs) => [virtualServerKey(vs), vs]));
  const after = new Map(next.virtualServers.map((vs) => [virtualServerKey(vs), vs]));
  const out: StaleFlow[] = [];
  for (const [key, vs] of before) {
    if (vs.protocol === 'TCP') continue;
    const { protocol } = vs;
    const kept = new Set((after.get(key)?.realServers ?? []).map(realServerKey));
    for (const rs of vs.realServers)
      if (!kept.has(realServerKey(rs)))
        out.push({ protocol, address: vs.address, port: vs.port, endpoint: { address: rs.address, port: rs.port } });
  }
  for (const [key, vs] of after) {
    if (vs.protocol === 'TCP' || vs.realServers.length === 0) continue;
    const was = before.get(key);
    if (!was || was.realServers.length === 0) out.push({ protocol: vs.protocol, address: vs.address, port: vs.port });
  }
  return out;
}

/** `conntrack -D` arguments deleting `f`'s entries (IPv6 named: the tool assumes IPv4). */
export function conntrackDeleteArgs(f: StaleFlow): string[] {
  const args = ['-D'];
  if (f.address.includes(':')) args.push('-f', 'ipv6');
  args.push('-p', f.protocol.toLowerCase(), '--orig-dst', f.address, '--orig-port-dst', String(f.port));
  if (f.endpoint) args.push('--reply-src', f.endpoint.address, '--reply-port-src', String(f.endpoint.port));
  return args;
}

export function describeFlow(f: StaleFlow): string {
  const vip = `${f.protocol}/${f.address.includes(':') ? `[${f.address}]` : f.address}:${f.port}`;
  return f.endpoint ? `${vip} → ${realServerKey(f.endpoint)}` : vip;
}

/**
 * Deletes the entries of one flow; none there is no failure (the tool exits 1 saying "0 flow
 * entries"). `netns`: run inside that namespace (`ip netns exec`).
 */
export function deleteFlow(f: StaleFlow, netns?: string): Promise<void> {
  const args = conntrackDeleteArgs(f);
  const [cmd, argv] = netns ? ['ip', ['netns', 'exec', netns, 'conntrack', ...args]] : ['conntrack', args];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv as string[], (err, _stdout, stderr) => {
      if (!err || /0 flow entries have been deleted/.test(stderr)) return resolve();
      reject(new Error(`conntrack ${args.join(' ')}: ${(stderr || err.message).trim().split('\n')[0]}`));
    });
  });
}

/**
 * Deletes every flow's entries; a failure (the tool missing, a kernel without conntrack) is said,
 * never thrown: the apply it follows succeeded, and the entries still expire on their timeout.
 * Returns the notes for the apply's result.
 */
export async function deleteStaleFlows(flows: readonly StaleFlow[], netns?: string): Promise<string[]> {
  if (flows.length === 0) return [];
  const failed: string[] = [];
  await Promise.all(flows.map((f) => deleteFlow(f, netns).catch((e) => failed.push((e as Error).message))));
  const notes = [`conntrack: cleared the entries of ${flows.length - failed.length} stale UDP/SCTP flow(s)`];
  if (failed.length) notes.push(`conntrack: ${failed.length} cleanup(s) failed, first: ${failed[0]}`);
  return notes;
}
