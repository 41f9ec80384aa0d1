import { request as httpRequest } from 'node:http';
import { UsageError } from './cli-errors.ts';

/** Where and as whom ctl talks to the planner. */
export interface PlannerConnection {
  readonly server: string;
  readonly token?: string;
  readonly actor?: string;
}

export type Json = Record<string, unknown>;

/**
 * Calls the planner's HTTP API. Failures are one line: the URL it could not reach, or the
 * planner's own error. A 400 (the planner refused a value we sent) is a usage error (exit 2).
 */
export async function callPlanner(
  c: PlannerConnection,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<Json> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (c.token) headers.authorization = `Bearer ${c.token}`;
  if (c.actor) headers['x-switchboard-actor'] = c.actor;
  const url = new URL(path, c.server);
  let res: { status: number; ok: boolean; text: string };
  try {
    res = await send(url, method, headers, body === undefined ? undefined : JSON.stringify(body));
  } catch (e) {
    const why = (e as Error).message;
    // node's HTTP parser on a server that speaks another protocol (probe11 K9: the NATS port)
    if (/^Parse Error\b/.test(why))
      throw new Error(
        `planner at ${c.server} answered something that is not HTTP (is --server the NATS port?): ${why}`,
      );
    throw new Error(`cannot reach planner at ${c.server}: ${why}`);
  }
  const text = res.text;
  let json: Json;
  try {
    json = JSON.parse(text) as Json;
  } catch {
    throw new Error(`planner at ${c.server} answered ${res.status} to ${method} ${url.pathname} with non-JSON`);
  }
  if (res.ok) return json;
  const msg = `planner: ${String(json.error ?? `HTTP ${res.status}`)}`;
  if (res.status === 400) throw new UsageError(msg);
  throw new Error(res.status === 401 ? `${msg} (give --token T or set SWITCHBOARD_TOKEN)` : msg);
}

/**
 * GET /status, refused unless it has the shape every ctl reader relies on: an object with a
 * `nodes` list and a `config` object. The other shape a wrong --server gives (JSON of another
 * service) is one line naming it instead of a TypeError deep in a table; an answer that is not
 * JSON at all is refused by callPlanner. Both are documented in docs/operations.md "Endpoints".
 */
export async function plannerStatus(c: PlannerConnection): Promise<Json> {
  const s = await callPlanner(c, 'GET', '/status');
  if (!Array.isArray(s.nodes) || s.config === null || typeof s.config !== 'object')
    throw new Error(
      `${c.server} answered GET /status without a nodes list and a config object: is --server a Switchboard planner's API?`,
    );
  return s;
}

/**
 * One HTTP(S) request through node:http(s), not fetch: fetch loads undici at first use, which
 * was a third of `ctl status`'s start time (bench/startup; the budget is 3x `node -e 0`).
 */
async function send(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; ok: boolean; text: string }> {
  const request = url.protocol === 'https:' ? (await import('node:https')).request : httpRequest;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`unsupported protocol ${url.protocol}`);
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve({ status, ok: status >= 200 && status < 300, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}
