// What a source starts from: the objects the event log already holds. A source diffs its first
// scan or LIST against them, so a restart on unchanged input logs nothing, and an object removed
// while the planner was down is reported DELETED.

import type { RawKubeObject } from './kube-event.ts';
import type { KubeKind } from './kube-kind.ts';

export interface KnownObjects {
  /** Per kind, the last logged state of every object whose last event is not a DELETED, raw as logged. */
  readonly objects: ReadonlyMap<KubeKind, readonly RawKubeObject[]>;
  /** resourceVersion of the newest logged event, if any (the manifests source continues its synthetic RVs after it). */
  readonly lastResourceVersion: string | undefined;
}

export const NO_KNOWN_OBJECTS: KnownObjects = { objects: new Map(), lastResourceVersion: undefined };

export function knownObjectsOf(known: KnownObjects | undefined, kind: KubeKind): readonly RawKubeObject[] {
  return known?.objects.get(kind) ?? [];
}
