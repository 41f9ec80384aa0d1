import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Registry } from 'prom-client';

/** Parses "host:port", ":port" or "port". */
export function parseListenAddress(addr: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d+)$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`invalid --http address ${JSON.stringify(addr)} (want HOST:PORT)`);
  const host = (m[1] ?? '').replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/**
 * Parses what parseListenAddress takes, and `[IP,IP,…]:PORT`: several addresses, one port (a
 * dual-stack node's addresses from the downward API, `[$(HOST_IPS)]:9441` with status.hostIPs:
 * probe18 D6). Hosts: undefined for "0.0.0.0", every address of every family (listenHttp).
 */
export function parseListenAddresses(addr: string): { hosts: (string | undefined)[]; port: number } {
  const list = /^\[([^\]]*,[^\]]*)\]:(\d+)$/.exec(addr);
  if (list) {
    const hosts = list[1]!.split(',').map((h) => h.trim());
    const bad = hosts.find((h) => isIP(h) === 0);
    if (bad !== undefined)
      throw new Error(`invalid --http address ${JSON.stringify(addr)}: ${JSON.stringify(bad)} is not an IP address`);
    return { hosts, port: parseListenAddress(`:${list[2]}`).port };
  }
  const { host, port } = parseListenAddress(addr);
  return { hosts: [host === '0.0.0.0' ? undefined : host], port };
}

/** A listening HTTP server and how to stop it (open connections are cut, not waited for). */
export interface HttpListener {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Listens on `port` at `host` (undefined: every address of every family, as Go's "0.0.0.0" does
 * for kube-proxy); rejects with the listen error (EADDRINUSE, EACCES) instead of throwing later.
 */
export async function listenHttp(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  port: number,
  host?: string,
): Promise<HttpListener> {
  const server = createServer(handler);
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, host, () => {
      server.off('error', rej);
      res();
    });
  });
  const a = server.address();
  return {
    server,
    port: typeof a === 'object' && a ? a.port : port,
    close: () =>
      new Promise<void>((res) => {
        server.closeAllConnections();
        server.close(() => res());
      }),
  };
}

/**
 * listenHttp on each of `hosts` (parseListenAddresses), one port: port 0 is the one the first
 * listener picked. A listen that fails closes the ones before it.
 */
export async function listenHttpOn(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  port: number,
  hosts: readonly (string | undefined)[],
): Promise<HttpListener> {
  const all: HttpListener[] = [];
  try {
    for (const host of hosts) all.push(await listenHttp(handler, all[0]?.port ?? port, host));
  } catch (e) {
    await Promise.all(all.map((l) => l.close()));
    throw e;
  }
  return {
    server: all[0]!.server,
    port: all[0]!.port,
    close: async () => {
      await Promise.all(all.map((l) => l.close()));
    },
  };
}

/** A JSON answer, one line, with kube-proxy's nosniff header. */
export function writeJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'x-content-type-options': 'nosniff', ...headers });
  res.end(JSON.stringify(body) + '\n');
}

/**
 * /readyz (200 once the node runs its target and follows it, else 503 saying why), /livez (200
 * unless the process can no longer follow anything short of a restart), /healthz (200 while the
 * last reconcile succeeded or none was needed, else 503, with a JSON status body either way) and
 * /metrics (Prometheus text). deploy/kubernetes probes readiness on /readyz, liveness on /livez.
 */
export async function startHttpEndpoint(o: {
  address: string;
  registry: Registry;
  health: () => { healthy: boolean } & Record<string, unknown>;
  ready?: () => { ready: boolean } & Record<string, unknown>;
  live?: () => { live: boolean } & Record<string, unknown>;
}): Promise<HttpListener> {
  const { hosts, port } = parseListenAddresses(o.address);
  return listenHttpOn(
    (req, res) => {
      void (async () => {
        const url = (req.url ?? '/').split('?')[0];
        if (url === '/healthz') {
          const h = o.health();
          writeJson(res, h.healthy ? 200 : 503, h);
        } else if (url === '/readyz' && o.ready) {
          const r = o.ready();
          writeJson(res, r.ready ? 200 : 503, r);
        } else if (url === '/livez' && o.live) {
          const l = o.live();
          writeJson(res, l.live ? 200 : 503, l);
        } else if (url === '/metrics') {
          res.writeHead(200, { 'content-type': o.registry.contentType });
          res.end(await o.registry.metrics());
        } else {
          res.writeHead(404).end('not found\n');
        }
      })().catch((e) => {
        res.writeHead(500).end(String(e) + '\n');
      });
    },
    port,
    // "0.0.0.0" is every address of every family, as Go's is (kube-proxy): node's is IPv4 only,
    // and the kubelet probes a pod's first IP, IPv6 on an IPv6-first cluster (probe18 D5)
    hosts,
  );
}
