import {
  applyServicePatch,
  contentHash,
  type DataDelta,
  type EntryHashes,
  type NodeFacts,
  type ServiceEntry,
  type VersionArtifact,
} from '../model/index.ts';
import { ClusterDataIndex } from '../planner/index.ts';
import type { PatchedDeltaArtifact } from '../bus/index.ts';

type Delta = VersionArtifact & { form: 'delta' };
type Checkpoint = VersionArtifact & { form: 'checkpoint' };

export type ChainResult =
  | { readonly ok: true; readonly version: number; readonly hash: string }
  | { readonly ok: false; readonly error: string; readonly version: number };

/**
 * Moves `index` (at `fromVersion`) forward through `deltas`, verifying each step's parent link and
 * content hash. All or nothing: on the first broken link or hash mismatch every applied step is
 * undone, so the caller's data (and what it programmed from it) stays exactly as it was.
 * O(change): the undo is recorded per touched entry, never by copying the cluster.
 */
export function applyDeltaChain(index: ClusterDataIndex, fromVersion: number, deltas: readonly Delta[]): ChainResult {
  const undo: DataDelta[] = [];
  const before = index.hash();
  let at = fromVersion;
  const fail = (error: string): ChainResult => {
    for (let i = undo.length - 1; i >= 0; i--) index.apply(undo[i]!);
    if (index.hash() !== before) throw new Error('applyDeltaChain: undo did not restore the data (bug)');
    return { ok: false, error, version: at };
  };
  for (const d of deltas) {
    if (d.version !== at + 1 || d.parent !== at)
      return fail(`delta ${d.version} (parent ${d.parent}) does not follow version ${at}`);
    try {
      undo.push(applyWithUndo(index, d.delta, d.entryHashes));
    } catch (e) {
      return fail(`delta ${d.version} could not be applied: ${(e as Error).message}`);
    }
    const got = index.hash();
    if (got !== d.hash)
      return fail(
        `hash mismatch at version ${d.version}: content ${got.slice(0, 12)}, published ${d.hash.slice(0, 12)}`,
      );
    at = d.version;
  }
  return { ok: true, version: at, hash: index.hash() };
}

/** Builds data from a checkpoint and verifies its hash; undefined data when it does not verify. */
export function indexFromCheckpoint(c: Checkpoint): { index: ClusterDataIndex } | { error: string } {
  let index: ClusterDataIndex;
  try {
    index = ClusterDataIndex.from(c.data);
  } catch (e) {
    return { error: `checkpoint ${c.version} could not be loaded: ${(e as Error).message}` };
  }
  const got = index.hash();
  if (got !== c.hash)
    return {
      error: `hash mismatch at checkpoint ${c.version}: content ${got.slice(0, 12)}, published ${c.hash.slice(0, 12)}`,
    };
  return { index };
}

/**
 * Applies `delta` and returns the delta that reverts it. `carried`: the entries' content hashes
 * from the delta message, present only when vouched for (artifact-codec.ts, withoutUnvouchedHashes):
 * the version hash is then checked over them instead of hashing every entry again.
 */
export function applyWithUndo(index: ClusterDataIndex, delta: DataDelta, carried?: EntryHashes): DataDelta {
  const upsertServices: ServiceEntry[] = [];
  const removeServices: string[] = [];
  const upsertNodes: NodeFacts[] = [];
  const removeNodes: string[] = [];
  const svcKeys = new Set(delta.removeServices);
  for (const s of delta.upsertServices) svcKeys.add(s.key);
  for (const k of svcKeys) {
    const prev = index.service(k);
    if (prev) upsertServices.push(prev);
    else removeServices.push(k);
  }
  const nodeKeys = new Set(delta.removeNodes);
  for (const n of delta.upsertNodes) nodeKeys.add(n.name);
  for (const k of nodeKeys) {
    const prev = index.node(k);
    if (prev) upsertNodes.push(prev);
    else removeNodes.push(k);
  }
  const undo = { upsertServices, removeServices, upsertNodes, removeNodes };
  try {
    index.apply(delta, undefined, carried);
  } catch (e) {
    index.apply(undo); // a half-applied delta is reverted before the error travels on
    throw e;
  }
  return undo;
}

/** A service entry a node holds, with its content hash. */
export interface HeldEntry {
  readonly entry: ServiceEntry;
  readonly hash: string;
}

/**
 * The full delta a patched one stands for, its service entries rebuilt from those `held` finds
 * (the node's, at the version before, whose hash must be the patch's `base`). `vouched` (the
 * planner's signature covers the patch): a rebuilt entry's hash is taken from its patch, as a
 * signed delta's carried entry hashes are (the planner checked that the patch rebuilds the entry:
 * diffServiceEntry), so a node spends O(change) and one copy of the endpoints, not a hash of the
 * whole service. Otherwise each rebuilt entry is hashed here and must match. Either way the
 * version hash is checked after. An error names the first patch that does not fit.
 */
export function expandPatchedDelta(
  p: PatchedDeltaArtifact,
  held: (key: string) => HeldEntry | undefined,
  vouched = false,
): { delta: Delta } | { error: string } {
  const upsertServices = [...p.delta.upsertServices];
  const services = upsertServices.map((e) => contentHash(e));
  for (const patch of p.servicePatches) {
    const base = held(patch.key);
    if (base && base.hash !== patch.base)
      return {
        error: `patch of ${patch.key}: this node holds ${base.hash.slice(0, 12)}, not ${patch.base.slice(0, 12)}`,
      };
    let entry: ServiceEntry;
    try {
      entry = applyServicePatch(base?.entry, patch);
    } catch (e) {
      return { error: (e as Error).message };
    }
    const hash = vouched ? patch.hash : contentHash(entry);
    if (hash !== patch.hash)
      return { error: `patch of ${patch.key}: made ${hash.slice(0, 12)}, not ${patch.hash.slice(0, 12)}` };
    upsertServices.push(entry);
    services.push(hash);
  }
  const { servicePatches: _patches, ...artifact } = p;
  const delta = { ...p.delta, upsertServices };
  const entryHashes: EntryHashes = { services, nodes: p.delta.upsertNodes.map((f) => contentHash(f)) };
  return { delta: { ...artifact, delta, entryHashes } };
}
