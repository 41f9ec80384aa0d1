import type { EventLog } from '../../libs/eventlog/event-log.ts';
import type { ClusterInformer, KnownObjects, KubeEventSink, KubeKind, KubeObject, ManifestsSource, ResumeStore } from '../../libs/kube/index.ts';
import type { Rejection } from '../../libs/model/index.ts';

/** What the planner needs from an event source: start it, know when it synced, stop it. */
export interface EventSource {
  readonly origin: 'manifests' | undefined;
  readonly synced: Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): unknown;
  /** Why the source is failing right now (one line), or undefined while it works. */
  problem(): string | undefined;
}

/** `onSourceRejections` gets the source's CURRENT rejections (each scan replaces the previous list). */
export interface EventSourceHooks {
  onSourceRejections(rejected: readonly Rejection[]): void;
}

export type EventSourceFactory = (sink: KubeEventSink, hooks: EventSourceHooks) => EventSource;

/**
 * The objects the log holds, for a source to start from (call it when the source is made: the
 * log must not move in between). Sources diff their first scan or LIST against these, so a
 * restart logs only what changed while the planner was down, deletions included.
 */
export function knownObjectsFromLog(log: Pick<EventLog, 'liveObjectEvents' | 'lastSeq' | 'events'>): KnownObjects {
  const objects = new Map<KubeKind, KubeObject[]>();
  for (const e of log.liveObjectEvents()) {
    const list = objects.get(e.kind) ?? [];
    list.push(e.object as KubeObject);
    objects.set(e.kind, list);
  }
  const last = log.lastSeq() > 0 ? log.events({ fromSeq: log.lastSeq(), limit: 1 })[0] : undefined;
  return { objects, lastResourceVersion: last?.resourceVersion };
}

/** A ResumeStore that also answers knownObjects, so a relist after a 410 reports deletions made while the planner was down. */
export function withKnownObjects(store: ResumeStore, known: KnownObjects): ResumeStore {
  return {
    load: (kind) => store.load(kind),
    save: (kind, rv) => store.save(kind, rv),
    knownObjects: (kind) => known.objects.get(kind) ?? [],
  };
}

export function informerSource(informer: ClusterInformer): EventSource {
  return {
    origin: undefined, synced: informer.synced, health: () => informer.health(),
    start: async () => informer.start(), stop: () => informer.stop(), problem: () => informer.problem(),
  };
}

/**
 * Adapts libs/kube's ManifestsSource. The source emits invalid-but-nameable objects like a watch
 * would, so the planner logs them and rejects each alone (keeping its last good state); its own
 * report of rejections (refused files, duplicates, unnameable documents) is forwarded as is.
 */
export function manifestsSource(make: (o: { sink: KubeEventSink; onRejected: (r: readonly Rejection[]) => void }) => ManifestsSource,
  sink: KubeEventSink, hooks: EventSourceHooks): EventSource {
  const src = make({ sink, onRejected: (rejected) => hooks.onSourceRejections(rejected) });
  return {
    origin: 'manifests', synced: src.synced, health: () => src.health(),
    start: () => src.start(), stop: () => src.stop(), problem: () => src.problem(),
  };
}
