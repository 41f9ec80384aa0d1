// A faithful-enough Kubernetes apiserver test double for list/watch of Services,
// EndpointSlices and Nodes (HTTP on 127.0.0.1). Semantics follow the real apiserver:
// one global resourceVersion, XList responses, limit/continue chunking consistent at the
// first page's RV, label selectors, newline-delimited JSON watch streams over chunked
// encoding, BOOKMARKs, timeoutSeconds, and 410 Expired once history is compacted.
//
// Where the real apiserver answers an expired watch RV: the watch cache (cacher.go)
// replies HTTP 200 and then a single ERROR event carrying a 410 `Status` (reason Expired)
// "to match the uncached watch implementation", then closes the stream. That is the
// default here; `expiredWatch: 'http'` answers a plain HTTP 410 instead (what a proxy or
// an older server may do) so clients can be tested against both.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { matchesLabels, parseLabelSelector, type LabelSelector } from './label-selector.ts';
import { ObjectStore, type KubeObject, type StoredChange } from './object-store.ts';
import { discoveryDocuments, RESOURCE_KINDS, RESOURCES, type ResourceKind } from './resource-kinds.ts';
import { expiredStatus, KubeStatusError, kubeStatus, type KubeStatus } from './kube-status.ts';
import { WatchStream } from './watch-stream.ts';

export interface KubeApiServerOptions {
  /** Interval between BOOKMARK events on watches that allow them (default 60 s, like the cacher's ~1 min). */
  bookmarkIntervalMs?: number;
  /** When set, every request must carry `Authorization: Bearer <token>` or gets 401. */
  token?: string;
  /** How an expired watch RV is reported at watch start (default 'event', see file comment). */
  expiredWatch?: 'event' | 'http';
  /** Server-side watch timeout when the client sends no timeoutSeconds (default 1800 s). */
  defaultWatchTimeoutSeconds?: number;
  /** The kube-system Namespace's uid, the cluster's identity (default: a fresh random one per server). */
  clusterUid?: string;
}

export type RequestVerb = 'list' | 'watch' | 'get' | 'discovery' | 'unknown';

export interface RequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  verb: RequestVerb;
  kind?: ResourceKind;
  namespace?: string;
  /** HTTP status sent (200 for a watch that started streaming). */
  status: number;
  at: number;
}

export interface ObjectRef {
  name: string;
  namespace?: string;
}

export interface FailNextOptions {
  /** HTTP status to answer with (default 500). */
  status?: number;
  /** Which requests count (default: list/watch/get of Services, EndpointSlices and Nodes; not discovery, not Namespaces). */
  match?: (entry: RequestLogEntry) => boolean;
  /** Sent as the Retry-After header and the Status's details.retryAfterSeconds, as the apiserver does on 429. */
  retryAfterSeconds?: number;
}

interface Route {
  kind: ResourceKind;
  namespace?: string;
  name?: string;
}

interface ContinueToken {
  rv: number;
  start: string;
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

function parseRoute(path: string): Route | undefined {
  for (const kind of RESOURCE_KINDS) {
    const info = RESOURCES[kind];
    if (!path.startsWith(`${info.prefix}/`)) continue;
    const rest = path.slice(info.prefix.length + 1).split('/');
    if (info.namespaced && rest[0] === 'namespaces' && rest[2] === info.plural && rest.length <= 4) {
      if (!rest[1]) return undefined;
      return { kind, namespace: decodeURIComponent(rest[1]), name: rest[3] ? decodeURIComponent(rest[3]) : undefined };
    }
    if (rest[0] === info.plural && rest.length <= 2) {
      // A cluster-wide list of a namespaced kind has no name segment.
      if (info.namespaced && rest.length === 2) return undefined;
      return { kind, name: rest[1] ? decodeURIComponent(rest[1]) : undefined };
    }
  }
  return undefined;
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: token.rv, start: token.start })).toString('base64url');
}

function decodeContinue(text: string): ContinueToken {
  try {
    const parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as {
      v?: string;
      rv?: unknown;
      start?: unknown;
    };
    if (parsed.v !== 'meta.k8s.io/v1' || typeof parsed.rv !== 'number' || typeof parsed.start !== 'string')
      throw new Error('shape');
    return { rv: parsed.rv, start: parsed.start };
  } catch {
    throw new KubeStatusError(kubeStatus(400, 'BadRequest', `continue key is not valid: ${text}`));
  }
}

function parseRv(value: string | undefined): number | undefined {
  if (value === undefined || value === '' || value === '0') return undefined;
  if (!/^[0-9]+$/.test(value))
    throw new KubeStatusError(kubeStatus(400, 'BadRequest', `invalid resource version: ${value}`));
  return Number(value);
}

interface FieldFilter {
  field: 'metadata.name' | 'metadata.namespace';
  negate: boolean;
  value: string;
}

function parseFieldSelector(text: string | undefined): FieldFilter[] {
  if (!text) return [];
  return text.split(',').map((part) => {
    const m = /^(metadata\.name|metadata\.namespace)\s*(==|=|!=)\s*(.*)$/.exec(part.trim());
    if (!m) throw new KubeStatusError(kubeStatus(400, 'BadRequest', `field label not supported: ${part}`));
    return { field: m[1] as FieldFilter['field'], negate: m[2] === '!=', value: m[3]! };
  });
}

export class KubeApiServer {
  private readonly store = new ObjectStore();
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private accepted = 0;
  private readonly watches = new Set<WatchStream>();
  private readonly discovery = discoveryDocuments();
  private readonly options: Required<Omit<KubeApiServerOptions, 'token' | 'clusterUid'>> & { token?: string };
  /**
   * The Namespaces every cluster is made with (fixed here, outside the store's history: no test
   * lists or watches them). kube-system's uid is what a planner reads as the cluster's identity.
   */
  private readonly namespaces: ReadonlyMap<string, KubeObject>;
  private listenPort = 0;
  private running = false;
  private failures:
    | { remaining: number; status: number; retryAfterSeconds?: number; match: (entry: RequestLogEntry) => boolean }
    | undefined;
  private streamDelayMs = 0;
  private silenceNewWatches = false;
  /** Every request received, in order; tests assert on it (e.g. "no list after restart"). */
  readonly requests: RequestLogEntry[] = [];

  private constructor(options: KubeApiServerOptions) {
    this.options = {
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      expiredWatch: options.expiredWatch ?? 'event',
      defaultWatchTimeoutSeconds: options.defaultWatchTimeoutSeconds ?? 1800,
      token: options.token,
    };
    const uid = options.clusterUid ?? randomUUID();
    this.namespaces = new Map(
      ['default', 'kube-system'].map((name) => [
        name,
        {
          kind: 'Namespace',
          apiVersion: 'v1',
          metadata: {
            name,
            uid: name === 'kube-system' ? uid : randomUUID(),
            resourceVersion: '1',
            creationTimestamp: '2024-08-13T00:00:00Z',
            labels: { 'kubernetes.io/metadata.name': name },
          },
          spec: { finalizers: ['kubernetes'] },
          status: { phase: 'Active' },
        },
      ]),
    );
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.accepted += 1;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  /** Starts a server on 127.0.0.1 with an ephemeral port. */
  static async start(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const server = new KubeApiServer(options);
    await server.listen(0);
    return server;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', onError);
        const address = this.server.address();
        if (address === null || typeof address === 'string') return reject(new Error('unexpected server address'));
        this.listenPort = address.port;
        this.running = true;
        resolve();
      });
    });
  }

  get port(): number {
    return this.listenPort;
  }

  get url(): string {
    return `http://127.0.0.1:${this.listenPort}`;
  }

  /** Current global resourceVersion, as the string clients see. */
  get resourceVersion(): string {
    return String(this.store.resourceVersion);
  }

  /** The kube-system Namespace's uid: the cluster's identity as a planner reads it. */
  get clusterUid(): string {
    return this.namespaces.get('kube-system')!.metadata.uid!;
  }

  /** TCP connections accepted since start (a client that keeps its connections opens few). */
  get connectionsAccepted(): number {
    return this.accepted;
  }

  get openWatchCount(): number {
    return this.watches.size;
  }

  // ---- test control API -------------------------------------------------------------

  create(kind: ResourceKind, object: KubeObject): KubeObject {
    return this.store.create(kind, object);
  }

  update(kind: ResourceKind, object: KubeObject): KubeObject {
    return this.store.update(kind, object);
  }

  delete(kind: ResourceKind, ref: ObjectRef): KubeObject {
    return this.store.delete(kind, ref.namespace, ref.name);
  }

  patchStatus(kind: ResourceKind, ref: ObjectRef, status: unknown): KubeObject {
    return this.store.patchStatus(kind, ref.namespace, ref.name, status);
  }

  get(kind: ResourceKind, ref: ObjectRef): KubeObject | undefined {
    return this.store.get(kind, ref.namespace, ref.name);
  }

  /** Discards history up to `rv` (default: now). Older RVs and continue tokens get 410. */
  compact(rv?: number | string): void {
    this.store.compact(rv === undefined ? undefined : Number(rv));
  }

  /**
   * Sends an ERROR 410 Expired event to every open watch and ends it, as an etcd-backed
   * watch does when compaction overtakes it mid-stream. Clients must relist.
   */
  expireWatches(): void {
    const status = expiredStatus(`The resourceVersion for the provided watch is too old.`);
    for (const watch of this.watches) {
      watch.send({ type: 'ERROR', object: status });
      watch.end();
    }
  }

  /** Abruptly destroys every open connection (clients see a reset / premature close). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** The next `n` matching requests fail with `status` (default 500) and a Status body. */
  failNext(n: number, options: FailNextOptions = {}): void {
    if (!Number.isInteger(n) || n < 0) throw new Error(`failNext: n must be a non-negative integer, got ${n}`);
    this.failures = {
      remaining: n,
      status: options.status ?? 500,
      retryAfterSeconds: options.retryAfterSeconds,
      match:
        options.match ??
        ((entry) =>
          entry.kind !== undefined && (entry.verb === 'list' || entry.verb === 'watch' || entry.verb === 'get')),
    };
  }

  /**
   * Every open watch goes silent: no more events, bookmarks or end (not even at its timeout),
   * with its connection left open, as a client sees a half-open connection. With
   * `newWatches`, watches opened later go silent too (after their 200 and headers) until
   * `releaseSilence()`: the path to the server stays broken. Changes still happen in the store.
   */
  silenceWatches(options: { newWatches?: boolean } = {}): void {
    for (const watch of this.watches) watch.silence();
    this.silenceNewWatches = options.newWatches ?? false;
  }

  /** New watches deliver again; watches already silenced stay silent until the client drops them. */
  releaseSilence(): void {
    this.silenceNewWatches = false;
  }

  /** Delays every watch event write by `ms` (0 turns it off); applies to open watches too. */
  slowStream(ms: number): void {
    this.streamDelayMs = ms;
  }

  /** Stops listening and drops every connection; state is kept for restart(). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const watch of this.watches) watch.close();
    this.dropConnections();
    await closed;
  }

  /** Listens again on the same port with the same objects, RV and history. */
  async restart(): Promise<void> {
    if (this.running) throw new Error('restart: server is running; stop() it first');
    await this.listen(this.listenPort);
  }

  clearRequests(): void {
    this.requests.length = 0;
  }

  /** Requests of one verb (and kind), for assertions. */
  requestsOf(verb: RequestVerb, kind?: ResourceKind): RequestLogEntry[] {
    return this.requests.filter((r) => r.verb === verb && (kind === undefined || r.kind === kind));
  }

  // ---- HTTP ---------------------------------------------------------------------------

  private sendJson(res: ServerResponse, entry: RequestLogEntry, code: number, body: unknown): void {
    entry.status = code;
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendStatus(res: ServerResponse, entry: RequestLogEntry, status: KubeStatus): void {
    this.sendJson(res, entry, status.code, status);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const route = parseRoute(url.pathname);
    const namespace = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(url.pathname)?.[1];
    const isWatch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const entry: RequestLogEntry = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      verb: namespace
        ? 'get'
        : route
          ? route.name
            ? 'get'
            : isWatch
              ? 'watch'
              : 'list'
          : this.discovery.has(url.pathname)
            ? 'discovery'
            : 'unknown',
      status: 0,
      at: Date.now(),
    };
    if (route) {
      entry.kind = route.kind;
      if (route.namespace !== undefined) entry.namespace = route.namespace;
    }
    this.requests.push(entry);
    try {
      if (this.options.token !== undefined && req.headers.authorization !== `Bearer ${this.options.token}`) {
        return this.sendStatus(res, entry, kubeStatus(401, 'Unauthorized', 'Unauthorized'));
      }
      if (this.failures && this.failures.remaining > 0 && this.failures.match(entry)) {
        this.failures.remaining -= 1;
        const { status: code, retryAfterSeconds } = this.failures;
        const details = retryAfterSeconds === undefined ? undefined : { retryAfterSeconds };
        if (retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(retryAfterSeconds));
        return this.sendStatus(
          res,
          entry,
          kubeStatus(code, REASONS[code] ?? 'Unknown', `injected failure (${code})`, details),
        );
      }
      if (req.method !== 'GET') {
        return this.sendStatus(
          res,
          entry,
          kubeStatus(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`),
        );
      }
      if (entry.verb === 'discovery') return this.sendJson(res, entry, 200, this.discovery.get(url.pathname));
      if (namespace !== undefined) {
        const found = this.namespaces.get(decodeURIComponent(namespace));
        if (found) return this.sendJson(res, entry, 200, found);
        return this.sendStatus(res, entry, kubeStatus(404, 'NotFound', `namespaces "${namespace}" not found`));
      }
      if (!route)
        return this.sendStatus(
          res,
          entry,
          kubeStatus(404, 'NotFound', 'the server could not find the requested resource'),
        );
      if (route.name !== undefined) return this.handleGet(res, entry, route);
      if (isWatch) return this.handleWatch(res, entry, route, url.searchParams);
      return this.handleList(res, entry, route, url.searchParams);
    } catch (err) {
      if (err instanceof KubeStatusError) return this.sendStatus(res, entry, err.status);
      const message = err instanceof Error ? err.message : String(err);
      return this.sendStatus(res, entry, kubeStatus(500, 'InternalError', message));
    }
  }

  private handleGet(res: ServerResponse, entry: RequestLogEntry, route: Route): void {
    const found = this.store.get(route.kind, route.namespace, route.name!);
    if (!found) {
      return this.sendStatus(
        res,
        entry,
        kubeStatus(404, 'NotFound', `${RESOURCES[route.kind].plural} "${route.name}" not found`),
      );
    }
    this.sendJson(res, entry, 200, found);
  }

  private filterFor(route: Route, params: URLSearchParams): (object: KubeObject) => boolean {
    let labels: LabelSelector;
    try {
      labels = parseLabelSelector(params.get('labelSelector') ?? '');
    } catch (err) {
      throw new KubeStatusError(
        kubeStatus(400, 'BadRequest', `unable to parse requirement: ${(err as Error).message}`),
      );
    }
    const fields = parseFieldSelector(params.get('fieldSelector') ?? undefined);
    return (object) => {
      if (route.namespace !== undefined && object.metadata.namespace !== route.namespace) return false;
      if (!matchesLabels(labels, object.metadata.labels)) return false;
      return fields.every((f) => {
        const actual = f.field === 'metadata.name' ? object.metadata.name : (object.metadata.namespace ?? '');
        return (actual === f.value) !== f.negate;
      });
    };
  }

  private handleList(res: ServerResponse, entry: RequestLogEntry, route: Route, params: URLSearchParams): void {
    const filter = this.filterFor(route, params);
    const limitText = params.get('limit');
    const limit = limitText === null || limitText === '' ? 0 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 0) {
      throw new KubeStatusError(kubeStatus(400, 'BadRequest', `invalid limit: ${limitText}`));
    }
    const continueText = params.get('continue');
    const rvText = params.get('resourceVersion') ?? '';
    let atRv: number;
    let start = '';
    if (continueText) {
      if (rvText !== '') {
        throw new KubeStatusError(
          kubeStatus(400, 'BadRequest', 'specifying resource version is not allowed when using continue'),
        );
      }
      const token = decodeContinue(continueText);
      if (token.rv < this.store.compactedResourceVersion) {
        throw new KubeStatusError(
          expiredStatus(
            'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
          ),
        );
      }
      atRv = token.rv;
      start = token.start;
    } else {
      const rv = parseRv(rvText);
      const exact = params.get('resourceVersionMatch') === 'Exact';
      if (rv !== undefined && rv > this.store.resourceVersion) {
        throw new KubeStatusError(
          kubeStatus(504, 'Timeout', `Too large resource version: ${rv}, current: ${this.store.resourceVersion}`, {
            causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
            retryAfterSeconds: 1,
          }),
        );
      }
      // NotOlderThan (the default) may serve the current state; Exact must serve `rv`.
      atRv = exact && rv !== undefined ? rv : this.store.resourceVersion;
    }
    const { items: page, more, remaining } = this.store.listPage(route.kind, atRv, start, limit, filter);
    const info = RESOURCES[route.kind];
    const metadata: Record<string, unknown> = { resourceVersion: String(atRv) };
    if (more) {
      metadata.continue = encodeContinue({ rv: atRv, start: page[page.length - 1]!.key });
      // The apiserver only knows the remaining count when no selector filters the list.
      if (!params.get('labelSelector') && !params.get('fieldSelector')) metadata.remainingItemCount = remaining;
    }
    // Items of built-in list responses carry no kind/apiVersion; only the list does.
    const items = page.map(({ object }) => {
      const { kind: _kind, apiVersion: _apiVersion, ...rest } = object;
      return rest;
    });
    this.sendJson(res, entry, 200, { kind: `${info.kind}List`, apiVersion: info.apiVersion, metadata, items });
  }

  private handleWatch(res: ServerResponse, entry: RequestLogEntry, route: Route, params: URLSearchParams): void {
    const filter = this.filterFor(route, params);
    const rv = parseRv(params.get('resourceVersion') ?? '');
    const timeoutText = params.get('timeoutSeconds');
    const timeoutSeconds = timeoutText ? Number(timeoutText) : this.options.defaultWatchTimeoutSeconds;
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) {
      throw new KubeStatusError(kubeStatus(400, 'BadRequest', `invalid timeoutSeconds: ${timeoutText}`));
    }
    const expired = rv !== undefined && rv < this.store.compactedResourceVersion;
    if (expired && this.options.expiredWatch === 'http') {
      throw new KubeStatusError(
        expiredStatus(`too old resource version: ${rv} (${this.store.compactedResourceVersion})`),
      );
    }
    entry.status = 200;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const timers: NodeJS.Timeout[] = [];
    let unsubscribe = () => {};
    const stream = new WatchStream({
      res,
      delayMs: () => this.streamDelayMs,
      onClose: () => {
        unsubscribe();
        for (const timer of timers) clearTimeout(timer);
        this.watches.delete(stream);
      },
    });
    this.watches.add(stream);
    if (this.silenceNewWatches) stream.silence();
    const fail = (status: KubeStatus) => {
      stream.send({ type: 'ERROR', object: status });
      stream.end();
    };
    if (expired) return fail(expiredStatus(`too old resource version: ${rv} (${this.store.compactedResourceVersion})`));
    if (rv !== undefined && rv > this.store.resourceVersion) {
      return fail(
        kubeStatus(504, 'Timeout', `Too large resource version: ${rv}, current: ${this.store.resourceVersion}`, {
          causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
          retryAfterSeconds: 1,
        }),
      );
    }
    const onChange = (change: StoredChange) => {
      if (change.kind !== route.kind) return;
      const before = change.prev !== undefined && filter(change.prev);
      const after = change.type !== 'DELETED' && filter(change.object);
      // Like the cacher: an object moving into or out of the selector is ADDED / DELETED.
      let type: string | undefined;
      if (change.type === 'DELETED') type = before ? 'DELETED' : undefined;
      else if (before && after) type = 'MODIFIED';
      else if (after) type = 'ADDED';
      else if (before) type = 'DELETED';
      if (type) stream.send({ type, object: change.object });
    };
    if (rv === undefined) {
      // RV "" / "0": synthetic ADDED for the current state, then changes from now.
      for (const { object } of this.store.listPage(route.kind, this.store.resourceVersion, '', 0, filter).items)
        stream.send({ type: 'ADDED', object });
    } else {
      for (const change of this.store.changesSince(route.kind, rv)) onChange(change);
    }
    unsubscribe = this.store.subscribe(onChange);
    const info = RESOURCES[route.kind];
    if (params.get('allowWatchBookmarks') === 'true') {
      const bookmark = () =>
        stream.send({
          type: 'BOOKMARK',
          object: { kind: info.kind, apiVersion: info.apiVersion, metadata: { resourceVersion: this.resourceVersion } },
        });
      // clearTimeout also clears intervals, so onClose handles both.
      timers.push(setInterval(bookmark, this.options.bookmarkIntervalMs));
    }
    if (timeoutSeconds > 0) timers.push(setTimeout(() => stream.end(), timeoutSeconds * 1000));
  }
}
