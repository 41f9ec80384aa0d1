import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { rolloutView, summarizeStatus } from '../../libs/control/index.ts';
import { authenticate, type Principal, type TokenEntry } from './bearer-auth.ts';
import type { Actor } from '../../libs/versioning/index.ts';
import { HttpError, type Body } from './http-error.ts';
import { operationRoutes } from './operation-routes.ts';
import { guardRequest } from './request-guard.ts';
import { DeniedRequests, RefusalRecorder } from './refused-operations.ts';
import type { Planner } from './planner.ts';
import type { HeapReading } from '../cli/heap-headroom.ts';
import { versionDiff } from './version-diff.ts';
import { unledReason, type GroupView } from './planner-group.ts';
import type { GroupMember } from '../../libs/bus/index.ts';
import {
  LOG_SCHEMA_VERSION,
  type LogGrowth,
  type LogStorage,
  type RetentionStatus,
  type SlowWrites,
} from '../../libs/eventlog/index.ts';

/** A publish failing this long makes /readyz 503 (retries run every second). */
export const PUBLISH_FAILING_NOT_READY_MS = 10_000;

export { HttpError } from './http-error.ts';

/**
 * Who may call a route: `public` anyone (probes), `read` any token, `operate` operator tokens.
 * Without a token file every caller may do everything (the planner then listens on loopback only).
 */
export type Access = 'public' | 'read' | 'operate';

/** What a route handler gets. `who` is the recorded actor and reason for operations. */
/** The longest operator reason an operation takes (the log keeps it for good; audit prints it whole). */
export const MAX_REASON_CHARS = 1000;

export interface RouteCall {
  readonly query: URLSearchParams;
  readonly body: Body;
  readonly who: Actor;
  readonly principal: Principal | undefined;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /**
   * Whether this request's token would still be let in now (the token file may have been reloaded
   * without it since): a handler that keeps answering (an event stream) asks before each write.
   */
  readonly stillAuthorized: () => boolean;
}

/**
 * One entry of the API's route table. `path` matches exactly, or, when it ends with '/', every
 * path below it (for static trees like the console). A handler returns the JSON answer, or
 * WROTE_RESPONSE when it wrote the response itself (metrics text, HTML, event streams).
 */
export interface ApiRoute {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly access: Access;
  handle(call: RouteCall): unknown;
}

export const WROTE_RESPONSE = Symbol('wrote response');

/** GET /versions lists at most this many versions unless asked (?limit=, up to the max). */
export const DEFAULT_VERSIONS_LIMIT = 1000;
const MAX_VERSIONS_LIMIT = 100_000;

export interface HttpApiOptions {
  readonly planner: Planner;
  readonly registry: Registry;
  /** The accepted tokens, asked on every request (the token file may be reloaded). Absent: open API. */
  readonly tokens?: () => readonly TokenEntry[];
  /**
   * Why no token is in force (the token file was removed: TokenFileWatch.revoked), or undefined.
   * Said in every 401 and in /readyz, which answers 503 then: a planner that refuses every request
   * should not be sent any (another replica with its file may serve them).
   */
  readonly tokensRevoked?: () => string | undefined;
  /** More routes (the console, ...); they may not shadow the built-in ones. */
  readonly routes?: readonly ApiRoute[];
  /**
   * False while the planner restores from its log: the address is bound before anything is
   * written, and until then only the probes answer (others get 503).
   */
  readonly started?: () => boolean;
  /** While not started: what the wait for NATS last met (a refused credential, probe16), if any. */
  readonly waitingFor?: () => string | undefined;
  /**
   * Why NATS refuses a subscription of this planner's connection (its account's or user's
   * subscription limit), until a reconnect draws no refusal: /readyz answers 503 with it. Its ACK
   * and heartbeat subscriptions among those refused, it hears no node (probe19).
   */
  readonly subscriptionRefusal?: () => string | undefined;
  /**
   * No token file and a loopback listen address: requests must name a loopback host (a web page
   * reaching the API through DNS rebinding names its own). See request-guard.ts.
   */
  readonly loopbackOnly?: boolean;
  /** The planner's group (self, leader, members); absent for a planner outside any group (tests). */
  readonly group?: () => (GroupView & { planners: GroupMember[] }) | undefined;
  /**
   * The event log's disk use and free space (logStorage) and how fast it grows (logGrowth), for
   * /status; absent: shown as null.
   */
  readonly storage?: () =>
    | (LogStorage & {
        readonly growth?: LogGrowth;
        readonly fileProblem?: string | null;
        readonly slowWrites?: SlowWrites;
      })
    | undefined;
  /**
   * The heap after V8's last full collection, its limit, and the warning when it nears that limit
   * (services/cli/heap-headroom.ts), for /status; absent or before the first collection: null.
   */
  readonly memory?: () => (HeapReading & { readonly warning: string | null }) | undefined;
  /** What the log keeps (retention: policy, oldest version, last compaction), for /status; absent: null. */
  readonly retention?: () => RetentionStatus | undefined;
  /**
   * The planner's time (its wall clock, or the NATS server's where they differ by more than the
   * bound: libs/bus/server-clock.ts, probe12) and how far they differ, for /status; absent: the wall clock, null.
   */
  readonly clock?: {
    readonly now: () => Date;
    readonly status: () => { offsetMs: number | null; correctedMs: number; warning: string | null };
  };
  /** Where rare lines go (denied requests, unrecorded refusals); default stderr with "planner: ". */
  readonly say?: (line: string) => void;
}

/** The routes every planner serves: probes, metrics, reads, and the operations. */
export function plannerRoutes(
  o: Pick<
    HttpApiOptions,
    | 'planner'
    | 'registry'
    | 'group'
    | 'started'
    | 'waitingFor'
    | 'subscriptionRefusal'
    | 'tokensRevoked'
    | 'storage'
    | 'memory'
    | 'retention'
    | 'say'
    | 'clock'
  >,
): ApiRoute[] {
  const { planner: p, registry } = o;
  const group = o.group ?? (() => undefined);
  const int = (v: unknown, name: string): number => {
    // digits only, as the operations' bodies (operation-routes.ts): Number() reads "0x1", "1e0", " 1" as 1
    const n = typeof v === 'string' ? (/^[0-9]+$/.test(v) ? Number(v) : Number.NaN) : v;
    if (!Number.isSafeInteger(n) || (n as number) < 1) throw new HttpError(400, `${name} must be a positive integer`);
    return n as number;
  };
  /**
   * Why this planner's view is not current, or undefined when it is: /readyz answers 503 with it,
   * and /status carries it (`notReady`) so `ctl wait --for=synced` never passes while the newest
   * cluster state cannot become a version (a full disk, a failing source: probe8 R2).
   */
  const notReadyReason = (): string | undefined => {
    // A group nobody leads makes no version of what the cluster changes, whatever this planner's
    // own state: every planner of it says so (probe8 J1: each said 200 with JetStream refusing the lease).
    // Its own unusable log file comes first: that planner has left the lease for good, so the
    // group may be unled because of it, and the file is what the operator must fix.
    // NATS refusing this planner's own credential comes before all: it can neither lead nor
    // follow, and what follows from it (no leader, not synced) hid the cause (probe16).
    const refusal = p.failure('nats');
    if (refusal !== undefined) return refusal;
    // Next, NATS refusing its subscriptions: with the ACK and heartbeat ones refused every node read
    // UNKNOWN "never heard from" while /readyz said 200 (probe19; lastError named it). Kept by
    // run-planner across role changes, not by the Planner acting (a new one starts without it).
    const subscriptions = o.subscriptionRefusal?.();
    if (subscriptions !== undefined) return subscriptions;
    const fileError = p.failure('log file');
    if (fileError !== undefined) return `cannot log the events it sees: ${fileError}`;
    // likewise a planner out of the lease for its --signing-key (planner-group checkKey: probe16 I4)
    const keyHold = p.failure('signing key');
    if (keyHold !== undefined) return keyHold;
    const g = group();
    const unled = g && unledReason(g);
    if (unled !== undefined) return unled;
    const sourceError = p.sourceProblem();
    // A failing source means stale data; so does a log that cannot take the events it sees
    // (a full disk): nothing after them becomes a version until the append works again.
    const appendError = p.failure('append') ?? p.failure('log file');
    // A leader whose versions the bus refuses for a while (JetStream full, a lost stream) moves
    // no node; a retry or two (a NATS restart) is not worth a readiness flap (review4 G2).
    const publishError =
      (p.failingFor('publish') ?? 0) >= PUBLISH_FAILING_NOT_READY_MS ? p.failure('publish') : undefined;
    // Node reports the log cannot take (a full disk, review4 G5): the view still has them, the
    // audit trail does not, and a quiet cluster never tries an append to show it.
    const ackLogError = p.failure('ack log');
    // A follower whose copy of the group's log keeps failing to take rows (a full disk): it is
    // behind and will stay so; "ready once the replicated log caught up" no longer holds (probe5 H4).
    const followError = p.failure('cannot follow') ?? p.failure('view rebuild'); // its view cannot be made of its copy
    const revoked = o.tokensRevoked?.();
    // A planner of this group watching another cluster (cluster-guard.ts) serves no view of it.
    const clusterError = p.failure('cluster');
    return sourceError !== undefined
      ? `event source failing: ${sourceError}`
      : appendError !== undefined
        ? `cannot log the events it sees: ${appendError}`
        : publishError !== undefined
          ? `cannot publish versions: ${publishError}`
          : ackLogError !== undefined
            ? `cannot log node reports: ${ackLogError}`
            : followError !== undefined
              ? followError
              : revoked !== undefined
                ? `every API request is refused (401): ${revoked}`
                : clusterError !== undefined
                  ? clusterError
                  : p.isSynced
                    ? undefined
                    : 'event source not synced yet';
  };
  return [
    {
      // Liveness: the process answers. Not NATS, not the source: a restart fixes neither, and
      // restarting every planner while NATS is away only adds a log replay to the outage.
      method: 'GET',
      path: '/livez',
      access: 'public',
      handle: ({ res }) => {
        send(res, 200, { live: true });
        return WROTE_RESPONSE;
      },
    },
    {
      method: 'GET',
      path: '/healthz',
      access: 'public',
      handle: ({ res }) => {
        const cutOff = group()?.cutOff; // a replica that cannot reach its group is not healthy
        send(res, cutOff ? 503 : 200, cutOff ? { ok: false, reason: cutOff } : { ok: true });
        return WROTE_RESPONSE;
      },
    },
    {
      method: 'GET',
      path: '/readyz',
      access: 'public',
      handle: ({ res }) => {
        // Before the planner exists (binding, restoring its log, waiting for NATS) it has nothing to
        // serve, and nothing of it is asked: until then `p` stands in with a few fields only.
        if (o.started !== undefined && !o.started()) {
          const waiting = o.waitingFor?.();
          send(res, 503, {
            ready: false,
            reason: `planner is starting (restoring from its log, waiting for NATS)${waiting ? `; last try: ${waiting}` : ''}`,
          });
          return WROTE_RESPONSE;
        }
        const sourceError = p.sourceProblem();
        const reason = notReadyReason();
        const ready = reason === undefined;
        send(res, ready ? 200 : 503, {
          ready,
          ...(reason === undefined ? {} : { reason }),
          ...(sourceError === undefined ? {} : { sourceError }),
        });
        return WROTE_RESPONSE;
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      access: 'read',
      handle: async ({ res }) => {
        const text = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(text);
        return WROTE_RESPONSE;
      },
    },
    {
      method: 'GET',
      path: '/status',
      access: 'read',
      handle: () => {
        // A part that cannot be read (a damaged log file: SQLITE_CORRUPT from a read) is null and
        // `logError` says why in one line; the rest is still served, so the operator sees the
        // fleet (probe13 R6: the whole answer was a 409 and `ctl status` showed no node).
        let logError: string | null = null;
        const part = <T>(read: () => T, instead: T): T => {
          try {
            return read();
          } catch (e) {
            logError ??= e instanceof Error ? e.message : String(e);
            return instead;
          }
        };
        const nodes = part(() => p.status(), []);
        const latest = part(() => p.data.latest(), undefined);
        return {
          synced: p.isSynced,
          latestVersion: latest?.version ?? 0,
          latestHash: latest?.hash ?? null,
          // versions of this file the group's log does not hold: never published (a version goes to
          // the versions stream only after the flush that ships it), dropped if another planner leads
          notInGroupLog: notInGroupLog(latest?.version, group()),
          pinned: p.data.pin ?? null,
          now: (o.clock?.now() ?? new Date()).toISOString(),
          // how far this planner's wall clock is from the NATS server's, and the correction it stamps with
          clock: o.clock?.status() ?? null,
          // planner --node-selector (canonical text): nodes outside it are in no wave and no wait
          nodeSelector: p.nodeSelector ?? null,
          config: p.config.state,
          rollout: part(
            () => rolloutView(p.config.state, (o.clock?.now() ?? new Date()).getTime(), nodes, p.config.elapsed()),
            null,
          ),
          summary: summarizeStatus(nodes),
          nodes,
          rejected: part(
            () => [
              ...p.data.rejections.values(),
              ...p.sourceRejections.slice(0, 100),
              ...p.vipConflicts().slice(0, 100),
            ],
            [],
          ),
          rejectedTotal: part(() => p.data.rejectedCount + p.sourceRejections.length + p.vipConflicts().length, 0),
          lastError: p.lastError ?? null,
          // the reason /readyz gives (null when ready): what `ctl wait --for=synced` also waits out
          notReady: part(() => notReadyReason() ?? null, null),
          // versions a republish left out (compacted from the log: review2 R8), said once in the log too
          republished: p.republished ?? null,
          sourceError: p.sourceProblem() ?? null,
          source: p.sourceHealth(),
          // the log's disk use and the space left, with a warning when little is (review4 G8)
          storage: part(() => o.storage?.() ?? null, null),
          // the heap the planner keeps against the limit V8 stops it at, with a warning near it
          memory: part(() => o.memory?.() ?? null, null),
          // what the log keeps and when it was last compacted (--retain-versions/--retain-age, db compact)
          retention: part(() => o.retention?.() ?? null, null),
          ...part(() => groupStatusOf(group()), {}),
          logError,
        };
      },
    },
    {
      method: 'GET',
      path: '/versions',
      access: 'read',
      // Paged: a busy cluster makes 10^4-10^5 versions a day, and this runs on the thread that
      // renews the lease. The newest `limit` (default 1000) of [from, to]; `omitted` counts the
      // older ones left out (ask again with ?to=).
      handle: ({ query }) => {
        const opt = (name: string) => (query.get(name) === null ? undefined : int(query.get(name), name));
        const range = { from: opt('from'), to: opt('to') };
        if (range.from !== undefined && range.to !== undefined && range.from > range.to)
          throw new HttpError(400, `from ${range.from} is after to ${range.to}: the range is backwards`);
        const limit = opt('limit') ?? DEFAULT_VERSIONS_LIMIT;
        if (limit > MAX_VERSIONS_LIMIT) throw new HttpError(400, `limit must be at most ${MAX_VERSIONS_LIMIT}`);
        const versions = p.versions({ ...range, newest: limit });
        const omitted = versions.length < limit ? 0 : p.countVersions(range) - versions.length;
        return { pinned: p.data.pin ?? null, versions, omitted };
      },
    },
    {
      method: 'GET',
      path: '/config',
      access: 'read',
      handle: ({ query }) => {
        const n = query.get('revision');
        const rev =
          n === null ? p.config.revision(p.config.state.defaultRevision) : p.config.revision(int(n, 'revision'));
        if (!rev) throw new HttpError(404, `config revision ${n} does not exist`);
        return { revision: rev.revision, hash: rev.hash, config: rev.config, state: p.config.state };
      },
    },
    {
      method: 'GET',
      path: '/diff',
      access: 'read',
      handle: ({ query }) => {
        const a = int(query.get('a'), 'a');
        const b = int(query.get('b'), 'b');
        return { a, b, ...versionDiff(p.data.contentOf(a), p.data.contentOf(b)) };
      },
    },
    ...operationRoutes(p, new RefusalRecorder(p, { registry, say: o.say })),
  ];
}

/** The planner's HTTP API for ctl and the console; JSON in and out, errors as {"error": "..."}. */
export function createHttpApi(o: HttpApiOptions): Server {
  const routes = [...plannerRoutes(o), ...(o.routes ?? [])];
  const denied = new DeniedRequests({ registry: o.registry, say: o.say });
  const find = (method: string | undefined, path: string) => {
    const matches = routes.filter((r) => r.path === path || (r.path.endsWith('/') && path.startsWith(r.path)));
    const forMethod = matches.filter((r) => r.method === method);
    // Exact paths win over trees; the longest tree wins over shorter ones.
    const best = forMethod.sort(
      (a, b) => Number(b.path === path) - Number(a.path === path) || b.path.length - a.path.length,
    )[0];
    if (best) return best;
    if (matches.length)
      throw new HttpError(
        405,
        `${method} is not allowed on ${path} (use ${[...new Set(matches.map((r) => r.method))].join(' or ')})`,
      );
    throw new HttpError(404, `no route ${method} ${path}`);
  };

  return createServer((req, res) => {
    void handle(req, res).catch((e) => {
      // Errors a planner operation throws are refusals of the request in the current state.
      const code = e instanceof HttpError ? e.code : 409;
      send(res, code, { error: e instanceof Error ? e.message : String(e) });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://planner');
    try {
      guardRequest(req.method, req.headers, { loopbackOnly: o.loopbackOnly === true });
    } catch (e) {
      // A cross-site write is a denial like a viewer's (K5): counted, said once a minute, never logged.
      if (e instanceof HttpError && e.code === 403)
        denied.note(403, `${req.method} ${url.pathname.slice(0, 100)} from another site's page`);
      throw e;
    }
    const route = find(req.method, url.pathname);
    if (o.started && !o.started() && route.access !== 'public')
      throw new HttpError(503, 'planner is starting (restoring from its log)');
    let principal: Principal | undefined;
    if (o.tokens && route.access !== 'public') {
      principal = authenticate(o.tokens(), req.headers.authorization);
      if (!principal) {
        denied.note(401, `${req.method} ${url.pathname.slice(0, 100)} without a valid token`);
        res.setHeader('www-authenticate', 'Bearer realm="switchboard"');
        const revoked = o.tokensRevoked?.();
        throw new HttpError(401, revoked === undefined ? 'missing or wrong bearer token' : revoked);
      }
      if (route.access === 'operate' && principal.role !== 'operator') {
        denied.note(403, `${principal.identity} (a viewer) ${req.method} ${url.pathname}`);
        throw new HttpError(
          403,
          `${principal.identity} is a viewer; ${req.method} ${url.pathname} needs an operator token`,
        );
      }
    }
    if (req.method === 'POST') redirectWritesToLeader(o.group?.(), url, res);
    const body = req.method === 'POST' ? await readJson(req) : {};
    const actor = recordedActor(principal?.identity, req.headers['x-switchboard-actor']);
    const reason =
      typeof body.reason === 'string' && body.reason.trim() ? body.reason.trim() : `${url.pathname.slice(1)} via API`;
    // kept for good in the hash-chained log and printed whole by audit: a sentence, not a document
    if (reason.length > MAX_REASON_CHARS)
      throw new HttpError(400, `reason is ${reason.length} characters: at most ${MAX_REASON_CHARS}`);
    const stillAuthorized = () => {
      if (!o.tokens || route.access === 'public') return true;
      const now = authenticate(o.tokens(), req.headers.authorization);
      return now !== undefined && (route.access !== 'operate' || now.role === 'operator');
    };
    const answer = await route.handle({
      query: url.searchParams,
      body,
      who: { actor, reason },
      principal,
      req,
      res,
      stillAuthorized,
    });
    if (answer !== WROTE_RESPONSE) send(res, 200, answer);
  }
}

/**
 * The versions this planner's file holds past the newest one the group's log holds (a leader's made
 * while its flush cannot reach NATS; a deposed leader's until its follow() drops them), or null.
 * Such a version was never published: its number may yet name other content (the next leader's).
 */
export function notInGroupLog(
  latest: number | undefined,
  g: Pick<GroupView, 'groupVersion'> | undefined,
): { from: number; to: number; why: string } | null {
  const held = g?.groupVersion;
  if (latest === undefined || held === undefined || latest <= held) return null;
  const which = latest === held + 1 ? `version ${latest} is` : `versions ${held + 1}-${latest} are`;
  return {
    from: held + 1,
    to: latest,
    why: `${which} in this planner's file only, not in the group's log (newest there: ${held}): not published; dropped if another planner leads`,
  };
}

function groupStatusOf(g: ReturnType<NonNullable<HttpApiOptions['group']>>) {
  return g ? groupStatus(g) : {};
}

/**
 * What a member's announced log schema says when it is not this planner's: the member runs another
 * release (probe15 U10: a follower of the release before the field stopped at `import: a acks row
 * has 9 columns` and the leader listed it as a follower with a small lag, no word).
 */
export function releaseSkew(logSchema: number | undefined): string | undefined {
  if (logSchema === LOG_SCHEMA_VERSION) return undefined;
  if (logSchema === undefined)
    return `runs an older release (its member record has no log schema; this planner's is ${LOG_SCHEMA_VERSION}): it may not import this release's log rows; upgrade it`;
  return logSchema < LOG_SCHEMA_VERSION
    ? `runs an older release (log schema ${logSchema}, this planner's ${LOG_SCHEMA_VERSION}): it cannot import rows of the migrations it lacks; upgrade it`
    : `runs a newer release (log schema ${logSchema}, this planner's ${LOG_SCHEMA_VERSION}): upgrade this planner`;
}

/** GET /status's group part: this planner, the group's leader and every member with its lag (the console shows it too). */
export function groupStatus(g: NonNullable<ReturnType<NonNullable<HttpApiOptions['group']>>>) {
  return {
    group: g.group,
    self: { ...g.self, lagRows: g.lagRows },
    leader: g.leader ? { id: g.leader.id, term: g.leader.term, api: g.leader.api ?? null } : null,
    ...(g.lastLeader ? { lastLeader: g.lastLeader } : {}),
    // no current leader as this planner sees it (null while one is known): how long, why, and
    // whether the cause lasts until an operator acts (probe8 J1)
    noLeader: g.noLeader
      ? { forS: Math.round(g.noLeader.forMs / 1000), cause: g.noLeader.cause, lasting: g.noLeader.lasting }
      : null,
    planners: g.planners.map((m) => ({
      id: m.id,
      leader: m.leader,
      term: m.term,
      lagRows: m.lagRows,
      api: m.api ?? null,
      // why it cannot follow the group's log (its /readyz reason), else a release other than this
      // one's (its log schema), null while neither
      problem: m.problem ?? releaseSkew(m.logSchema) ?? null,
      at: m.at,
    })),
  };
}

/**
 * Writes go to the leader: a follower answers 307 with the leader's URL in Location and an error
 * naming it (ctl prints it in one line); with no leader known, 503. Reads are served locally.
 */
function redirectWritesToLeader(
  g: ReturnType<NonNullable<HttpApiOptions['group']>>,
  url: URL,
  res: ServerResponse,
): void {
  if (!g || g.self.leader) return;
  const l = g.leader && g.leader.id !== g.self.id ? g.leader : undefined;
  if (!l) {
    // the cause, when this planner knows one; "retry shortly" only where it clears by itself (probe8 J1)
    const n = g.noLeader;
    throw new HttpError(
      503,
      `planner ${g.self.id} follows in group ${g.group} and no leader is known right now${n ? `: ${n.cause}` : ''}${n?.lasting ? '' : '; retry shortly'}`,
    );
  }
  if (l.api) res.setHeader('location', new URL(url.pathname + url.search, l.api).toString());
  throw new HttpError(
    307,
    `planner ${g.self.id} follows in group ${g.group}; the leader is planner ${l.id} (term ${l.term})${l.api ? ` at ${l.api}: send writes there (ctl --server ${l.api})` : ''}`,
  );
}

/**
 * The actor recorded for an operation. The token's identity is who acted; a client-sent name only
 * refines it (`ci` + `alice` → `ci/alice`, the human behind a CI token) and can never replace it.
 */
export function recordedActor(identity: string | undefined, header: string | string[] | undefined): string {
  const claimed = typeof header === 'string' ? header.trim() : undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this rejects
  if (claimed && (claimed.length > 128 || /[\x00-\x1f\x7f]/.test(claimed))) {
    throw new HttpError(400, 'x-switchboard-actor must be at most 128 characters without control characters');
  }
  if (!identity) return claimed || 'anonymous';
  if (!claimed || claimed === identity) return identity;
  return claimed.startsWith(`${identity}/`) ? claimed : `${identity}/${claimed}`;
}

async function readJson(req: IncomingMessage): Promise<Body> {
  // Bytes first, decoded once: a character split across two reads must not become two U+FFFD
  // (a reason is recorded for ever in the hash-chained operations log).
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > 1 << 20) throw new HttpError(413, 'body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Body;
  } catch {
    throw new HttpError(400, 'body must be a JSON object');
  }
}

export function send(res: ServerResponse, code: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}
