// The slice of HTTP the informer needs: GET a JSON document, and open a watch stream.
//
// Why raw HTTP instead of the library's Watch/ListWatch/generated list calls: the sink
// must be awaited before the next event is read. The library's Watch pushes lines into a
// synchronous callback and keeps reading, so a slow sink would only queue events in
// memory; reading the response ourselves gives real backpressure. It also reports a
// watch-start failure only as its HTTP status text, losing the `Status` body (the 410
// reason), and the generated list calls turn objects into typed models (Dates etc.) while
// the event log wants the raw JSON. Authentication, TLS and proxies still come from the
// KubeConfig (applyToHTTPSOptions), so every auth method the library supports works.

import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError } from './kube-api-error.ts';
import { jsonLines } from './watch-lines.ts';

export interface KubeRequest {
  path: string;
  query?: Record<string, string>;
  signal?: AbortSignal;
  /** Abort when no bytes arrive for this long (default 60 s). */
  idleTimeoutMs?: number;
  /**
   * Called with the API server's clock as its `Date` header gave it (ms; the header has whole
   * seconds, so the middle of that second) once a 200 arrives: a caller that stamps what the
   * cluster checks (the credential issuer) measures its own clock against it.
   */
  onServerDate?: (serverMs: number) => void;
}

export interface KubeHttp {
  getJson(request: KubeRequest): Promise<unknown>;
  /** Resolves once the server answered 200; yields each parsed JSON line of the stream. */
  watch(request: KubeRequest): Promise<AsyncIterable<unknown>>;
}

const MAX_ERROR_BODY = 64 * 1024;

async function readBody(res: IncomingMessage, limit = Infinity): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The agent a request goes out on: the library's (KubeConfig.createAgent, cached per cluster and
 * user) made to keep its connections. The library builds a plain `new http(s).Agent(tlsOptions)`,
 * and such an agent (unlike Node's global one) closes each socket after its response: every LIST
 * page, and every watch, opened a new TCP connection — on a real cluster a TLS handshake on both
 * ends — and the informer waited for the connect before the server saw its request (issue 15
 * item 4: 41 connections for the 41 pages of a 10k-service list). The keep-alive twin has the
 * same TLS options, so a connection is reused only where the library's agent would have opened
 * an equal one. A proxy agent (socks, hpagent) is used as the library made it.
 */
function keepAliveAgent(made: unknown, twins: WeakMap<object, http.Agent>): unknown {
  if (!(made instanceof http.Agent) || (made.constructor !== http.Agent && made.constructor !== https.Agent))
    return made;
  let twin = twins.get(made);
  if (!twin) {
    const Agent = made instanceof https.Agent ? https.Agent : http.Agent;
    // Agent keeps its constructor options in `options` (typed only on https.Agent).
    const options = (made as http.Agent & { options?: http.AgentOptions }).options ?? {};
    twin = new Agent({ ...options, keepAlive: true });
    twins.set(made, twin);
  }
  return twin;
}

export function kubeHttpFromConfig(kc: KubeConfig): KubeHttp {
  const twins = new WeakMap<object, http.Agent>();
  const open = async (request: KubeRequest): Promise<{ res: IncomingMessage; context: string }> => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + request.path);
    for (const [key, value] of Object.entries(request.query ?? {})) url.searchParams.set(key, value);
    const context = `GET ${request.path}${url.search}`;
    const options: https.RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
    await kc.applyToHTTPSOptions(options);
    options.agent = keepAliveAgent(options.agent, twins) as https.RequestOptions['agent'];
    const transport = url.protocol === 'https:' ? https : http;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = transport.request(url, { ...options, signal: request.signal }, resolve);
      req.setTimeout(request.idleTimeoutMs ?? 60_000, () =>
        req.destroy(new Error(`${context}: no data for ${request.idleTimeoutMs ?? 60_000} ms`)),
      );
      // Keepalive probes let the kernel notice a peer that is gone for good; the informer's own
      // idle bound (watchIdleMs) covers what keepalive cannot (a proxy that still answers).
      req.on('socket', (socket) => socket.setKeepAlive(true, 30_000));
      req.on('error', reject);
      req.end();
    });
    if (res.statusCode !== 200) {
      const text = await readBody(res, MAX_ERROR_BODY).catch(() => '');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      const retryAfter = res.headers['retry-after'];
      throw KubeApiError.fromStatus(res.statusCode ?? 0, body, context, retryAfter);
    }
    const date = Date.parse(res.headers.date ?? '');
    if (request.onServerDate && Number.isFinite(date)) request.onServerDate(date + 500);
    return { res, context };
  };
  return {
    async getJson(request) {
      const { res, context } = await open(request);
      const text = await readBody(res);
      try {
        return JSON.parse(text);
      } catch {
        throw new Error(`${context}: response is not JSON: ${text.slice(0, 200)}`);
      }
    },
    async watch(request) {
      const { res, context } = await open(request);
      return jsonLines(res as AsyncIterable<Buffer>, context);
    },
  };
}
