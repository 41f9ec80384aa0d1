import { virtualServerKey, type NodeState, type VirtualServer } from '../../model/index.ts';
import { groupKey } from './nft-objects.ts';

/** The part of two states that differs: every virtual server of the groups a change touches. */
export interface StateSlice {
  /** The touched groups' members in the previous state (what the kernel holds for them). */
  readonly prev: NodeState;
  /** The touched groups' members in the next state. */
  readonly next: NodeState;
}

/**
 * The groups (nft-objects.ts's groupKey: chains and elements are rendered per group and never
 * shared between groups) that differ between `prev` and `next`, found by object identity: the
 * incremental renderer hands over unchanged VirtualServer objects as they were, so an unchanged
 * service costs a pointer comparison. States are treated as immutable. Undefined when the change
 * is not one to slice (other settings, which every group's rules depend on): render it all.
 */
export function sliceChange(prev: NodeState, next: NodeState): StateSlice | undefined {
  if (next.settings !== prev.settings && JSON.stringify(next.settings) !== JSON.stringify(prev.settings))
    return undefined;
  const touched = new Set<string>();
  // A group's members share its service port: the walks below look that (existing) string up
  // first, so they build no key for the services of other ports (all but a few of a large state).
  const ports = new Set<string>();
  const touch = (v: VirtualServer) => {
    touched.add(groupKey(v));
    ports.add(v.servicePort);
  };
  const a = prev.virtualServers;
  const b = next.virtualServers;
  if (a !== b) {
    let aligned = a.length === b.length;
    for (let i = 0; i < b.length && aligned; i++) {
      const x = a[i]!;
      const y = b[i]!;
      if (x === y) continue;
      // Same service, new object (its endpoints changed): both versions' groups are touched.
      if (virtualServerKey(x) !== virtualServerKey(y)) aligned = false;
      else {
        touch(x);
        touch(y);
      }
    }
    if (!aligned) {
      // Services added or removed: compare by key, between the runs both lists start and end with
      // (the same objects, in the same order: every service but the few around the ones added or
      // removed). Keys are unique in a state, so no key of those runs is between them on the other
      // side. Keying every service made a service added O(services): ~10 ms at 10k on the host.
      touched.clear();
      ports.clear();
      let lo = 0;
      while (lo < a.length && lo < b.length && a[lo] === b[lo]) lo++;
      let endA = a.length,
        endB = b.length;
      while (endA > lo && endB > lo && a[endA - 1] === b[endB - 1]) {
        endA--;
        endB--;
      }
      const before = new Map<string, VirtualServer>();
      for (let i = lo; i < endA; i++) before.set(virtualServerKey(a[i]!), a[i]!);
      for (let j = lo; j < endB; j++) {
        const v = b[j]!;
        const k = virtualServerKey(v);
        const old = before.get(k);
        before.delete(k);
        if (old === v) continue;
        touch(v);
        if (old) touch(old);
      }
      for (const gone of before.values()) touch(gone);
    }
  }
  const members = (vs: readonly VirtualServer[]) =>
    touched.size === 0 ? [] : vs.filter((v) => ports.has(v.servicePort) && touched.has(groupKey(v)));
  return {
    prev: { ...prev, virtualServers: members(a) },
    next: { ...next, virtualServers: members(b) },
  };
}
