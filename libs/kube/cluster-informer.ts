// Informers for Services, EndpointSlices and Nodes behind one sink. Sink calls are
// serialized across kinds (never two at once), so the event log sees one ordered stream.

import type { KubeConfig } from '@kubernetes/client-node';
import type { BackoffOptions } from './backoff.ts';
import type { Clock } from './clock.ts';
import type { KubeEventSink } from './kube-event.ts';
import { kubeHttpFromConfig, type KubeHttp } from './kube-http.ts';
import { KUBE_KINDS, type KubeKind } from './kube-kind.ts';
import { KindInformer, type KindInformerHealth } from './kind-informer.ts';
import type { ResumeStore } from './resume-store.ts';

export interface ClusterInformerOptions {
  /** Either a KubeConfig (see loadKubeConfig) or a ready KubeHttp. */
  kubeConfig?: KubeConfig;
  http?: KubeHttp;
  sink: KubeEventSink;
  resumeStore?: ResumeStore;
  kinds?: readonly KubeKind[];
  clock?: Clock;
  random?: () => number;
  backoff?: BackoffOptions;
  pageSize?: number;
  watchTimeoutSeconds?: number;
  idleGraceMs?: number;
  /** See KindInformerOptions.watchIdleMs. */
  watchIdleMs?: number;
  /** See KindInformerOptions.retryAfterCapMs. */
  retryAfterCapMs?: number;
  onError?: (kind: KubeKind, err: unknown) => void;
  /** See KindInformerOptions.identityOnly. */
  identityOnly?: boolean;
  /** See KindInformerOptions.freshList. */
  freshList?: boolean;
}

export interface ClusterInformerHealth {
  synced: boolean;
  kinds: KindInformerHealth[];
}

export class ClusterInformer {
  private readonly informers: Map<KubeKind, KindInformer>;
  private tail: Promise<unknown> = Promise.resolve();
  /** Resolves when every kind has synced: the planner publishes nothing before that. */
  readonly synced: Promise<void>;

  constructor(options: ClusterInformerOptions) {
    const http = options.http ?? (options.kubeConfig ? kubeHttpFromConfig(options.kubeConfig) : undefined);
    if (!http) throw new Error('ClusterInformer needs a kubeConfig or an http client');
    const kinds = options.kinds ?? KUBE_KINDS;
    if (kinds.length === 0) throw new Error('ClusterInformer needs at least one kind');
    const sink: KubeEventSink = (event) => {
      const run = this.tail.then(() => options.sink(event));
      this.tail = run.catch(() => {});
      return run;
    };
    this.informers = new Map(
      kinds.map((kind) => [
        kind,
        new KindInformer({
          kind,
          http,
          sink,
          resumeStore: options.resumeStore,
          clock: options.clock,
          random: options.random,
          backoff: options.backoff,
          pageSize: options.pageSize,
          watchTimeoutSeconds: options.watchTimeoutSeconds,
          idleGraceMs: options.idleGraceMs,
          watchIdleMs: options.watchIdleMs,
          retryAfterCapMs: options.retryAfterCapMs,
          onError: options.onError,
          identityOnly: options.identityOnly,
          freshList: options.freshList,
        }),
      ]),
    );
    this.synced = Promise.all([...this.informers.values()].map((i) => i.synced)).then(() => undefined);
  }

  get isSynced(): boolean {
    return [...this.informers.values()].every((i) => i.isSynced);
  }

  informer(kind: KubeKind): KindInformer {
    const informer = this.informers.get(kind);
    if (!informer) throw new Error(`this ClusterInformer does not watch ${kind}`);
    return informer;
  }

  start(): void {
    for (const informer of this.informers.values()) informer.start();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  /** Why some kind is failing right now (its last error), or undefined while every kind works. */
  problem(): string | undefined {
    const failing = [...this.informers.values()]
      .map((i) => i.health())
      .filter((h) => h.consecutiveFailures > 0 && h.lastError);
    return failing.length ? failing.map((h) => `${h.kind}: ${h.lastError}`).join('; ') : undefined;
  }

  health(): ClusterInformerHealth {
    return { synced: this.isSynced, kinds: [...this.informers.values()].map((i) => i.health()) };
  }
}
