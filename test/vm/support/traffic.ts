// Real traffic from inside a network namespace, for checking what the kernel does with
// it. Each request is one short bash process (bash's /dev/tcp and /dev/udp): starting
// node per request would cost over a second under TCG, bash costs a few milliseconds.
import { run } from './exec.ts';

/** What an echo server (echo-server.mjs) answered. */
export interface EchoReply {
  /** Name of the pod that answered. */
  pod: string;
  /** Source address the pod saw, "ip:port" (shows masquerading). */
  peer: string;
}

export interface RequestOptions {
  /** Give up after this long (default 15 s: under TCG on a loaded host, starting the
   *  few processes of one request alone can take seconds). */
  timeoutMs?: number;
}

export class NoReplyError extends Error {}

function parseReply(text: string, what: string): EchoReply {
  const m = /^(\S+) (\S+)\n?$/.exec(text);
  if (!m) throw new NoReplyError(`${what}: no echo reply (got ${JSON.stringify(text)})`);
  return { pod: m[1]!, peer: m[2]! };
}

async function viaBash(
  ns: string,
  script: string,
  args: string[],
  timeoutMs: number,
  what: string,
): Promise<EchoReply> {
  const seconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const r = await run(['ip', 'netns', 'exec', ns, 'timeout', seconds, 'bash', '-c', script, 'req', ...args], {
    allowFailure: true,
    timeoutMs: timeoutMs + 30_000,
  });
  if (r.code !== 0) throw new NoReplyError(`${what}: failed (exit ${r.code}) ${r.stderr.trim()}`);
  return parseReply(r.stdout, what);
}

/** Opens a TCP connection from `ns` to ip:port and returns the echo server's reply. */
export function tcpRequest(ns: string, ip: string, port: number, opts: RequestOptions = {}): Promise<EchoReply> {
  const script = 'exec 3<>"/dev/tcp/$1/$2" && cat <&3';
  return viaBash(ns, script, [ip, String(port)], opts.timeoutMs ?? 15_000, `tcp ${ns} -> ${ip}:${port}`);
}

/** Sends one UDP datagram from `ns` to ip:port and returns the reply. */
export function udpRequest(ns: string, ip: string, port: number, opts: RequestOptions = {}): Promise<EchoReply> {
  // A connected UDP socket: the reply must come back from ip:port, as it would for a
  // real client behind a service VIP (so an un-NATed reply counts as no reply).
  // dd reads one datagram in one read(); bash's read builtin reads a byte at a time,
  // which on a datagram socket takes the first byte and discards the rest.
  const script = 'exec 3<>"/dev/udp/$1/$2" && printf "ping\\n" >&3 && dd bs=65536 count=1 status=none <&3';
  return viaBash(ns, script, [ip, String(port)], opts.timeoutMs ?? 15_000, `udp ${ns} -> ${ip}:${port}`);
}

/** Sends `count` sequential TCP requests; returns how many each pod answered. */
export async function tcpSpread(
  ns: string,
  ip: string,
  port: number,
  count: number,
  opts: RequestOptions = {},
): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const { pod } = await tcpRequest(ns, ip, port, opts);
    seen.set(pod, (seen.get(pod) ?? 0) + 1);
  }
  return seen;
}
