// Pages of a first LIST fetched ahead, before the informer that will read them exists.
//
// A planner learns whether it leads only after NATS answered (connect, the replicated log, the
// lease's claim: ~0.2 s on a quiet host), and its informer starts only then. A ListPrefetch starts
// the LIST requests that informer would make (a fresh list: `limit` pages chained by `continue`,
// each kind at the resourceVersion of its first page) while that wait runs, and keeps the answers;
// the informer's http (`http()`) hands each one out when the informer asks for exactly that page,
// once. Nothing reaches a sink, a log or a bus through it: a page becomes an event only when an
// informer asks for it, and a planner that does not lead never makes one (it drops the prefetch).
//
// What the informer gets is what it would have got by asking itself a little earlier: every page
// of one list is at its first page's resourceVersion, and the informer watches from there, so the
// events it delivers are the same. A page it asks for that is not the next one fetched (it resumes
// from a saved resourceVersion with a watch, or asks with other parameters) is fetched as usual,
// and that kind's pages fetched ahead are dropped. A failed page fails the informer's request as
// its own failure would have (it retries as usual, without the prefetch). While the informer
// lists, the next pages are fetched ahead of it too (at most `maxPagesAhead` per kind). Pages
// are dropped when no informer took one within `maxAgeMs`, and on drop().

import { KUBE_KIND_INFO, KUBE_KINDS, type KubeKind } from './kube-kind.ts';
import type { KubeHttp, KubeRequest } from './kube-http.ts';

export interface ListPrefetchOptions {
  readonly kinds?: readonly KubeKind[];
  /** The informer's LIST page size (KindInformerOptions.pageSize; default 500, as there). */
  readonly pageSize?: number;
  /** Pages fetched ahead of the informer per kind (default 8). */
  readonly maxPagesAhead?: number;
  /** When no informer took a page within this long after the prefetch started, every page is dropped (default 30 s). */
  readonly maxAgeMs?: number;
}

interface Page {
  /** The query the informer asks this page with. */
  readonly key: string;
  readonly answer: Promise<unknown>;
}

interface KindPrefetch {
  readonly path: string;
  readonly pages: Page[];
  /** The continue token of the last page fetched (undefined: none fetched yet or the list is complete). */
  next: string | undefined;
  done: boolean;
  fetching: boolean;
}

const queryKey = (query: Record<string, string> | undefined): string =>
  JSON.stringify(Object.entries(query ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

export class ListPrefetch {
  private readonly kinds = new Map<string, KindPrefetch>();
  private readonly abort = new AbortController();
  private readonly pageSize: string;
  private readonly maxAhead: number;
  private readonly expiry: NodeJS.Timeout;
  /** Pages handed to the informer, and requests for a page not fetched ahead (for tests and notes). */
  readonly stats = { fetched: 0, taken: 0, missed: 0 };

  constructor(
    private readonly base: KubeHttp,
    options: ListPrefetchOptions = {},
  ) {
    this.pageSize = String(options.pageSize ?? 500);
    this.maxAhead = Math.max(1, options.maxPagesAhead ?? 8);
    for (const kind of options.kinds ?? KUBE_KINDS) {
      const k: KindPrefetch = {
        path: KUBE_KIND_INFO[kind].path,
        pages: [],
        next: undefined,
        done: false,
        fetching: false,
      };
      this.kinds.set(k.path, k);
      this.fetchNext(k);
    }
    // only while no informer took a page: one that did reads on, however slowly
    this.expiry = setTimeout(() => {
      if (this.stats.taken === 0) this.drop();
    }, options.maxAgeMs ?? 30_000);
    this.expiry.unref?.();
  }

  /** The informer's http: prefetched pages first (each once, in order), everything else from the base. */
  http(): KubeHttp {
    return {
      getJson: (request) => this.take(request) ?? this.base.getJson(request),
      watch: (request) => {
        this.forget(request.path);
        return this.base.watch(request);
      },
    };
  }

  /** Stops fetching and forgets every page not taken (a planner that does not lead, or stops). */
  drop(): void {
    clearTimeout(this.expiry);
    this.abort.abort();
    for (const k of this.kinds.values()) this.forgetKind(k);
  }

  private query(k: KindPrefetch): Record<string, string> {
    const q: Record<string, string> = { limit: this.pageSize };
    if (k.next !== undefined) q.continue = k.next;
    return q;
  }

  private fetchNext(k: KindPrefetch): void {
    if (k.done || k.fetching || k.pages.length >= this.maxAhead || this.abort.signal.aborted) return;
    const query = this.query(k);
    k.fetching = true;
    const answer = this.base.getJson({ path: k.path, query, signal: this.abort.signal });
    // a page nobody takes must not surface as an unhandled rejection
    answer.catch(() => undefined);
    k.pages.push({ key: queryKey(query), answer });
    this.stats.fetched += 1;
    answer.then(
      (page) => {
        k.fetching = false;
        const next = (page as { metadata?: { continue?: unknown } } | null)?.metadata?.continue;
        if (typeof next === 'string' && next !== '') {
          k.next = next;
          this.fetchNext(k);
        } else k.done = true;
      },
      () => {
        // the informer meets this failure on the page it asks for; nothing is fetched after it
        k.fetching = false;
        k.done = true;
      },
    );
  }

  private take(request: KubeRequest): Promise<unknown> | undefined {
    const k = this.kinds.get(request.path);
    if (!k || k.pages.length === 0) {
      if (k) this.miss(k);
      return undefined;
    }
    const head = k.pages[0]!;
    if (head.key !== queryKey(request.query)) {
      this.miss(k);
      return undefined;
    }
    k.pages.shift();
    this.stats.taken += 1;
    this.fetchNext(k);
    return withSignal(head.answer, request.signal);
  }

  private miss(k: KindPrefetch): void {
    this.stats.missed += 1;
    this.forgetKind(k);
  }

  private forget(path: string): void {
    const k = this.kinds.get(path);
    if (k) this.forgetKind(k);
  }

  /** That kind is read without the prefetch from now on. */
  private forgetKind(k: KindPrefetch): void {
    k.pages.length = 0;
    k.done = true;
    this.kinds.delete(k.path);
  }
}

/** `answer`, or a rejection as soon as `signal` aborts (the informer stops while a page is on its way). */
function withSignal(answer: Promise<unknown>, signal: AbortSignal | undefined): Promise<unknown> {
  if (!signal) return answer;
  if (signal.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    answer.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
