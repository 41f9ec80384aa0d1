// List/watch loop for one kind. Every event goes through the awaited sink before the
// next line is read and before its RV is saved, so a crash never skips an event.
// Expired RVs (410) relist and diff; every other failure retries with backoff. The loop
// only ends through stop(). A watch that delivers nothing (no event, no bookmark) for
// watchIdleMs is treated as dead and re-established: a half-open connection (a partition, a
// proxy that keeps the client side) sends no RST, so without this bound the informer would
// trust it until the watch timeout, 5-10 minutes (client-go's kubernetes#87615).

import { Backoff, retryDelayMs, type BackoffOptions } from './backoff.ts';
import { systemClock, type Clock } from './clock.ts';
import { isExpired, isTooLargeResourceVersion, KubeApiError } from './kube-api-error.ts';
import { objectKey, type KubeEventSink, type KubeEventType, type RawKubeObject } from './kube-event.ts';
import type { KubeHttp } from './kube-http.ts';
import { KUBE_KIND_INFO, type KubeKind } from './kube-kind.ts';
import { listChanges, listDeletions, relistDiff } from './relist-diff.ts';
import type { ResumeStore } from './resume-store.ts';

export interface KindInformerHealth {
  kind: KubeKind;
  synced: boolean;
  /** A watch stream is open right now. */
  watching: boolean;
  resourceVersion: string | undefined;
  knownObjects: number;
  lists: number;
  /** Relists caused by 410 Expired (not counting the first list). */
  relists: number;
  watchesOpened: number;
  events: number;
  bookmarks: number;
  /** Watches abandoned because they delivered nothing (no event, no bookmark) for watchIdleMs. */
  idleWatches: number;
  expired: number;
  errors: number;
  sinkErrors: number;
  /** Failures since the last success; > 0 means the informer is retrying. */
  consecutiveFailures: number;
  /** The current failure; cleared by the next success. */
  lastError?: string;
  lastErrorAt?: number;
  lastEventAt?: number;
}

export interface KindInformerOptions {
  kind: KubeKind;
  http: KubeHttp;
  sink: KubeEventSink;
  resumeStore?: ResumeStore;
  clock?: Clock;
  backoff?: BackoffOptions;
  /** LIST page size (default 500). */
  pageSize?: number;
  /** Server-side watch timeout; each watch asks for a random value in [t, 2t) (default 300 s), like client-go. */
  watchTimeoutSeconds?: number;
  /** Extra idle time after the watch timeout before the transport gives up on a silent socket (default 30 s). */
  idleGraceMs?: number;
  /**
   * A watch that delivers nothing, neither an event nor a bookmark, for this long is abandoned and
   * re-established from its RV (default 120 s: the apiserver sends a bookmark about every minute
   * to a watch that asks for them, so this is two missed bookmarks). The time the sink takes
   * does not count. Until a new watch delivers something, the kind reports the failure.
   */
  watchIdleMs?: number;
  /** Longest wait a server's Retry-After (429/503) can impose (default 60 s). */
  retryAfterCapMs?: number;
  random?: () => number;
  /** Called on every failure (for logging); must not throw. */
  onError?: (kind: KubeKind, err: unknown) => void;
  /**
   * Remember only each object's identity (kind, apiVersion and metadata name, namespace, uid,
   * resourceVersion, labels), not the whole object: all a relist diff reads. For a sink that keeps
   * the state itself (the planner), so the informer does not hold a second copy of the cluster;
   * a relist's synthetic DELETED then carries that identity as its object, and objects() returns
   * identities. Default: whole objects.
   */
  identityOnly?: boolean;
  /**
   * Start with a LIST whatever RV the resume store saved, and hand the sink every listed object
   * (MODIFIED for a known one even at the same resourceVersion), then diff as usual: `planner
   * --relist`, for an API server whose store went back (an etcd restore) past what the "Too large
   * resource version" check can see, where resourceVersions repeat with other content.
   */
  freshList?: boolean;
}

/** What a relist diff needs of an object (and what a synthetic DELETED of it carries). */
export function identityOf(o: RawKubeObject): RawKubeObject {
  const md = o.metadata;
  const metadata: RawKubeObject['metadata'] = { name: md.name };
  if (md.namespace !== undefined) metadata.namespace = md.namespace;
  if (md.uid !== undefined) metadata.uid = md.uid;
  if (md.resourceVersion !== undefined) metadata.resourceVersion = md.resourceVersion;
  if (md.labels !== undefined) metadata.labels = { ...md.labels };
  return { apiVersion: o.apiVersion, kind: o.kind, metadata };
}

class SinkError extends Error {
  constructor(override readonly cause: unknown) {
    super(`event sink failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

interface WatchEvent {
  type?: unknown;
  object?: { metadata?: { resourceVersion?: unknown } } & Record<string, unknown>;
}

export class KindInformer {
  readonly kind: KubeKind;
  private readonly options: KindInformerOptions;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly random: () => number;
  private readonly known = new Map<string, RawKubeObject>();
  private rv: string | undefined;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private resolveSynced!: () => void;
  /** Resolves once the first list was delivered to the sink (or a resumed watch opened). */
  readonly synced: Promise<void>;
  private readonly stats: KindInformerHealth;
  /** The last failure was a silent watch: a new watch opening is not health until it delivers. */
  private idleFailure = false;
  /** The last failure was "Too large resource version" (see run()). */
  private tooLargeBefore = false;
  /** The first list hands over every object (options.freshList); cleared once it succeeded. */
  private freshList: boolean;

  constructor(options: KindInformerOptions) {
    this.options = options;
    this.kind = options.kind;
    if (!KUBE_KIND_INFO[options.kind]) throw new Error(`unknown kind: ${String(options.kind)}`);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.backoff = new Backoff({ random: this.random, ...options.backoff });
    this.synced = new Promise((resolve) => (this.resolveSynced = resolve));
    this.stats = {
      kind: options.kind,
      synced: false,
      watching: false,
      resourceVersion: undefined,
      knownObjects: 0,
      lists: 0,
      relists: 0,
      watchesOpened: 0,
      events: 0,
      bookmarks: 0,
      idleWatches: 0,
      expired: 0,
      errors: 0,
      sinkErrors: 0,
      consecutiveFailures: 0,
    };
    const store = options.resumeStore;
    for (const object of store?.knownObjects?.(options.kind) ?? [])
      this.known.set(objectKey(object), this.remembered(this.normalize(object)));
    this.freshList = options.freshList === true;
    this.rv = this.freshList ? undefined : store?.load(options.kind) || undefined;
  }

  get isSynced(): boolean {
    return this.stats.synced;
  }

  health(): KindInformerHealth {
    return { ...this.stats, resourceVersion: this.rv, knownObjects: this.known.size };
  }

  /** The objects as the sink has seen them. */
  objects(): RawKubeObject[] {
    return [...this.known.values()];
  }

  start(): void {
    if (this.loop) throw new Error(`${this.kind} informer already started`);
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private markSynced(): void {
    if (this.stats.synced) return;
    this.stats.synced = true;
    this.resolveSynced();
  }

  private remembered(object: RawKubeObject): RawKubeObject {
    return this.options.identityOnly ? identityOf(object) : object;
  }

  private normalize(object: unknown): RawKubeObject {
    const raw = object as RawKubeObject;
    if (!raw || typeof raw !== 'object' || !raw.metadata || typeof raw.metadata.name !== 'string') {
      throw new Error(`${this.kind}: object without metadata.name: ${JSON.stringify(object)?.slice(0, 200)}`);
    }
    // List items come without kind/apiVersion; give every emitted object both.
    const info = KUBE_KIND_INFO[this.kind];
    return { ...raw, apiVersion: raw.apiVersion ?? info.apiVersion, kind: raw.kind ?? info.kind };
  }

  private async emit(
    type: KubeEventType,
    object: RawKubeObject,
    resourceVersion: string,
    relist: boolean,
  ): Promise<void> {
    try {
      await this.options.sink({ kind: this.kind, type, object, resourceVersion, relist });
    } catch (err) {
      throw new SinkError(err);
    }
    const key = objectKey(object);
    if (type === 'DELETED') this.known.delete(key);
    else this.known.set(key, this.remembered(object));
    this.stats.events += 1;
    this.stats.lastEventAt = this.clock.now();
  }

  private save(rv: string): void {
    this.rv = rv;
    this.options.resumeStore?.save(this.kind, rv);
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let listedOnce = false;
    while (!signal.aborted) {
      try {
        if (this.rv === undefined) {
          await this.list(signal, listedOnce);
          listedOnce = true;
          this.markSynced();
        }
        await this.watch(signal);
      } catch (err) {
        if (signal.aborted) break;
        this.stats.watching = false;
        this.options.onError?.(this.kind, err);
        this.stats.lastError = err instanceof Error ? err.message : String(err);
        this.stats.lastErrorAt = this.clock.now();
        // The same "Too large resource version" after the server's Retry-After wait is no lagging
        // cache: the store went back (probe4 K6). Relist and diff, as after a 410, instead of
        // waiting to resume from an RV the new store may reach with other objects.
        const tooLarge = isTooLargeResourceVersion(err);
        if (tooLarge && this.tooLargeBefore) {
          this.tooLargeBefore = false;
          this.stats.expired += 1;
          this.stats.errors += 1;
          this.rv = undefined;
          this.stats.consecutiveFailures += 1;
          continue;
        }
        this.tooLargeBefore = tooLarge;
        if (isExpired(err)) {
          this.stats.expired += 1;
          this.rv = undefined;
          // The first 410 relists at once (client-go does too); repeated ones back off.
          if (this.stats.consecutiveFailures++ === 0) continue;
        } else {
          if (err instanceof SinkError) this.stats.sinkErrors += 1;
          this.stats.errors += 1;
          this.stats.consecutiveFailures += 1;
        }
        // A server that says how long to wait (429 TooManyRequests, 503) is obeyed, bounded.
        const asked = err instanceof KubeApiError ? err.retryAfterSeconds : undefined;
        await this.clock.sleep(retryDelayMs(this.backoff.next(), asked, this.options.retryAfterCapMs), signal);
      }
    }
    this.stats.watching = false;
  }

  private succeeded(): void {
    this.backoff.reset();
    this.working();
  }

  /**
   * The informer works again (a list or a watch succeeded): lastError describes a current failure
   * only; the count of past ones stays in `errors`/`expired`. The backoff is reset only by data
   * (succeeded), so a server that accepts watches and closes them at once still meets a growing delay.
   */
  private working(): void {
    this.idleFailure = false;
    this.stats.consecutiveFailures = 0;
    delete this.stats.lastError;
    delete this.stats.lastErrorAt;
  }

  private async list(signal: AbortSignal, isRelist: boolean): Promise<void> {
    const info = KUBE_KIND_INFO[this.kind];
    const items: RawKubeObject[] = [];
    const listedKeys = new Set<string>();
    let continueToken: string | undefined;
    let listRv: string | undefined;
    // Once synced, a list (a relist) delivers nothing before it has every page: the sink would
    // see half a list as the cluster. Before, the list delivers each page's changes as the
    // page comes, so the sink's work overlaps the paging: until synced the sink makes nothing of
    // a partial list (the planner makes no version before every informer synced), and deletions,
    // which only a complete list can tell, wait for the last page. Every page of a list is at its
    // first page's resourceVersion; a list that fails midway is listed again and diffed against
    // what was delivered.
    const streaming = !this.stats.synced;
    do {
      const query: Record<string, string> = { limit: String(this.options.pageSize ?? 500) };
      if (continueToken) query.continue = continueToken;
      const page = (await this.options.http.getJson({ path: info.path, query, signal })) as {
        metadata?: { resourceVersion?: string; continue?: string };
        items?: unknown[];
      };
      if (!page || !Array.isArray(page.items) || typeof page.metadata?.resourceVersion !== 'string') {
        throw new Error(
          `${this.kind}: LIST response is not a ${info.kind}List: ${JSON.stringify(page)?.slice(0, 200)}`,
        );
      }
      listRv ??= page.metadata.resourceVersion;
      const objects = page.items.map((item) => this.normalize(item));
      continueToken = page.metadata.continue || undefined;
      if (!streaming) {
        for (const o of objects) items.push(o);
        continue;
      }
      for (const o of objects) listedKeys.add(objectKey(o));
      for (const change of listChanges(this.known, objects, this.freshList))
        await this.emit(change.type, change.object, listRv, true);
    } while (continueToken);
    this.stats.lists += 1;
    if (isRelist) this.stats.relists += 1;
    const changes = streaming ? listDeletions(this.known, listedKeys) : relistDiff(this.known, items);
    for (const change of changes) await this.emit(change.type, change.object, listRv!, true);
    this.freshList = false;
    this.save(listRv!);
    this.succeeded();
  }

  private async watch(signal: AbortSignal): Promise<void> {
    const info = KUBE_KIND_INFO[this.kind];
    const base = this.options.watchTimeoutSeconds ?? 300;
    const timeoutSeconds = Math.max(1, Math.floor(base * (1 + this.random())));
    const idle = new IdleWatchdog(this.clock, this.options.watchIdleMs ?? 120_000, signal);
    try {
      idle.arm();
      const stream = await this.options.http.watch({
        path: info.path,
        query: {
          watch: 'true',
          resourceVersion: this.rv!,
          allowWatchBookmarks: 'true',
          timeoutSeconds: String(timeoutSeconds),
        },
        signal: idle.signal,
        idleTimeoutMs: timeoutSeconds * 1000 + (this.options.idleGraceMs ?? 30_000),
      });
      idle.disarm();
      await this.readWatch(stream, timeoutSeconds, idle);
    } catch (err) {
      if (!idle.fired || signal.aborted) throw err;
      this.stats.idleWatches += 1;
      this.idleFailure = true;
      throw new Error(
        `${this.kind}: watch delivered nothing (no event, no bookmark) for ${idle.ms} ms; abandoned, watching again from resourceVersion ${this.rv}`,
      );
    } finally {
      idle.dispose();
    }
  }

  private async readWatch(stream: AsyncIterable<unknown>, timeoutSeconds: number, idle: IdleWatchdog): Promise<void> {
    this.stats.watchesOpened += 1;
    this.stats.watching = true;
    // A quiet cluster sends no events for minutes, so an open watch is health enough, except
    // after a silent watch was abandoned: then only a delivered line (event or bookmark) is.
    if (!this.idleFailure) this.working();
    // Resumed from a saved RV: the sink already holds the state as of that RV.
    this.markSynced();
    const openedAt = this.clock.now();
    let lines = 0;
    const iterator = stream[Symbol.asyncIterator]();
    for (;;) {
      // Only the wait for the next line counts as idle, not the sink's work on the last one.
      idle.arm();
      const next = await iterator.next();
      idle.disarm();
      if (next.done) break;
      const line = next.value;
      lines += 1;
      const event = line as WatchEvent;
      const type = event?.type;
      if (type === 'ERROR') {
        throw KubeApiError.fromStatus(500, event.object, `${this.kind} watch`);
      }
      const rv = event?.object?.metadata?.resourceVersion;
      if (typeof rv !== 'string' || rv === '') {
        throw new Error(
          `${this.kind}: watch event without metadata.resourceVersion: ${JSON.stringify(line).slice(0, 200)}`,
        );
      }
      if (type === 'BOOKMARK') {
        this.stats.bookmarks += 1;
        this.save(rv);
      } else if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
        await this.emit(type, this.normalize(event.object), rv, false);
        this.save(rv);
      } else {
        throw new Error(`${this.kind}: unknown watch event type ${JSON.stringify(type)}`);
      }
      this.succeeded();
    }
    this.stats.watching = false;
    // A server (or proxy) that closes watches at once, silently, would make us spin: back off.
    const elapsed = this.clock.now() - openedAt;
    if (lines === 0 && elapsed < (timeoutSeconds * 1000) / 2) {
      throw new Error(`${this.kind}: watch closed by the server after ${elapsed} ms without any event`);
    }
    // Clean end (server timeout): re-watch from the saved RV, no backoff needed.
  }
}

/**
 * Aborts one watch's request when nothing arrives for `ms` while armed. Its signal also follows
 * the informer's (stop). Runs on the informer's Clock so the bound is a seam like the backoff.
 */
class IdleWatchdog {
  private readonly controller = new AbortController();
  private timer: AbortController | undefined;
  private readonly onParentAbort = () => this.controller.abort();
  fired = false;

  constructor(
    private readonly clock: Clock,
    readonly ms: number,
    private readonly parent: AbortSignal,
  ) {
    if (!(ms > 0)) throw new Error(`watchIdleMs must be > 0, got ${ms}`);
    if (parent.aborted) this.controller.abort();
    else parent.addEventListener('abort', this.onParentAbort, { once: true });
  }

  /** Ends the watchdog: no timer left, no listener left on the informer's long-lived signal. */
  dispose(): void {
    this.disarm();
    this.parent.removeEventListener('abort', this.onParentAbort);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  arm(): void {
    this.disarm();
    const timer = new AbortController();
    this.timer = timer;
    void this.clock.sleep(this.ms, timer.signal).then(() => {
      if (timer.signal.aborted || this.controller.signal.aborted) return;
      this.fired = true;
      this.controller.abort();
    });
  }

  disarm(): void {
    this.timer?.abort();
    this.timer = undefined;
  }
}
