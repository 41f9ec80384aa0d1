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
  /** TCP: only the entries in this state (`SYN_SENT`). */
  readonly state?: string;
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

/** One conntrack entry as `conntrack -L` prints it: its original destination and its reply source. */
export interface ConntrackEntry {
  readonly protocol: Protocol;
  /** TCP only: the entry's state (`SYN_SENT`, `ESTABLISHED`, …). */
  readonly state?: string;
  readonly origDst: string;
  readonly origDport: number;
  readonly replySrc: string;
  readonly replySport: number;
}

/** The canonical text of an address (IPv6 compressed, lower case), so model and tool agree. */
function canonical(address: string): string {
  if (!address.includes(':')) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase();
  }
}

/**
 * Parses `conntrack -L` output (one entry a line: `udp 17 29 src=… dst=… sport=… dport=… [UNREPLIED]
 * src=… dst=… sport=… dport=… …`; the first tuple is the original direction, the second the
 * reply); lines of other protocols or without both tuples are skipped.
 */
export function parseConntrackList(text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const line of text.split('\n')) {
    const head = /(?:^|\s)(udp|sctp|tcp)\s+\d+\s+\d+\s+(?:([A-Z_]+)\s)?/.exec(line);
    const proto = head?.[1];
    if (!head || !proto) continue;
    const src = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
    const dst = [...line.matchAll(/\bdst=(\S+)/g)].map((m) => m[1]!);
    const sport = [...line.matchAll(/\bsport=(\d+)/g)].map((m) => Number(m[1]));
    const dport = [...line.matchAll(/\bdport=(\d+)/g)].map((m) => Number(m[1]));
    if (src.length < 2 || dst.length < 1 || sport.length < 2 || dport.length < 1) continue;
    out.push({
      protocol: proto === 'udp' ? 'UDP' : proto === 'tcp' ? 'TCP' : 'SCTP',
      ...(proto === 'tcp' && head[2] ? { state: head[2] } : {}),
      origDst: canonical(dst[0]!),
      origDport: dport[0]!,
      replySrc: canonical(src[1]!),
      replySport: sport[1]!,
    });
  }
  return out;
}

/**
 * What an applier that knows no last state (just started, or restarted after a crash mid-apply)
 * clears after its first apply, from the conntrack table itself, as kube-proxy >= 1.31 filters the
 * whole table against the current endpoints: each UDP/SCTP entry to one of `state`'s virtual
 * servers NATed to an address and port that is none of its endpoints now (removed while the
 * applier was down: the flow would stay on it), and the entries to a virtual server with endpoints
 * that were never NATed (made while nothing answered; deleted by their reply source, the server's
 * own address, so the flows NATed to its endpoints stay). One flow per virtual server and endpoint.
 */
export function staleFlowsInTable(state: NodeState, entries: readonly ConntrackEntry[]): StaleFlow[] {
  const servers = new Map<string, { vs: NodeState['virtualServers'][number]; endpoints: Set<string> }>();
  for (const vs of state.virtualServers) {
    const all = [...vs.realServers, ...(vs.localRealServers ?? []), ...(vs.clusterRealServers ?? [])];
    servers.set(virtualServerKey({ protocol: vs.protocol, address: canonical(vs.address), port: vs.port }), {
      vs,
      endpoints: new Set(all.map((rs) => realServerKey({ address: canonical(rs.address), port: rs.port }))),
    });
  }
  const out = new Map<string, StaleFlow>();
  for (const e of entries) {
    const s = servers.get(virtualServerKey({ protocol: e.protocol, address: e.origDst, port: e.origDport }));
    if (!s) continue;
    const { vs, endpoints } = s;
    const natted = e.replySrc !== e.origDst || e.replySport !== e.origDport;
    if (vs.protocol === 'TCP') {
      // TCP: only an un-NATed attempt that never got an answer (SYN_SENT), made while the table
      // was missing: a client reusing its 5-tuple matched it as a retransmission, never NATed,
      // for the entry's 120 s, refreshed by every try (probe22 T4). Connections are never touched.
      if (!natted && e.state === 'SYN_SENT' && endpoints.size > 0) {
        const f: StaleFlow = {
          protocol: vs.protocol,
          address: e.origDst,
          port: vs.port,
          endpoint: { address: e.origDst, port: vs.port },
          state: 'SYN_SENT',
        };
        out.set(describeFlow(f), f);
      }
      continue;
    }
    const server = { protocol: vs.protocol, address: e.origDst, port: vs.port };
    let f: StaleFlow | undefined;
    if (natted && !endpoints.has(realServerKey({ address: e.replySrc, port: e.replySport })))
      f = { ...server, endpoint: { address: e.replySrc, port: e.replySport } };
    // reply source = the server itself: only the un-NATed entries, never the flows NATed to endpoints
    else if (!natted && endpoints.size > 0) f = { ...server, endpoint: { address: e.origDst, port: vs.port } };
    if (f) out.set(describeFlow(f), f);
  }
  return [...out.values()];
}

/**
 * Lists the UDP/SCTP conntrack entries of the families and protocols `state` has such virtual
 * servers of (none: no spawn) and returns the stale flows among them (staleFlowsInTable). A
 * failure to list is a note, never thrown.
 */
export async function staleFlowsOnStart(
  state: NodeState,
  netns?: string,
): Promise<{ flows: StaleFlow[]; notes: string[] }> {
  const wanted = new Set<string>();
  for (const vs of state.virtualServers)
    wanted.add(`${vs.address.includes(':') ? 'ipv6' : 'ipv4'} ${vs.protocol.toLowerCase()}`);
  const entries: ConntrackEntry[] = [];
  const notes: string[] = [];
  for (const w of wanted) {
    const [family, proto] = w.split(' ') as [string, string];
    // TCP: the connection attempts only (few), never the whole table
    const args = ['-L', '-f', family, '-p', proto, ...(proto === 'tcp' ? ['--state', 'SYN_SENT'] : [])];
    const [cmd, argv] = netns ? ['ip', ['netns', 'exec', netns, 'conntrack', ...args]] : ['conntrack', args];
    try {
      const text = await new Promise<string>((resolve, reject) => {
        execFile(cmd, argv as string[], { maxBuffer: 1 << 30 }, (err, stdout, stderr) =>
          err ? reject(new Error((stderr || err.message).trim().split('\n')[0])) : resolve(stdout),
        );
      });
      entries.push(...parseConntrackList(text));
    } catch (e) {
      notes.push(`conntrack: could not list ${family} ${proto} entries to clear stale flows: ${(e as Error).message}`);
    }
  }
  return { flows: staleFlowsInTable(state, entries), notes };
}

/** `conntrack -D` arguments deleting `f`'s entries (IPv6 named: the tool assumes IPv4). */
export function conntrackDeleteArgs(f: StaleFlow): string[] {
  const args = ['-D'];
  if (f.address.includes(':')) args.push('-f', 'ipv6');
  args.push('-p', f.protocol.toLowerCase(), '--orig-dst', f.address, '--orig-port-dst', String(f.port));
  if (f.endpoint) args.push('--reply-src', f.endpoint.address, '--reply-port-src', String(f.endpoint.port));
  if (f.state) args.push('--state', f.state);
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
  const tcp = flows.filter((f) => f.protocol === 'TCP').length;
  const cleared = flows.length - failed.length;
  const notes = [
    tcp === 0
      ? `conntrack: cleared the entries of ${cleared} stale UDP/SCTP flow(s)`
      : `conntrack: cleared the entries of ${cleared} stale flow(s), ${tcp} of them un-NATed TCP connection attempts`,
  ];
  if (failed.length) notes.push(`conntrack: ${failed.length} cleanup(s) failed, first: ${failed[0]}`);
  return notes;
}
