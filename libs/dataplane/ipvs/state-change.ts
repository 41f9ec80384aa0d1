import { virtualServerKey, type IpsetState, type NodeState, type VirtualServer } from '../../model/index.ts';
import type { NodeStateChange } from '../dataplane.ts';

/**
 * What differs between the last verified NodeState and the next one, found by object identity:
 * the incremental renderer (NodeStateRenderer) shares every unchanged VirtualServer, IpsetState,
 * address list and settings object with the previous state, so an unchanged service costs one
 * pointer comparison and only changed objects are looked at. States are treated as immutable.
 */
export interface StateChange {
  /** Added or modified services (the next state's objects). */
  readonly virtualServers: readonly VirtualServer[];
  /** Keys of services the next state no longer has. */
  readonly removedVirtualServers: readonly string[];
  readonly addedAddresses: readonly string[];
  readonly removedAddresses: readonly string[];
  /** Sets whose entries changed (the next state's objects). */
  readonly ipsets: readonly IpsetState[];
}

/** The previous state with its services by key, kept across applies and moved by each change. */
export interface IndexedState {
  readonly state: NodeState;
  readonly byKey: Map<string, VirtualServer>;
}

export function indexState(state: NodeState): IndexedState {
  return { state, byKey: new Map(state.virtualServers.map((v) => [virtualServerKey(v), v])) };
}

/**
 * The change from `prev` to `next`, or undefined when it is not one an incremental cycle plans
 * (settings or the list of sets differ: the glue, sysctls or set teardown may change; run a full
 * cycle). Changed objects are returned unvalidated: the caller validates exactly those.
 * `hint` (the producer's account of how `next` differs from `hint.previous`) replaces the walk
 * over the services when `hint.previous` is `prev`'s state; see hintedVirtualServers.
 */
export function diffStates(prev: IndexedState, next: NodeState, hint?: NodeStateChange): StateChange | undefined {
  const p = prev.state;
  if (next.settings !== p.settings && JSON.stringify(next.settings) !== JSON.stringify(p.settings)) return undefined;
  if (next.ipsets.length !== p.ipsets.length) return undefined;
  const ipsets: IpsetState[] = [];
  for (let i = 0; i < next.ipsets.length; i++) {
    const a = p.ipsets[i]!,
      b = next.ipsets[i];
    if (b === a) continue;
    if (!b || typeof b !== 'object' || b.name !== a.name || b.type !== a.type || b.family !== a.family)
      return undefined;
    ipsets.push(b);
  }
  return {
    ...((hint && hintedVirtualServers(prev, next, hint)) ?? diffVirtualServers(prev, next.virtualServers)),
    ...diffAddresses(p.boundAddresses, next.boundAddresses),
    ipsets,
  };
}

/** Moves the index to `next` by the change (O(change)). */
export function advanceIndex(prev: IndexedState, next: NodeState, change: StateChange): IndexedState {
  for (const k of change.removedVirtualServers) prev.byKey.delete(k);
  for (const v of change.virtualServers) prev.byKey.set(virtualServerKey(v), v);
  return { state: next, byKey: prev.byKey };
}

/**
 * The services' change as the hint names it, O(change): no walk over the services (right after a
 * load that walk ran interpreted, ~4 ms a change at 10k under emulation). Undefined, and the
 * caller walks, when the hint is not about `prev` (another state was applied since, or a failure
 * dropped it), names a service without a key or a removed one `prev` lacks, or does not add up:
 * `next` must hold `prev`'s services plus the added, minus the removed. Beyond that count the hint
 * is trusted (NodeStateChange: its producer vouches for the rest); the periodic resync, a full
 * cycle, would find and repair what a wrong hint left out.
 */
function hintedVirtualServers(
  prev: IndexedState,
  next: NodeState,
  hint: NodeStateChange,
): Pick<StateChange, 'virtualServers' | 'removedVirtualServers'> | undefined {
  if (hint.previous !== prev.state) return undefined;
  let added = 0;
  const changed: VirtualServer[] = [];
  for (const v of hint.virtualServers) {
    if (!isKeyed(v)) return undefined;
    const old = prev.byKey.get(virtualServerKey(v));
    if (!old) added++;
    if (old !== v) changed.push(v);
  }
  for (const k of hint.removedVirtualServers) if (!prev.byKey.has(k)) return undefined;
  const removed = hint.removedVirtualServers.length;
  if (next.virtualServers.length !== prev.state.virtualServers.length + added - removed) return undefined;
  return { virtualServers: changed, removedVirtualServers: [...hint.removedVirtualServers] };
}

function diffVirtualServers(
  prev: IndexedState,
  next: readonly VirtualServer[],
): Pick<StateChange, 'virtualServers' | 'removedVirtualServers'> {
  const old = prev.state.virtualServers;
  if (next === old) return { virtualServers: [], removedVirtualServers: [] };
  // Common case (endpoints of existing services changed): same services in the same order, so
  // a walk comparing pointers finds the few changed ones.
  if (next.length === old.length) {
    const changed: VirtualServer[] = [];
    const n = next.length;
    let aligned = true;
    // The skip over equal pointers is kept as small as a loop gets: right after a load this
    // walk runs in V8's interpreter for the first changes (bench: ~4 ms a change at 10k under
    // emulation, the largest piece of the dataplane's own time then).
    for (let i = 0; aligned; i++) {
      while (i < n && next[i] === old[i]) i++;
      if (i === n) break;
      const v = next[i]!;
      aligned = isKeyed(v) && virtualServerKey(v) === virtualServerKey(old[i]!);
      changed.push(v);
    }
    if (aligned) return { virtualServers: changed, removedVirtualServers: [] };
  }
  // Services added or removed: one pass over the next state against the index.
  const changed: VirtualServer[] = [];
  const seen = new Set<string>();
  let kept = 0;
  for (const v of next) {
    if (!isKeyed(v)) {
      changed.push(v);
      continue;
    }
    const k = virtualServerKey(v);
    seen.add(k);
    if (prev.byKey.has(k)) kept++;
    if (prev.byKey.get(k) !== v) changed.push(v);
  }
  const removed = kept === prev.byKey.size ? [] : [...prev.byKey.keys()].filter((k) => !seen.has(k));
  return { virtualServers: changed, removedVirtualServers: removed };
}

function diffAddresses(
  old: readonly string[],
  next: readonly string[],
): Pick<StateChange, 'addedAddresses' | 'removedAddresses'> {
  if (next === old) return { addedAddresses: [], removedAddresses: [] };
  return sortedDiff(old, next) ?? setDiff(old, next);
}

/**
 * One merge walk over two lists in code-unit order (the renderer's), nothing allocated per
 * address both hold: a service that comes or goes changes one address of thousands, and two sets
 * of every address were most of such a change's bookkeeping at 10k services. Undefined when
 * either list is out of order (or holds a duplicate): then setDiff.
 */
function sortedDiff(
  old: readonly string[],
  next: readonly string[],
): Pick<StateChange, 'addedAddresses' | 'removedAddresses'> | undefined {
  const addedAddresses: string[] = [],
    removedAddresses: string[] = [];
  let i = 0,
    j = 0;
  while (i < old.length || j < next.length) {
    const a = old[i],
      b = next[j];
    if (i + 1 < old.length && !(old[i]! < old[i + 1]!)) return undefined;
    if (j + 1 < next.length && !(next[j]! < next[j + 1]!)) return undefined;
    if (b === undefined || (a !== undefined && a < b)) {
      removedAddresses.push(a!);
      i++;
    } else if (a === undefined || b < a) {
      addedAddresses.push(b);
      j++;
    } else {
      i++;
      j++;
    }
  }
  return { addedAddresses, removedAddresses };
}

function setDiff(
  old: readonly string[],
  next: readonly string[],
): Pick<StateChange, 'addedAddresses' | 'removedAddresses'> {
  const o = new Set(old),
    n = new Set(next);
  return { addedAddresses: next.filter((a) => !o.has(a)), removedAddresses: old.filter((a) => !n.has(a)) };
}

/** Enough of a service to compute its key; anything else is left for validation to refuse. */
export function isKeyed(v: unknown): v is VirtualServer {
  return !!v && typeof v === 'object' && typeof (v as VirtualServer).address === 'string';
}
