import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { nodeAt, serviceHistory, type EventLog } from '../../libs/eventlog/index.ts';
import { operationOutcome } from '../../libs/model/index.ts';
import { HttpError, WROTE_RESPONSE, type ApiRoute } from '../planner/http-api.ts';
import type { Planner } from '../planner/planner.ts';
import { consoleSnapshot, snapshotText, type GroupSource } from './console-snapshot.ts';
import { StreamSlots, type StreamLimits } from './stream-slots.ts';

/**
 * Where the static files are: beside this module when run from source, or `console-static/` in
 * dist/ when bundled (scripts/build.mjs copies them there).
 */
function staticDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 4; up++, dir = dirname(dir)) {
    for (const c of [join(dir, 'static'), join(dir, 'console-static')]) if (existsSync(join(c, 'index.html'))) return c;
  }
  throw new Error(`console: static files not found near ${fileURLToPath(import.meta.url)}`);
}

/** The console's static files, read once: they ship inside the package (no CDN, works offline). */
const ASSETS: Record<string, { type: string; body: Buffer }> = (() => {
  const dir = staticDir();
  return Object.fromEntries(
    [
      ['index.html', 'text/html; charset=utf-8'],
      ['console.js', 'text/javascript; charset=utf-8'],
      ['console.css', 'text/css; charset=utf-8'],
    ].map(([f, type]) => [f, { type: type!, body: readFileSync(join(dir, f!)) }]),
  );
})();

export interface ConsoleOptions {
  /** Asked per request: the API exists before the planner has restored from its log. */
  readonly planner: () => Planner;
  readonly log: () => EventLog;
  /** The planner's group (the API's own view of it); absent for a planner outside any group. */
  readonly group?: GroupSource;
  /** How often the event stream looks for a change to push (default 300 ms). */
  readonly pushIntervalMs?: number;
  /**
   * Longest the event stream stays silent (default 15 s): a keep-alive comment is sent when
   * nothing changed. The stream announces it first, and the page treats a silence of 2.5× it as a
   * broken stream (a hung planner or a half-open connection sends nothing, and closes nothing).
   */
  readonly keepAliveMs?: number;
  /**
   * Most a stream may hold unsent (default 1 MiB): past it, no snapshot is queued until the viewer
   * has read what is there, and a stream stuck past it for `stuckMs` (default 30 s) is closed (the
   * page reconnects). A viewer that never read grew the planner's memory without bound (review3 A2).
   */
  readonly maxBufferedBytes?: number;
  readonly stuckMs?: number;
  /** Open event streams per token identity and in all (defaults 10 and 100; stream-slots.ts). */
  readonly streams?: StreamLimits;
}

/**
 * The web console at /ui: static assets (public: they hold no data), a snapshot and a live event
 * stream of it (read access), and audit reads. Operations go through the API's own operator
 * routes (/rollout, /rollback), so the console has no write path of its own to guard.
 */
export function consoleRoutes(o: ConsoleOptions): ApiRoute[] {
  const every = o.pushIntervalMs ?? 300;
  const keepAliveMs = o.keepAliveMs ?? 15_000;
  const maxBuffered = o.maxBufferedBytes ?? 1024 * 1024;
  const stuckMs = o.stuckMs ?? 30_000;
  const slots = new StreamSlots(o.streams);
  // One snapshot text per tick for every stream (it was made per stream: N viewers cost N
  // snapshots per tick on the planner's one thread, review3 A2).
  let shared: { at: number; snap: ReturnType<typeof snapshotText> } | undefined;
  const currentSnapshot = () => {
    const now = performance.now();
    if (!shared || now - shared.at >= every / 2)
      shared = { at: now, snap: snapshotText(consoleSnapshot(o.planner(), o.log(), o.group)) };
    return shared.snap;
  };
  return [
    {
      method: 'GET',
      path: '/ui',
      access: 'public',
      handle: ({ res }) => {
        res.writeHead(308, { location: '/ui/' });
        res.end();
        return WROTE_RESPONSE;
      },
    },
    {
      method: 'GET',
      path: '/ui/',
      access: 'public',
      handle: ({ req, res }) => {
        const name = new URL(req.url ?? '/', 'http://x').pathname.slice('/ui/'.length) || 'index.html';
        const a = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined; // not `constructor`, `__proto__`, …
        if (!a) throw new HttpError(404, `no console file ${name}`);
        res.writeHead(200, {
          'content-type': a.type,
          'content-length': a.body.length,
          'cache-control': 'no-cache',
          'x-content-type-options': 'nosniff',
        });
        res.end(a.body);
        return WROTE_RESPONSE;
      },
    },
    {
      method: 'GET',
      path: '/ui/api/session',
      access: 'read',
      handle: ({ principal }) => ({
        identity: principal?.identity ?? 'anonymous',
        role: principal?.role ?? 'operator',
        open: principal === undefined,
      }),
    },
    {
      method: 'GET',
      path: '/ui/api/snapshot',
      access: 'read',
      handle: () => consoleSnapshot(o.planner(), o.log(), o.group),
    },
    {
      // Server-sent events: the snapshot at once, then again whenever it changed. Sent as a
      // response to an authenticated fetch (EventSource cannot send the bearer token).
      method: 'GET',
      path: '/ui/api/events',
      access: 'read',
      handle: ({ req, res, principal, stillAuthorized }) => {
        // Without a token file (loopback only) every caller is one identity: the open API's.
        const slot = slots.take(principal?.identity ?? 'anonymous');
        if (!('release' in slot)) {
          res.setHeader('retry-after', slot.code === 429 ? '30' : '10');
          throw new HttpError(slot.code, slot.reason);
        }
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
        });
        let last = '';
        let quiet = 0;
        let stuckSince: number | undefined;
        // However the stream ends (the viewer left, revoked, stuck, the planner stopping), its slot is free.
        const stop = () => {
          clearInterval(timer);
          slot.release();
        };
        const push = () => {
          if (!stillAuthorized()) {
            // The token was revoked (token file reloaded without it): what it could read ends now.
            stop();
            res.end();
            return;
          }
          if (res.writableLength > maxBuffered) {
            // The viewer has not read what is queued: queue nothing more; close a stream stuck too long.
            stuckSince ??= performance.now();
            if (performance.now() - stuckSince >= stuckMs) {
              stop();
              res.destroy();
            }
            return;
          }
          stuckSince = undefined;
          let snap: ReturnType<typeof snapshotText>;
          try {
            snap = currentSnapshot();
          } catch {
            // The planner is stopping (its log closed): end the stream; the page reconnects.
            stop();
            res.end();
            return;
          }
          if (snap.changed !== last) {
            last = snap.changed;
            quiet = 0;
            write(res, `event: snapshot\ndata: ${snap.text}\n\n`);
          } else if (++quiet * every >= keepAliveMs) {
            quiet = 0;
            write(res, ': keep-alive\n\n');
          }
        };
        const timer = setInterval(push, every);
        write(res, `: keep-alive-ms ${keepAliveMs}\n\n`); // the page's deadline for silence
        push();
        req.once('close', stop);
        return WROTE_RESPONSE;
      },
    },
    {
      method: 'GET',
      path: '/ui/api/audit/service',
      access: 'read',
      handle: ({ query }) => {
        const ref = query.get('ref') ?? '';
        const m = /^([^/\s]+)\/([^/\s]+)$/.exec(ref);
        if (!m) throw new HttpError(400, `service must be NAMESPACE/NAME, got ${JSON.stringify(ref)}`);
        return { service: ref, history: serviceHistory(o.log(), m[1]!, m[2]!, { last: 500 }) };
      },
    },
    {
      method: 'GET',
      path: '/ui/api/audit/node',
      access: 'read',
      handle: ({ query }) => {
        const node = query.get('node') ?? '';
        if (!node) throw new HttpError(400, 'node is required');
        const at = query.get('at') || undefined;
        if (at !== undefined && Number.isNaN(Date.parse(at)))
          throw new HttpError(400, `at must be a time, got ${JSON.stringify(at)}`);
        return nodeAt(o.log(), node, at);
      },
    },
    {
      method: 'GET',
      path: '/ui/api/audit/ops',
      access: 'read',
      handle: () => ({
        // outcome: accepted, or refused (CODE): why (probe11 K5)
        operations: o
          .log()
          .operations({ newest: 200 })
          .reverse()
          .map((op) => ({ ...op, outcome: operationOutcome(op) })),
      }),
    },
  ];
}

function write(res: ServerResponse, chunk: string): void {
  if (!res.destroyed) res.write(chunk);
}
