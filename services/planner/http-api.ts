import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { parseWaves, summarizeStatus } from '../../libs/control/index.ts';
import { authenticate, type TokenEntry } from './bearer-auth.ts';
import type { Actor } from '../../libs/versioning/index.ts';
import type { Planner } from './planner.ts';
import { versionDiff } from './version-diff.ts';

class HttpError extends Error {
  constructor(readonly code: number, message: string) { super(message); }
}

export interface HttpApiOptions {
  readonly planner: Planner;
  readonly registry: Registry;
  /** When set, every route but /healthz and /readyz needs one of these bearer tokens. */
  readonly tokens?: readonly TokenEntry[];
}

type Body = Record<string, unknown>;
type Route = (q: URLSearchParams, body: Body, who: Actor) => Promise<unknown> | unknown;

/** The planner's HTTP API for ctl; JSON in and out, errors as {"error": "..."}. */
export function createHttpApi(o: HttpApiOptions): Server {
  const p = o.planner;
  const int = (v: unknown, name: string): number => {
    const n = typeof v === 'string' ? Number(v) : v;
    if (!Number.isSafeInteger(n) || (n as number) < 1) throw new HttpError(400, `${name} must be a positive integer`);
    return n as number;
  };
  const optInt = (v: unknown, name: string) => (v === undefined || v === null || v === '' ? undefined : int(v, name));
  const waves = (v: unknown) => {
    try { return parseWaves(String(v ?? '100%')); } catch (e) { throw new HttpError(400, (e as Error).message); }
  };
  const get: Record<string, Route> = {
    '/status': () => {
      const nodes = p.status();
      const latest = p.data.latest();
      return {
        synced: p.isSynced, latestVersion: latest?.version ?? 0, latestHash: latest?.hash ?? null, pinned: p.data.pin ?? null,
        config: p.config.state, summary: summarizeStatus(nodes), nodes,
        rejected: [...p.data.rejections.values(), ...p.sourceRejections.slice(0, 100)], rejectedTotal: p.data.rejectedCount + p.sourceRejections.length,
        lastError: p.lastError ?? null, source: p.sourceHealth(),
      };
    },
    '/versions': () => ({ pinned: p.data.pin ?? null, versions: p.versions() }),
    '/diff': (q) => {
      const a = int(q.get('a'), 'a');
      const b = int(q.get('b'), 'b');
      return { a, b, ...versionDiff(p.data.contentOf(a), p.data.contentOf(b)) };
    },
  };
  const post: Record<string, Route> = {
    '/pin': (_q, b, who) => p.pin(int(b.version, 'version'), who, 'pin'),
    '/unpin': (_q, _b, who) => p.unpin(who),
    '/rollback': (_q, b, who) => {
      if (b.toVersion !== undefined) return p.pin(int(b.toVersion, 'toVersion'), who, 'rollback');
      return p.rollbackConfig(optInt(b.configRevision, 'configRevision'), who);
    },
    '/rollout': (_q, b, who) => p.rollout({
      revision: optInt(b.configRevision, 'configRevision'), waves: b.resume ? undefined : waves(b.waves),
      pauseOnError: b.pauseOnError === true, resume: b.resume === true,
    }, who),
    '/mode': (_q, b, who) => {
      if (b.mode !== 'ipvs' && b.mode !== 'nftables') throw new HttpError(400, 'mode must be ipvs or nftables');
      return p.configChange({ mode: b.mode }, who, 'mode', b.waves ? { waves: waves(b.waves), pauseOnError: b.pauseOnError === true } : undefined);
    },
    '/config': (_q, b, who) => {
      if (!b.change || typeof b.change !== 'object') throw new HttpError(400, 'config change must be an object');
      return p.configChange(b.change as Body, who, 'config', b.waves ? { waves: waves(b.waves), pauseOnError: b.pauseOnError === true } : undefined);
    },
  };

  return createServer((req, res) => {
    void handle(req, res).catch((e) => {
      const code = e instanceof HttpError ? e.code : 409;
      send(res, code, { error: e instanceof Error ? e.message : String(e) });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://planner');
    if (url.pathname === '/healthz') return send(res, 200, { ok: true });
    if (url.pathname === '/readyz') return send(res, p.isSynced ? 200 : 503, { ready: p.isSynced });
    let identity: string | undefined;
    if (o.tokens) {
      identity = authenticate(o.tokens, req.headers.authorization);
      if (!identity) throw new HttpError(401, 'missing or wrong bearer token');
    }
    if (url.pathname === '/metrics' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': o.registry.contentType });
      res.end(await o.registry.metrics());
      return;
    }
    const table = req.method === 'GET' ? get : req.method === 'POST' ? post : undefined;
    const route = table?.[url.pathname];
    if (!route) throw new HttpError(404, `no route ${req.method} ${url.pathname}`);
    const body = req.method === 'POST' ? await readJson(req) : {};
    const header = req.headers['x-switchboard-actor'];
    const claimed = typeof header === 'string' && header ? header : undefined;
    // The token's identity is who acted; a claimed name only refines it (e.g. the human behind a CI token).
    const actor = identity ? (claimed ? `${identity}/${claimed}` : identity) : claimed ?? 'anonymous';
    const reason = typeof body.reason === 'string' && body.reason.trim() ? body.reason.trim() : `${url.pathname.slice(1)} via API`;
    send(res, 200, await route(url.searchParams, body, { actor, reason }));
  }
}

async function readJson(req: IncomingMessage): Promise<Body> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 1 << 20) throw new HttpError(413, 'body too large');
  }
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Body;
  } catch {
    throw new HttpError(400, 'body must be a JSON object');
  }
}

function send(res: ServerResponse, code: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}
