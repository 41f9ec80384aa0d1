import { isIP } from 'node:net';

/** Where the planner's HTTP API listens. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** Only this machine can connect (127.0.0.0/8, ::1, localhost). */
  readonly loopback: boolean;
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses `HOST:PORT`, `[IP]:PORT`, `:PORT` or `PORT` (the last two on 127.0.0.1); port 0 picks
 * a free one. Throws one line that names `flag` and says what was expected.
 */
export function parseListenAddress(text: string, flag = '--http'): ListenAddress {
  const bad = (why: string) =>
    new Error(`${flag} ${JSON.stringify(text)}: ${why} (expected HOST:PORT, e.g. 127.0.0.1:9440)`);
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  if (!m) throw bad('not an address');
  const host = m[1] ?? (m[2] || '127.0.0.1');
  // brackets around an IPv4 address too: `[$(HOST_IP)]:PORT` from the downward API is either family
  if (m[1] !== undefined && isIP(host) === 0) throw bad(`${host} is not an IP address`);
  if (!isIP(host) && !HOSTNAME.test(host)) throw bad(`${host} is not an IP address or host name`);
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port > 65535) throw bad(`port ${m[3]} is out of range`);
  return { host, port, loopback: isLoopback(host) };
}

function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return /^::ffff:127\./i.test(host);
}

/**
 * An API without tokens lets anyone who reaches it pin, roll back and roll out. The planner serves
 * it on loopback only unless the operator says, in so many words, that this is intended.
 */
export function checkOpenApi(
  addr: ListenAddress,
  o: { tokenFile?: string; insecureOpenApi?: boolean },
  flag = '--http',
): void {
  if (o.tokenFile || o.insecureOpenApi || addr.loopback) return;
  throw new Error(
    `${flag} ${addr.host}:${addr.port} is not a loopback address and there is no --token-file: anyone who reaches it could operate the cluster; give --token-file FILE (or --insecure-open-api to allow it anyway)`,
  );
}

/**
 * The applier's --http: what parseListenAddress takes, or `[IP,IP,…]:PORT`, several addresses on
 * one port (`[$(HOST_IPS)]:9441` with the downward API's status.hostIPs on a dual-stack node:
 * probe18 D6). Throws one line naming `flag`.
 */
export function parseListenAddressList(text: string, flag = '--http'): ListenAddress[] {
  const m = /^\[([^\]]*,[^\]]*)\]:(\d+)$/.exec(text);
  if (!m) return [parseListenAddress(text, flag)];
  return m[1]!.split(',').map((h) => parseListenAddress(`[${h.trim()}]:${m[2]}`, flag));
}
