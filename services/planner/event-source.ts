import type { ClusterInformer, KubeEventSink, ManifestsSource } from '../../libs/kube/index.ts';
import type { Rejection } from '../../libs/model/index.ts';

/** What the planner needs from an event source: start it, know when it synced, stop it. */
export interface EventSource {
  readonly origin: 'manifests' | undefined;
  readonly synced: Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): unknown;
}

/** `onSourceRejections` gets the source's CURRENT rejections (each scan replaces the previous list). */
export interface EventSourceHooks {
  onSourceRejections(rejected: readonly Rejection[]): void;
}

export type EventSourceFactory = (sink: KubeEventSink, hooks: EventSourceHooks) => EventSource;

export function informerSource(informer: ClusterInformer): EventSource {
  return {
    origin: undefined, synced: informer.synced, health: () => informer.health(),
    start: async () => informer.start(), stop: () => informer.stop(),
  };
}

/**
 * Adapts libs/kube's ManifestsSource. The source emits invalid-but-nameable objects like a watch
 * would, so the planner logs them and rejects each alone (keeping its last good state); its own
 * report of rejections (YAML errors, duplicates, unnameable documents) is forwarded as is.
 */
export function manifestsSource(make: (o: { sink: KubeEventSink; onRejected: (r: readonly Rejection[]) => void }) => ManifestsSource,
  sink: KubeEventSink, hooks: EventSourceHooks): EventSource {
  const src = make({ sink, onRejected: (rejected) => hooks.onSourceRejections(rejected) });
  return {
    origin: 'manifests', synced: src.synced, health: () => src.health(),
    start: () => src.start(), stop: () => src.stop(),
  };
}
