import { createServer, type Server } from 'node:http';
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
 * /readyz (200 once the node runs its target, else 503 saying what it waits for), /healthz (200 while the last reconcile succeeded or none was needed, else 503, with a JSON
 * status body either way) and /metrics (Prometheus text).
 */
export async function startHttpEndpoint(o: {
  address: string;
  registry: Registry;
  health: () => { healthy: boolean } & Record<string, unknown>;
  ready?: () => { ready: boolean } & Record<string, unknown>;
}): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const { host, port } = parseListenAddress(o.address);
  const server = createServer((req, res) => {
    void (async () => {
      const url = (req.url ?? '/').split('?')[0];
      if (url === '/healthz') {
        const h = o.health();
        res.writeHead(h.healthy ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(h) + '\n');
      } else if (url === '/readyz' && o.ready) {
        const r = o.ready();
        res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(r) + '\n');
      } else if (url === '/metrics') {
        res.writeHead(200, { 'content-type': o.registry.contentType });
        res.end(await o.registry.metrics());
      } else {
        res.writeHead(404).end('not found\n');
      }
    })().catch((e) => {
      res.writeHead(500).end(String(e) + '\n');
    });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, host, () => res());
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
