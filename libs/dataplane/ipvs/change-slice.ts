import { byCodeUnit, virtualServerKey, type NodeState, type VirtualServer } from '../../model/index.ts';
import { splitDrainingKey } from './graceful-termination.ts';
import type { KernelModel } from './kernel-model.ts';
import type { ObservedKernel, ObservedVirtualServer } from './observed-kernel.ts';
import { drainingInSlice, type NarrowedService } from './narrowed-service.ts';
import type { OwnershipRecord } from './ownership-record.ts';
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

/** The record's keys as sets, for O(1) ownership checks (rebuilt only when the record changes). */
export interface OwnedIndex {
  readonly record: OwnershipRecord;
  readonly virtualServers: ReadonlySet<string>;
  readonly addresses: ReadonlySet<string>;
  readonly ipsets: ReadonlySet<string>;
}

export function ownedIndex(record: OwnershipRecord): OwnedIndex {
  return {
    record,
    virtualServers: new Set(record.virtualServers),
    addresses: new Set(record.addresses),
    ipsets: new Set(record.ipsets),
  };
}

/**
 * `next` is the whole next state. A service `narrowed` names enters the slice with only its
 * narrowed real servers, on both sides (narrowed-service.ts). A service the change leaves alone
 * does not enter it, drains in it included: they are decided again by the next change to that
 * service (a large one's: one that removes a real server, which reads its connection counters
 * anyway) or by the next full cycle.
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
  const inSlice = (drainingKey: string) => {
    const { vsKey } = splitDrainingKey(drainingKey);
    return wanted.has(vsKey) || removed.has(vsKey);
  };
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
      // (a narrowed service's drains that it does not decide again stay as they are)
      draining: Object.fromEntries(
        Object.entries(owned.record.draining).filter(([dk]) => inSlice(dk) && drainingInSlice(dk, narrowed)),
      ),
    },
  };
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
  const gone = new Set(removedVs),
    goneAddr = new Set(removedAddr);
  const draining = Object.fromEntries(Object.entries(r.draining).filter(([k]) => !(k in before)));
  return {
    ...r,
    virtualServers: [...r.virtualServers.filter((k) => !gone.has(k)), ...addedVs].sort(byCodeUnit),
    addresses: [...r.addresses.filter((a) => !goneAddr.has(a)), ...addedAddr].sort(byCodeUnit),
    draining: { ...draining, ...after },
  };
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
