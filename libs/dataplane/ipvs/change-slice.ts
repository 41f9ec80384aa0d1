import { byCodeUnit, virtualServerKey, type NodeState, type VirtualServer } from '../../model/index.ts';
import { splitDrainingKey } from './graceful-termination.ts';
import type { KernelModel } from './kernel-model.ts';
import type { ObservedKernel, ObservedVirtualServer } from './observed-kernel.ts';
import { drainingInSlice, type NarrowedService } from './narrowed-service.ts';
import { EMPTY_RECORD, mergeRecords, type OwnershipRecord } from './ownership-record.ts';
import { noteEdited, type ListStep } from './record-list-bytes.ts';
import type { StateChange } from './state-change.ts';

/**
 * The part of the world an incremental cycle plans and verifies: only the objects a change
 * touches, so the planner (planKernelOps, unchanged) and the verifier work in O(change). Each of
 * the three parts holds the same objects, which keeps the planner's decisions exactly those it
 * makes on the whole: a service in the slice is added, edited or drained as in a full cycle;
 * a removed one is deleted when the record says it is ours; nothing outside the slice is seen.
 */
export interface ChangeSlice {
  /** Changed services (their drains decided again with them), added addresses, changed sets. */
  readonly desired: NodeState;
  /** The model's view of the same objects, and of the removed services and addresses. */
  readonly observed: ObservedKernel;
  /** Our ownership of the same objects. */
  readonly record: OwnershipRecord;
}

/** Whether a record list holds a key. */
export interface Membership {
  has(key: string): boolean;
}

/** The record's lists indexed for ownership checks (made again only for a list that changed). */
export interface OwnedIndex {
  readonly record: OwnershipRecord;
  readonly virtualServers: Membership;
  readonly addresses: Membership;
  readonly ipsets: Membership;
}

export function ownedIndex(record: OwnershipRecord, prev?: OwnedIndex): OwnedIndex {
  // A list the previous record shares (the same array: records are never changed in place) keeps
  // its index: a drain that starts or ends changes the record's draining map alone, and building
  // sets of every service and address for it made a removal O(services).
  const keep = <K extends 'virtualServers' | 'addresses' | 'ipsets'>(k: K): Membership =>
    prev && prev.record[k] === record[k] ? prev[k] : membership(record[k]);
  return { record, virtualServers: keep('virtualServers'), addresses: keep('addresses'), ipsets: keep('ipsets') };
}

/**
 * The record with `extra`'s objects and drains added (mergeRecords' union), in O(extra) where
 * `extra` adds nothing to a list: that list is the record's own array. A list that gains an
 * object is copied once, the object put in by binary search (edited).
 */
export function recordWith(owned: OwnedIndex, extra: OwnershipRecord): OwnershipRecord {
  const r = owned.record;
  const add = (have: readonly string[], index: Membership, more: readonly string[]): readonly string[] =>
    edited(
      have,
      more.filter((k) => !index.has(k)),
      [],
    );
  const newDrains = Object.entries(extra.draining).filter(([k, since]) => r.draining[k] !== since);
  return {
    ...r,
    virtualServers: add(r.virtualServers, owned.virtualServers, extra.virtualServers),
    addresses: add(r.addresses, owned.addresses, extra.addresses),
    ipsets: add(r.ipsets, owned.ipsets, extra.ipsets),
    dummyDevice: r.dummyDevice || extra.dummyDevice,
    netfilterChains: Object.entries(extra.netfilterChains).every(([t, cs]) =>
      cs.every((c) => r.netfilterChains[t]?.includes(c)),
    )
      ? r.netfilterChains
      : mergeRecords(r, { ...EMPTY_RECORD, netfilterChains: extra.netfilterChains }).netfilterChains,
    draining: newDrains.length === 0 ? r.draining : { ...r.draining, ...Object.fromEntries(newDrains) },
  };
}

/**
 * Whether two records hold the same: lists by identity first (recordWith and recordAfterChange
 * keep unchanged ones), else element by element (a service that comes is in both the superset
 * saved before a run and the record after it, as two arrays); then the record saved before the
 * run needs no second save.
 */
export function sameRecord(a: OwnershipRecord, b: OwnershipRecord): boolean {
  const same = (x: readonly string[], y: readonly string[]) =>
    x === y || (x.length === y.length && x.every((k, i) => k === y[i]));
  if (
    !same(a.virtualServers, b.virtualServers) ||
    !same(a.addresses, b.addresses) ||
    !same(a.ipsets, b.ipsets) ||
    a.netfilterChains !== b.netfilterChains ||
    a.dummyDevice !== b.dummyDevice
  )
    return false;
  const keys = Object.keys(a.draining);
  return keys.length === Object.keys(b.draining).length && keys.every((k) => a.draining[k] === b.draining[k]);
}

/**
 * `next` is the whole next state. A service `narrowed` names enters the slice with only its
 * narrowed real servers, on both sides (narrowed-service.ts). A service the change leaves alone
 * does not enter it, drains in it included: they are decided again by the next change to that
 * service that removes a real server (a small one's: it reads the service's connection counters
 * then; a large one's never) or by the next full cycle.
 */
export function sliceChange(
  next: NodeState,
  change: StateChange,
  model: KernelModel,
  owned: OwnedIndex,
  narrowed: ReadonlyMap<string, NarrowedService> = new Map(),
): ChangeSlice {
  const removed = new Set(change.removedVirtualServers);
  const wanted = new Map<string, VirtualServer>();
  for (const v of change.virtualServers) wanted.set(virtualServerKey(v), v);
  for (const [k, n] of narrowed) if (wanted.has(k)) wanted.set(k, n.desired);
  const keys = [...wanted.keys(), ...removed];
  const addresses = [...change.addedAddresses, ...change.removedAddresses];
  const setNames = new Set(change.ipsets.map((s) => s.name));
  // (a narrowed service's drains that it does not decide again stay as they are)
  const all = owned.record.draining;
  const draining: Record<string, number> = {};
  const byService = drainsByService(all);
  for (const k of keys)
    for (const dk of byService.get(k) ?? []) if (drainingInSlice(dk, narrowed)) draining[dk] = all[dk]!;
  return {
    desired: {
      ...next,
      virtualServers: [...wanted.values()],
      boundAddresses: change.addedAddresses,
      ipsets: change.ipsets,
    },
    observed: {
      virtualServers: keys
        .map((k) => model.virtualServer(k, narrowed.get(k)?.keys))
        .filter((v): v is ObservedVirtualServer => !!v),
      dummyDevice: model.dummyDevice,
      boundAddresses: addresses.filter((a) => model.hasAddress(a)),
      ipsets: change.ipsets.map((s) => model.ipset(s.name)).filter((s) => !!s),
      netfilter: { tables: {} },
      sysctls: {},
    },
    record: {
      version: 1,
      virtualServers: keys.filter((k) => owned.virtualServers.has(k)),
      addresses: addresses.filter((a) => owned.addresses.has(a)),
      ipsets: [...setNames].filter((n) => owned.ipsets.has(n)),
      dummyDevice: owned.record.dummyDevice,
      netfilterChains: {},
      draining,
    },
  };
}

/** Each draining map's keys by service, made once per map (a map is replaced, never changed, when a drain starts or ends). */
const drainsIndexed = new WeakMap<Readonly<Record<string, number>>, ReadonlyMap<string, readonly string[]>>();

/**
 * The record's drains by service key: a change takes those of its own services, not a walk of
 * every drain (a rollout leaves hundreds pending until the next full cycle; each change walked
 * them all, ~0.15 µs a drain on the host, as much as the rest of a change at 1,000).
 */
function drainsByService(draining: Readonly<Record<string, number>>): ReadonlyMap<string, readonly string[]> {
  const have = drainsIndexed.get(draining);
  if (have) return have;
  const out = new Map<string, string[]>();
  for (const dk of Object.keys(draining)) {
    const { vsKey } = splitDrainingKey(dk);
    const list = out.get(vsKey);
    if (list) list.push(dk);
    else out.set(vsKey, [dk]);
  }
  drainsIndexed.set(draining, out);
  return out;
}

/**
 * The whole record after an incremental cycle whose slice plan ended with `sliceAfter`, or
 * undefined when it is the same as before (the common case: no service, address or drain came
 * or went, and nothing needs saving). Building a new one is O(objects); it happens only then.
 */
export function recordAfterChange(
  owned: OwnedIndex,
  slice: ChangeSlice,
  sliceAfter: OwnershipRecord,
  change: StateChange,
): OwnershipRecord | undefined {
  const r = owned.record;
  const addedVs = sliceAfter.virtualServers.filter((k) => !owned.virtualServers.has(k));
  const removedVs = change.removedVirtualServers.filter((k) => owned.virtualServers.has(k));
  const addedAddr = change.addedAddresses.filter((a) => !owned.addresses.has(a));
  const removedAddr = change.removedAddresses.filter((a) => owned.addresses.has(a));
  const before = slice.record.draining,
    after = sliceAfter.draining;
  const drainingChanged =
    Object.keys(before).length !== Object.keys(after).length ||
    Object.entries(after).some(([k, since]) => before[k] !== since);
  if (addedVs.length + removedVs.length + addedAddr.length + removedAddr.length === 0 && !drainingChanged)
    return undefined;
  const draining = Object.fromEntries(Object.entries(r.draining).filter(([k]) => !(k in before)));
  // (a list nothing came to or went from stays the same array: see ownedIndex)
  return {
    ...r,
    virtualServers: edited(r.virtualServers, addedVs, removedVs),
    addresses: edited(r.addresses, addedAddr, removedAddr),
    draining: { ...draining, ...after },
  };
}

/** Record lists seen in code-unit order without duplicates (each checked once: lists are never changed in place). */
const sortedLists = new WeakSet<readonly string[]>();

/**
 * A record list (code-unit order, as planKernelOps writes it) with `add` put in and `remove`
 * taken out: one copy and a binary search per key, not a sort of the whole list (a service that
 * comes or goes at 10k services); the list itself when both are empty. A list out of order (a
 * record file edited by hand) is rebuilt and sorted instead.
 */
export function edited(list: readonly string[], add: readonly string[], remove: readonly string[]): readonly string[] {
  if (add.length + remove.length === 0) return list;
  if (!isSortedList(list)) {
    const gone = new Set(remove);
    return [...new Set([...list.filter((k) => !gone.has(k)), ...add])].sort(byCodeUnit);
  }
  const out = list.slice();
  const steps: ListStep[] = [];
  for (const k of remove) {
    const i = lowerBound(out, k);
    if (out[i] !== k) continue;
    out.splice(i, 1);
    steps.push({ at: i });
  }
  for (const k of add) {
    const i = lowerBound(out, k);
    if (out[i] === k) continue;
    out.splice(i, 0, k);
    steps.push({ at: i, insert: k });
  }
  sortedLists.add(out);
  noteEdited(out, list, steps); // its bytes for the state file: the list's spliced, not all serialised
  return out;
}

/**
 * Membership in a record list: a binary search where the list is in code-unit order without
 * duplicates (as planKernelOps and edited write it: nothing to build for a list that changed),
 * a set of it otherwise.
 */
function membership(list: readonly string[]): Membership {
  return isSortedList(list) ? { has: (k) => list[lowerBound(list, k)] === k } : new Set(list);
}

function isSortedList(list: readonly string[]): boolean {
  if (sortedLists.has(list)) return true;
  for (let i = 1; i < list.length; i++) if (!(list[i - 1]! < list[i]!)) return false;
  sortedLists.add(list);
  return true;
}

function lowerBound(list: readonly string[], k: string): number {
  let lo = 0,
    hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Whether saving `superset` would add anything to the record (new objects we may create). */
export function extendsRecord(owned: OwnedIndex, superset: OwnershipRecord): boolean {
  return (
    superset.virtualServers.some((k) => !owned.virtualServers.has(k)) ||
    superset.addresses.some((a) => !owned.addresses.has(a)) ||
    superset.ipsets.some((n) => !owned.ipsets.has(n)) ||
    Object.entries(superset.draining).some(([k, since]) => owned.record.draining[k] !== since)
  );
}
