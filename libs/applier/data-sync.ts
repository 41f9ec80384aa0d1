import {
  contentHash,
  UnknownFieldsNote,
  type ClusterData,
  type DataDelta,
  type NodeFacts,
  type ServiceEntry,
  type VersionArtifact,
} from '../model/index.ts';
import { ClusterDataIndex } from '../planner/index.ts';
import { planFetch } from './fetch-plan.ts';
import { applyDeltaChain, expandPatchedDelta, indexFromCheckpoint, type HeldEntry } from './version-chain.ts';
import type { Fetched, PatchedDeltaArtifact, VersionReader } from '../bus/index.ts';

type Delta = VersionArtifact & { form: 'delta' };

export type SyncResult =
  | {
      readonly ok: true;
      readonly version: number;
      readonly hash: string;
      readonly bytes: number;
      readonly path: 'none' | 'deltas' | 'checkpoint';
      /** Services rebuilt from target notices' patches in this move instead of taken whole. */
      readonly patched: number;
    }
  /** `permanent`: the published content itself is bad (hash mismatch, broken chain): retrying cannot help. */
  | { readonly ok: false; readonly error: string; readonly permanent: boolean };

/**
 * The applier's copy of cluster data and the version it is at. Moves to a target version by
 * deltas when close, else from the newest checkpoint at or before the target; every step is
 * hash-verified, and nothing changes unless the whole move verifies.
 */
export class DataSync {
  private index = new ClusterDataIndex();
  private at = 0;
  /** Deltas carried by target notices (push path), so a node one step behind fetches nothing. */
  private readonly pushed = new Map<number, Delta>();
  /** Versions notices brought as patches (service-patch.ts), rebuilt against this data when applied. */
  private readonly pushedPatches = new Map<number, { patched: PatchedDeltaArtifact; vouched: boolean }>();
  /** Of the pushed deltas, those rebuilt from patches: how many services each rebuilt. */
  private readonly rebuilt = new Map<number, number>();
  /** What moved since the last takeChanges(): touched keys, or everything (new index). */
  private changed: { services: Set<string>; nodes: Set<string> } | 'all' = 'all';

  constructor(
    private readonly reader: Pick<VersionReader, 'delta' | 'checkpoint'>,
    private readonly maxDeltaChain: number,
    /**
     * The entry keys this release does not know, in every version this process moved to (probe15
     * U7): noted from each delta's upserts and each checkpoint's entries, O(change), bounded.
     */
    readonly unknownFields: UnknownFieldsNote = new UnknownFieldsNote(),
    /** Said when a pushed patch does not fit the data held (the version is then fetched instead). */
    private readonly onPatchRefused?: (version: number, reason: string) => void,
  ) {}

  get version(): number {
    return this.at;
  }

  get data(): ClusterDataIndex {
    return this.index;
  }

  /**
   * The net change to `data` since the previous call, as one delta read from the data now held
   * (several versions moved by deltas merge into one), or undefined when the data was replaced
   * (first sync, checkpoint jump) and whatever depends on it must start over. O(change).
   */
  takeChanges(): DataDelta | undefined {
    const c = this.changed;
    this.changed = { services: new Set(), nodes: new Set() };
    if (c === 'all') return undefined;
    const upsertServices: ServiceEntry[] = [];
    const removeServices: string[] = [];
    for (const k of c.services) {
      const e = this.index.service(k);
      if (e) upsertServices.push(e);
      else removeServices.push(k);
    }
    const upsertNodes: NodeFacts[] = [];
    const removeNodes: string[] = [];
    for (const n of c.nodes) {
      const f = this.index.node(n);
      if (f) upsertNodes.push(f);
      else removeNodes.push(n);
    }
    return { upsertServices, removeServices, upsertNodes, removeNodes };
  }

  /**
   * Offers a delta carried by a target notice. Only a bounded window ahead of the data we hold is
   * kept; anything older, duplicate or far ahead is dropped. Nothing here is trusted: a cached
   * delta goes through the same parent-link and hash checks as a fetched one.
   */
  offer(d: Delta): void {
    if (d.version <= this.at || d.version > this.at + this.maxDeltaChain || this.pushed.has(d.version)) return;
    this.pushed.set(d.version, d);
  }

  /**
   * Offers a version a target notice brought as patches: kept like offer()'s deltas, and rebuilt
   * only when the node moves to it from the version before, checked by hashes (expandPatchedDelta;
   * `vouched`: the planner's signature covers it).
   */
  offerPatched(p: PatchedDeltaArtifact, vouched: boolean): void {
    const v = p.version;
    if (v <= this.at || v > this.at + this.maxDeltaChain || this.pushed.has(v) || this.pushedPatches.has(v)) return;
    this.pushedPatches.set(v, { patched: p, vouched });
  }

  /**
   * Whether the data held is the stream's `version` (its delta's or checkpoint's hash header):
   * 'other' after a restored planner log or a versions stream made again gave the number other
   * content (probe13 R1); the data is then dropped, so advanceTo loads the stream's from its
   * checkpoint. An unreadable version leaves the data as it is (the error says why).
   */
  async verifyHeld(version: number): Promise<'same' | 'other' | { readonly error: string }> {
    if (version !== this.at || version === 0) return 'same';
    const head = await this.reader.delta(version);
    const published = head.ok ? head.value.hash : head.checkpointOnly?.hash;
    if (published === undefined) return { error: head.ok ? 'no hash' : head.error };
    if (published === this.index.hash()) return 'same';
    this.index = new ClusterDataIndex();
    this.at = 0;
    this.pushed.clear();
    this.pushedPatches.clear();
    this.rebuilt.clear();
    this.changed = 'all';
    return 'other';
  }

  async advanceTo(target: number): Promise<SyncResult> {
    const r = await this.advance(target);
    for (const v of this.pushed.keys()) if (v <= this.at) this.pushed.delete(v);
    for (const v of this.pushedPatches.keys()) if (v <= this.at) this.pushedPatches.delete(v);
    for (const v of this.rebuilt.keys()) if (!this.pushed.has(v)) this.rebuilt.delete(v);
    return r;
  }

  private async advance(target: number): Promise<SyncResult> {
    const plan = planFetch({ applied: this.at, target, maxDeltaChain: this.maxDeltaChain });
    if (plan.kind === 'none')
      return { ok: true, version: this.at, hash: this.index.hash(), bytes: 0, path: 'none', patched: 0 };
    if (plan.kind === 'deltas') {
      // one step behind with the notice's delta in hand (every event on a healthy node): no fetch to wait for
      const got = this.heldDeltas(plan.from, plan.to) ?? (await this.fetchDeltas(plan.from, plan.to));
      // a missing delta (expired, or never stored) is not fatal: the checkpoint path may still work
      if (!got.ok && got.missing) return this.viaCheckpoint(target);
      if (!got.ok) return { ok: false, error: got.error, permanent: false };
      const r = applyDeltaChain(this.index, this.at, got.value);
      if (!r.ok) {
        // One unappliable delta (a bad pushed copy, or a stored one whose parent content this
        // node never held) must not block the node until it falls maxDeltaChain behind: drop
        // what notices brought and try once from the newest checkpoint, fetched anew.
        this.pushed.clear();
        this.pushedPatches.clear();
        this.rebuilt.clear();
        const again = await this.viaCheckpoint(target);
        return again.ok ? again : { ...again, error: `${r.error}; then from the checkpoint: ${again.error}` };
      }
      this.at = r.version;
      this.noteChanges(got.value);
      this.noteUnknown(got.value);
      const patched = got.value.reduce((n, d) => n + (this.rebuilt.get(d.version) ?? 0), 0);
      return { ok: true, version: r.version, hash: r.hash, bytes: got.bytes, path: 'deltas', patched };
    }
    return this.viaCheckpoint(target);
  }

  private async viaCheckpoint(target: number): Promise<SyncResult> {
    const head = await this.reader.delta(target);
    if (!head.ok && !head.checkpointOnly)
      return { ok: false, error: head.missing ? `version ${target} is not published` : head.error, permanent: false };
    const base = head.ok ? head.baseCheckpoint : target;
    let index = new ClusterDataIndex();
    let bytes = head.ok ? head.bytes : 0;
    let checkpoint: ClusterData | undefined;
    if (base > 0) {
      // the head names the checkpoint's hash when it is the target's own; else the reader looks it up
      const hash = base === target ? (head.ok ? head.value.hash : head.checkpointOnly?.hash) : undefined;
      const cp = await this.reader.checkpoint(base, hash);
      if (!cp.ok) return { ok: false, error: cp.error, permanent: false };
      const built = indexFromCheckpoint(cp.value);
      if ('error' in built) return { ok: false, error: built.error, permanent: true };
      index = built.index;
      bytes += cp.bytes;
      checkpoint = cp.value.data;
    }
    const rest =
      base < target - 1 ? await this.fetchDeltas(base + 1, target - 1) : { ok: true as const, value: [], bytes: 0 };
    if (!rest.ok) return { ok: false, error: rest.error, permanent: false };
    const r = applyDeltaChain(index, base, head.ok && base < target ? [...rest.value, head.value] : []);
    if (!r.ok) return { ok: false, error: r.error, permanent: true };
    this.index = index;
    this.at = r.version;
    this.changed = 'all';
    if (checkpoint) {
      this.unknownFields.note('services', checkpoint.services);
      this.unknownFields.note('nodes', checkpoint.nodes);
    }
    this.noteUnknown(head.ok && base < target ? [...rest.value, head.value] : []);
    return { ok: true, version: r.version, hash: r.hash, bytes: bytes + rest.bytes, path: 'checkpoint', patched: 0 };
  }

  private noteUnknown(deltas: readonly Delta[]): void {
    for (const { delta: d } of deltas) {
      this.unknownFields.note('services', d.upsertServices);
      this.unknownFields.note('nodes', d.upsertNodes);
    }
  }

  private noteChanges(deltas: readonly Delta[]): void {
    const c = this.changed;
    if (c === 'all') return;
    for (const { delta: d } of deltas) {
      for (const k of d.removeServices) c.services.add(k);
      for (const e of d.upsertServices) c.services.add(e.key);
      for (const n of d.removeNodes) c.nodes.add(n);
      for (const f of d.upsertNodes) c.nodes.add(f.name);
    }
  }

  /**
   * Deltas from..to when notices brought every one of them, else undefined. A version brought as
   * patches is rebuilt from the entries as they stand after the versions before it (held data,
   * then the deltas taken so far); one that does not fit is dropped and said, and the caller
   * fetches the stream's delta instead.
   */
  private heldDeltas(from: number, to: number): { ok: true; value: Delta[]; bytes: number } | undefined {
    const value: Delta[] = [];
    // entries the deltas taken so far set (a hash only when one carried it: hashed when asked)
    const since = new Map<string, { entry: ServiceEntry; hash: string | undefined } | undefined>();
    const held = (key: string): HeldEntry | undefined => {
      if (!since.has(key)) {
        const entry = this.index.service(key);
        return entry && { entry, hash: this.index.serviceHash(key)! };
      }
      const e = since.get(key);
      return e && { entry: e.entry, hash: e.hash ?? contentHash(e.entry) };
    };
    for (let v = from; v <= to; v++) {
      let d = this.pushed.get(v);
      const offered = d ? undefined : this.pushedPatches.get(v);
      if (offered) {
        this.pushedPatches.delete(v);
        const r = expandPatchedDelta(offered.patched, held, offered.vouched);
        if ('error' in r) {
          this.onPatchRefused?.(v, r.error);
          return undefined;
        }
        this.pushed.set(v, r.delta); // rebuilt once: a fetch of the versions around it takes it as it is
        this.rebuilt.set(v, offered.patched.servicePatches.length);
        d = r.delta;
      }
      if (!d) return undefined;
      for (const k of d.delta.removeServices) since.set(k, undefined);
      const hashes = d.entryHashes?.services;
      for (const [i, entry] of d.delta.upsertServices.entries()) since.set(entry.key, { entry, hash: hashes?.[i] });
      value.push(d);
    }
    return { ok: true, value, bytes: 0 };
  }

  /** Fetches deltas from..to concurrently (they are independent reads), in order. */
  private async fetchDeltas(
    from: number,
    to: number,
  ): Promise<{ ok: true; value: Delta[]; bytes: number } | { ok: false; missing: boolean; error: string }> {
    const all: Fetched<Delta>[] = await Promise.all(
      Array.from({ length: to - from + 1 }, (_, i) => {
        const hit = this.pushed.get(from + i);
        return hit ? { ok: true as const, value: hit, bytes: 0, baseCheckpoint: 0 } : this.reader.delta(from + i);
      }),
    );
    const bad = all.find((f) => !f.ok);
    if (bad && !bad.ok) return bad;
    const value = all.map((f) => (f as Extract<Fetched<Delta>, { ok: true }>).value);
    return { ok: true, value, bytes: all.reduce((s, f) => s + (f.ok ? f.bytes : 0), 0) };
  }
}
