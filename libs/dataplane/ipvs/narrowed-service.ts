import { byCodeUnit, virtualServerKey, type RealServer, type VirtualServer } from '../../model/index.ts';
import type { KernelModel } from './kernel-model.ts';
import type { StateChange } from './state-change.ts';

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
}

/**
 * The part of a large service an incremental cycle looks at: the real servers that differ between
 * the last verified state and the next (added, removed, weight changed) and those the kernel holds
 * at weight 0 (draining: a drain starts by setting weight 0, and each cycle decides again).
 *
 * Why that is enough: after a verified cycle the model (the kernel) holds every real server of the
 * last state with its weight and, besides them, only real servers at weight 0. So a real server
 * outside these keys is held as desired, and planning the whole service would write nothing for
 * it: planning and verifying only the keys gives the same writes and drains (test/libs/dataplane/
 * ipvs/narrowed-service.test.ts checks that against planKernelOps on whole services).
 */
export interface NarrowedService {
  /** The next state's service with only the real servers of `keys` (its spec as the next state's). */
  readonly desired: VirtualServer;
  readonly keys: RealServerSet;
}

/**
 * Narrows each service of the change, and each unchanged one with real servers draining (the
 * slice carries those too), that has a verified previous version, is held by the model and is
 * large. `draining`: the ownership record's draining keys ("vsKey>rsKey"). Entries of a service
 * that do not look like real servers leave that service whole, for validation to refuse.
 */
export function narrowChange(
  change: StateChange,
  byKey: ReadonlyMap<string, VirtualServer>,
  model: KernelModel,
  draining: Readonly<Record<string, number>>,
): Map<string, NarrowedService> {
  const out = new Map<string, NarrowedService>();
  const consider = (key: string, next: VirtualServer) => {
    const prev = byKey.get(key);
    const held = model.realServers(key);
    if (!prev || !held || !Array.isArray(next.realServers)) return;
    if (Math.max(prev.realServers.length, next.realServers.length) < NARROW_MIN_REAL_SERVERS) return;
    const n = narrowService(prev, next, held);
    if (n) out.set(key, n);
  };
  for (const v of change.virtualServers) if (isKeyed(v)) consider(virtualServerKey(v), v);
  for (const dk of Object.keys(draining)) {
    const k = dk.slice(0, dk.indexOf('>'));
    const v = byKey.get(k);
    if (v && !out.has(k)) consider(k, v);
  }
  return out;
}

/**
 * One service narrowed (see NarrowedService), or undefined when an entry of `next` is not a real
 * server at all (left whole: validation refuses it).
 */
export function narrowService(
  prev: VirtualServer,
  next: VirtualServer,
  held: readonly RealServer[],
): NarrowedService | undefined {
  const keys = new RealServerSet();
  if (!changedRealServers(prev.realServers, next.realServers, keys)) return undefined;
  for (const r of held) if (r.weight === 0) keys.add(r.address, r.port);
  return { desired: { ...next, realServers: next.realServers.filter((r) => keys.has(r)) }, keys };
}

/** Adds to `out` the real servers that differ between `prev` and `next`; false when `next` has a malformed entry. */
function changedRealServers(prev: readonly RealServer[], next: readonly RealServer[], out: RealServerSet): boolean {
  if (prev === next) return true;
  if (!next.every(isRealServer)) return false;
  if (sortedByKey(prev) && sortedByKey(next)) {
    // the renderer's order (address, then port): one merge walk, nothing allocated
    let i = 0,
      j = 0;
    while (i < prev.length || j < next.length) {
      const a = prev[i],
        b = next[j];
      const c = !a ? 1 : !b ? -1 : compareRealServers(a, b);
      if (c < 0) {
        out.add(a!.address, a!.port);
        i++;
      } else if (c > 0) {
        out.add(b!.address, b!.port);
        j++;
      } else {
        if (a!.weight !== b!.weight) out.add(b!.address, b!.port);
        i++;
        j++;
      }
    }
    return true;
  }
  // any other order: by address, then port
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
  return true;
}

const compareRealServers = (a: RealServer, b: RealServer) => byCodeUnit(a.address, b.address) || a.port - b.port;

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

function isKeyed(v: unknown): v is VirtualServer {
  return !!v && typeof v === 'object' && typeof (v as VirtualServer).address === 'string';
}
