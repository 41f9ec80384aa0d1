// Turns a fresh LIST into the exact events that take the informer's known objects to it.
// Pure: no I/O, deterministic order (deletions by key, then list order).

import { objectKey, type KubeEventType, type RawKubeObject } from './kube-event.ts';

export interface RelistChange {
  type: KubeEventType;
  object: RawKubeObject;
}

export function relistDiff(
  known: ReadonlyMap<string, RawKubeObject>,
  listed: readonly RawKubeObject[],
): RelistChange[] {
  return [...listDeletions(known, new Set(listed.map(objectKey))), ...listChanges(known, listed)];
}

/** The known objects a complete list no longer holds (`listedKeys`: every key it held), by key. */
export function listDeletions(
  known: ReadonlyMap<string, RawKubeObject>,
  listedKeys: ReadonlySet<string>,
): RelistChange[] {
  const changes: RelistChange[] = [];
  for (const key of [...known.keys()].sort()) {
    if (!listedKeys.has(key)) changes.push({ type: 'DELETED', object: known.get(key)! });
  }
  return changes;
}

/**
 * What listed objects (all of a list, or one page of it) change against the known ones, in list
 * order. `everyObject`: a known object at the same resourceVersion is MODIFIED too (a forced
 * relist after the store went back: its resourceVersions may repeat with other content).
 */
export function listChanges(
  known: ReadonlyMap<string, RawKubeObject>,
  listed: readonly RawKubeObject[],
  everyObject = false,
): RelistChange[] {
  const changes: RelistChange[] = [];
  for (const object of listed) {
    const before = known.get(objectKey(object));
    if (!before) {
      changes.push({ type: 'ADDED', object });
    } else if (
      before.metadata.uid !== undefined &&
      object.metadata.uid !== undefined &&
      before.metadata.uid !== object.metadata.uid
    ) {
      // Deleted and recreated under the same name while we were not watching.
      changes.push({ type: 'DELETED', object: before }, { type: 'ADDED', object });
    } else if (everyObject || before.metadata.resourceVersion !== object.metadata.resourceVersion) {
      changes.push({ type: 'MODIFIED', object });
    }
  }
  return changes;
}
