import type { EventLog } from '../../libs/eventlog/index.ts';
import { rebuildAtSeq } from '../../libs/eventlog/index.ts';
import {
  KUBE_KIND_INFO,
  type ClusterInformer,
  type KnownObjects,
  type KubeEventSink,
  type KubeKind,
  type RawKubeObject,
  type ManifestsSource,
  type ResumeStore,
} from '../../libs/kube/index.ts';
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
export function knownObjectsFromLog(log: EventLog): KnownObjects {
  return knownFrom(
    log,
    log.liveObjectEvents().map((e) => [e.kind, e.object as RawKubeObject]),
  );
}

/**
 * knownObjectsFromLog with each object's identity only: what an informer that remembers
 * identities keeps of it (libs/kube kind-informer.ts identityOf: apiVersion, kind, name,
 * namespace, uid, resourceVersion, labels), read by SQLite's JSON functions. Parsing every
 * logged object instead held a new leader's thread ~10 s at 10,000 services × 250 endpoints
 * (docs/scale.md), past most of its lease.
 */
export function knownIdentitiesFromLog(log: EventLog): KnownObjects {
  const objects: [KubeKind, RawKubeObject][] = log.liveObjectIdentities().map((r) => {
    const kind = r.kind as KubeKind;
    const metadata: RawKubeObject['metadata'] = { name: r.name };
    if (r.namespace !== null) metadata.namespace = r.namespace;
    if (r.uid !== null) metadata.uid = r.uid;
    if (r.resourceVersion !== null) metadata.resourceVersion = r.resourceVersion as string;
    if (r.labels !== null) metadata.labels = JSON.parse(r.labels) as Record<string, string>;
    const object = {
      apiVersion: r.apiVersion ?? KUBE_KIND_INFO[kind].apiVersion,
      kind: (r.objectKind ?? kind) as KubeKind,
      metadata,
    } as RawKubeObject;
    return [kind, object];
  });
  return knownFrom(log, objects);
}

function knownFrom(log: EventLog, live: [KubeKind, RawKubeObject][]): KnownObjects {
  const objects = new Map<KubeKind, RawKubeObject[]>();
  const add = (kind: KubeKind, object: RawKubeObject) => {
    const list = objects.get(kind);
    if (list) list.push(object);
    else objects.set(kind, [object]);
  };
  for (const [kind, object] of live) add(kind, object);
  for (const [kind, object] of compactedObjects(log)) add(kind, object);
  const last = log.lastSeq() > 0 ? log.events({ fromSeq: log.lastSeq(), limit: 1 })[0] : undefined;
  return { objects, lastResourceVersion: last?.resourceVersion };
}

/**
 * After `db compact`, objects whose every event was compacted away live on only in the checkpoint
 * at the cut. They are known as stubs (identity, uid and resourceVersion; not the raw object), so
 * a relist or scan still reports them DELETED when they are gone; one still there is at worst
 * logged again (a MODIFIED that makes no version). Costs a read of the retained events, only then.
 */
function compactedObjects(log: EventLog): [KubeKind, RawKubeObject][] {
  const first = log.events({ limit: 1 })[0];
  const cut = first ? first.seq - 1 : log.lastSeq();
  if (cut <= 0) return [];
  const seenAfter = new Set(log.events({ fromSeq: cut + 1 }).map((e) => `${e.kind}/${e.namespace}/${e.name}`));
  const out: [KubeKind, RawKubeObject][] = [];
  for (const o of rebuildAtSeq(log, cut).state.objectsInKeyOrder()) {
    if (seenAfter.has(`${o.kind}/${o.meta.namespace}/${o.meta.name}`)) continue;
    const metadata: RawKubeObject['metadata'] = {
      name: o.meta.name,
      ...(o.kind === 'Node' ? {} : { namespace: o.meta.namespace }),
    };
    if (o.meta.uid) metadata.uid = o.meta.uid;
    if (o.meta.resourceVersion) metadata.resourceVersion = o.meta.resourceVersion;
    out.push([o.kind, { apiVersion: KUBE_KIND_INFO[o.kind].apiVersion, kind: o.kind, metadata }]);
  }
  return out;
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
    origin: undefined,
    synced: informer.synced,
    health: () => informer.health(),
    start: async () => informer.start(),
    stop: () => informer.stop(),
    problem: () => informer.problem(),
  };
}

/**
 * Adapts libs/kube's ManifestsSource. The source emits invalid-but-nameable objects like a watch
 * would, so the planner logs them and rejects each alone (keeping its last good state); its own
 * report of rejections (refused files, duplicates, unnameable documents) is forwarded as is.
 */
export function manifestsSource(
  make: (o: { sink: KubeEventSink; onRejected: (r: readonly Rejection[]) => void }) => ManifestsSource,
  sink: KubeEventSink,
  hooks: EventSourceHooks,
): EventSource {
  const src = make({ sink, onRejected: (rejected) => hooks.onSourceRejections(rejected) });
  return {
    origin: 'manifests',
    synced: src.synced,
    health: () => src.health(),
    start: () => src.start(),
    stop: () => src.stop(),
    problem: () => src.problem(),
  };
}
