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
export async function callPlanner(c: PlannerConnection, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Json> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (c.token) headers.authorization = `Bearer ${c.token}`;
  if (c.actor) headers['x-switchboard-actor'] = c.actor;
  const url = new URL(path, c.server);
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    const cause = (e as Error & { cause?: Error }).cause?.message ?? (e as Error).message;
    throw new Error(`cannot reach planner at ${c.server}: ${cause}`);
  }
  const text = await res.text();
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
