import { parseHostPort, virtualServerKey, type RealServer, type VirtualServer } from '../../model/index.ts';
import { splitDrainingKey } from './graceful-termination.ts';
import type { KernelModel } from './kernel-model.ts';
import { isKeyed, type StateChange } from './state-change.ts';

/**
 * Services with at least this many real servers (in the last verified state or the next) are
 * planned and checked narrowed by an incremental cycle. Below it the whole service costs less than
 * finding its change, and the read-back compares it whole, as it always did.
 */
export const NARROW_MIN_REAL_SERVERS = 64;

/**
 * Real servers by address, then port: membership without building a key string per entry (the
 * narrowing scans a service of thousands of real servers for the few it keeps; an existing
 * address string hashes once and V8 keeps its hash).
 */
export class RealServerSet {
  private readonly byAddress = new Map<string, number[]>();
  private count = 0;

  add(address: string, port: number): void {
    const ports = this.byAddress.get(address);
    if (!ports) this.byAddress.set(address, [port]);
    else if (!ports.includes(port)) ports.push(port);
    else return;
    this.count++;
  }

  has(r: { readonly address: string; readonly port: number }): boolean {
    const ports = this.byAddress.get(r.address);
    return ports !== undefined && ports.includes(r.port);
  }

  get size(): number {
    return this.count;
  }

  /** Each member, by address in the order first added, then port in the order added. */
  forEach(fn: (address: string, port: number) => void): void {
    for (const [address, ports] of this.byAddress) for (const port of ports) fn(address, port);
  }
}

/**
 * The part of a large service an incremental cycle looks at: the real servers that differ between
 * the last verified state and the next (added, removed, weight changed).
 *
 * Why that is enough: after a verified cycle the model (the kernel) holds every real server of the
 * last state with its weight and, besides them, only real servers at weight 0. So a real server
 * outside these keys is held as desired, and planning the whole service would write nothing for
 * it. The ones at weight 0 are drains, and deciding a drain needs the service's live connection
 * counters: one dump of its thousands of destinations, which no change reads, not even one that
 * removes a real server (it was a whole dump per removal, O(service): a rolling update of the
 * service paid it once per endpoint). A removed real server is planned from the model, its
 * counters unknown, so it drains (weight 0, no new connections: graceful-termination.ts) even
 * when it has none; every drain of the service is decided at the next full cycle, which reads the
 * counters (the periodic resync, 60 s by default; kube-proxy checks its drains every minute).
 * test/libs/dataplane/ipvs/narrowed-service.test.ts checks this against planKernelOps on whole
 * services.
 */
export interface NarrowedService {
  /** The next state's service with only the real servers of `keys` (its spec as the next state's). */
  readonly desired: VirtualServer;
  readonly keys: RealServerSet;
}

/**
 * Narrows each service of the change that has a verified previous version, is held by the model
 * and is large. Entries of a service that do not look like real servers leave that service
 * whole, for validation to refuse.
 */
export function narrowChange(
  change: StateChange,
  byKey: ReadonlyMap<string, VirtualServer>,
  model: KernelModel,
): Map<string, NarrowedService> {
  const out = new Map<string, NarrowedService>();
  for (const next of change.virtualServers) {
    if (!isKeyed(next)) continue;
    const key = virtualServerKey(next);
    const prev = byKey.get(key);
    if (!prev || !model.hasVirtualServer(key) || !Array.isArray(next.realServers)) continue;
    if (Math.max(prev.realServers.length, next.realServers.length) < NARROW_MIN_REAL_SERVERS) continue;
    const n = narrowService(prev, next);
    if (n) out.set(key, n);
  }
  return out;
}

/**
 * One service narrowed (see NarrowedService), or undefined when an entry of `next` is not a real
 * server at all (left whole: validation refuses it).
 */
export function narrowService(prev: VirtualServer, next: VirtualServer): NarrowedService | undefined {
  // the same real servers (a change to its spec alone): nothing of them to look at
  if (prev.realServers === next.realServers)
    return { desired: { ...next, realServers: [] }, keys: new RealServerSet() };
  const walked = mergeWalk(prev.realServers, next.realServers);
  // the usual case: the changed entries came out of the walk
  if (walked) return { desired: { ...next, realServers: walked.changed }, keys: walked.keys };
  // (a loop, not every(): every skips the holes of a sparse array)
  for (let k = 0; k < next.realServers.length; k++) if (!isRealServer(next.realServers[k])) return undefined;
  const keys = new RealServerSet();
  changedByAddress(prev.realServers, next.realServers, keys);
  return { desired: { ...next, realServers: next.realServers.filter((r) => keys.has(r)) }, keys };
}

/** Lists seen in the renderer's order (address, then port): a verified state's list is checked once, as the next one. */
const inOrder = new WeakSet<readonly RealServer[]>();

/**
 * One merge walk over the two lists in the renderer's order, nothing allocated per unchanged
 * entry: the real servers that differ (added, removed, reweighted) and the next list's entries
 * among them; undefined when either list is not in that order or `next` holds something else.
 */
export function mergeWalk(
  prev: readonly RealServer[],
  next: readonly RealServer[],
): { keys: RealServerSet; changed: RealServer[] } | undefined {
  if (!inOrder.has(prev) && !sortedByKey(prev)) return undefined;
  const keys = new RealServerSet();
  const changed: RealServer[] = [];
  let i = 0,
    j = 0;
  let last: RealServer | undefined;
  let checked = -1;
  while (i < prev.length || j < next.length) {
    const a = prev[i];
    const b = next[j];
    if (b !== undefined) {
      // next is new: its shape and order are checked once, as the walk reaches each entry
      if (j !== checked) {
        if (!isRealServer(b) || (last !== undefined && compareRealServers(last, b) >= 0)) return undefined;
        last = b;
        checked = j;
      }
    } else if (j < next.length) return undefined; // a hole
    const c = a === undefined ? 1 : b === undefined ? -1 : compareRealServers(a, b);
    if (c < 0) {
      keys.add(a!.address, a!.port);
      i++;
    } else if (c > 0) {
      keys.add(b!.address, b!.port);
      changed.push(b!);
      j++;
    } else {
      if (a!.weight !== b!.weight) {
        keys.add(b!.address, b!.port);
        changed.push(b!);
      }
      i++;
      j++;
    }
  }
  inOrder.add(next);
  return { keys, changed };
}

/** Adds to `out` the real servers that differ between `prev` and `next`, in any order. */
function changedByAddress(prev: readonly RealServer[], next: readonly RealServer[], out: RealServerSet): void {
  const before = new Map<string, Map<number, number>>();
  for (const r of prev) {
    let ports = before.get(r.address);
    if (!ports) before.set(r.address, (ports = new Map()));
    ports.set(r.port, r.weight);
  }
  for (const r of next) {
    const ports = before.get(r.address);
    const w = ports?.get(r.port);
    if (w === undefined) out.add(r.address, r.port);
    else {
      if (w !== r.weight) out.add(r.address, r.port);
      ports!.delete(r.port);
    }
  }
  for (const [address, ports] of before) for (const port of ports.keys()) out.add(address, port);
}

/** The renderer's order; the equal case first, as a walk over an unchanged list meets it most. */
const compareRealServers = (a: { address: string; port: number }, b: { address: string; port: number }) =>
  a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1;

function sortedByKey(rs: readonly RealServer[]): boolean {
  for (let i = 1; i < rs.length; i++) if (compareRealServers(rs[i - 1]!, rs[i]!) >= 0) return false;
  return true;
}

function isRealServer(r: unknown): r is RealServer {
  return (
    !!r &&
    typeof r === 'object' &&
    typeof (r as RealServer).address === 'string' &&
    typeof (r as RealServer).port === 'number' &&
    typeof (r as RealServer).weight === 'number'
  );
}

/**
 * Whether an ownership record's draining key ("vsKey>rsKey") is one the narrowing of its service
 * keeps (then the cycle decides it again), or belongs to a service not narrowed.
 */
export function drainingInSlice(drainingKey: string, narrowed: ReadonlyMap<string, NarrowedService>): boolean {
  const { vsKey, rsKey } = splitDrainingKey(drainingKey);
  const n = narrowed.get(vsKey);
  if (!n) return true;
  const rs = parseHostPort(rsKey);
  return rs !== undefined && n.keys.has(rs);
}
