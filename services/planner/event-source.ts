import type { ClusterInformer, KubeEvent, KubeEventSink, ManifestsSource } from '../../libs/kube/index.ts';
import type { Rejection } from '../../libs/model/index.ts';

/** What the planner needs from an event source: start it, know when it synced, stop it. */
export interface EventSource {
  readonly origin: 'manifests' | undefined;
  readonly synced: Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): unknown;
}

export type EventSourceFactory = (sink: KubeEventSink, hooks: { onRejected: (r: Rejection) => void }) => EventSource;

export function informerSource(informer: ClusterInformer): EventSource {
  return {
    origin: undefined, synced: informer.synced, health: () => informer.health(),
    start: async () => informer.start(), stop: () => informer.stop(),
  };
}

/**
 * Adapts libs/kube's ManifestsSource. That source validates objects itself and drops invalid
 * ones, so a Service edited into something malformed disappears from its scan and comes out as
 * DELETED. The planner's rule is the opposite (a malformed object keeps its previous good state),
 * so this adapter holds each scan's DELETED events until the scan's rejections are known and
 * drops the deletes of objects that were rejected rather than removed.
 */
export function manifestsSource(make: (o: { sink: KubeEventSink; onRejected: (r: readonly Rejection[]) => void }) => ManifestsSource,
  sink: KubeEventSink, hooks: { onRejected: (r: Rejection) => void }): EventSource {
  let heldDeletes: KubeEvent[] = [];
  let chain: Promise<void> = Promise.resolve();
  const src = make({
    sink: (e) => {
      if (e.type === 'DELETED') {
        heldDeletes.push(e);
        return;
      }
      return sink(e);
    },
    onRejected: (rejected) => {
      const refs = new Set(rejected.map((r) => r.ref));
      const deletes = heldDeletes;
      heldDeletes = [];
      for (const r of rejected) hooks.onRejected(r);
      const ns = (e: KubeEvent) => e.object.metadata.namespace || (e.kind === 'Node' ? '' : 'default');
      const ref = (e: KubeEvent) => (e.kind === 'Node' ? `Node ${e.object.metadata.name}` : `${e.kind} ${ns(e)}/${e.object.metadata.name}`);
      chain = chain.then(async () => {
        for (const e of deletes) if (!refs.has(ref(e))) await sink(e);
      });
    },
  });
  return {
    origin: 'manifests',
    // Synced once the first scan's held deletes went through too.
    synced: src.synced.then(() => chain),
    health: () => src.health(),
    start: () => src.start(),
    stop: async () => {
      await src.stop();
      await chain;
    },
  };
}
