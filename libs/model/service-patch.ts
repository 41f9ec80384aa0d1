import type { EndpointEntry, ServiceEntry, ServicePortEntry } from './cluster-data.ts';
import { byCodeUnit } from './kernel-model.ts';

/**
 * A service entry told as its change from the entry before it (issue 15, "bytes per event follow
 * the service"): one endpoint of a 5,000-endpoint service moving sent the whole entry, ~631 kB, to
 * every node for every event. A patch carries the entry without its endpoints (`head`) and, per
 * port, the endpoints removed and added or changed against a port of the base entry. It rides
 * only on target notices, beside the stream's full delta, which stays the one truth: a node
 * rebuilds the entry from the one it holds, and keeps the result only if it hashes to `hash`
 * (and the version to the version's hash); anything else and it fetches the delta instead.
 */
export interface ServicePatch {
  readonly key: string;
  /** contentHash of the entry the patch applies to (the node's must be this one). */
  readonly base: string;
  /** contentHash of the entry the patch makes. */
  readonly hash: string;
  /** The new entry with every port's endpoints empty; ports in the new entry's order. */
  readonly head: ServiceEntry;
  /** One per port of `head`, in the same order. */
  readonly ports: readonly EndpointPatch[];
}

export interface EndpointPatch {
  /** The index of the base port whose endpoints this one starts from; -1: none (a new port). */
  readonly from: number;
  /** ip:port of base endpoints that are gone. */
  readonly remove: readonly (readonly [ip: string, port: number])[];
  /** Endpoints added or changed (any field), sorted as entries keep them. */
  readonly upsert: readonly EndpointEntry[];
}

/** Services with fewer endpoints than this always travel whole: their entry is already small. */
export const PATCH_MIN_ENDPOINTS = 128;
/**
 * A patch is made only when its size, in endpoints, is at most this share of the new entry's
 * endpoint count: each added or changed endpoint counts 1, each removed one 1/4 (a removal is its
 * address, about a quarter of an endpoint's bytes). A rolling update's step that replaces a
 * quarter of the pods (Kubernetes' default maxSurge and maxUnavailable) counts ~0.31 and is patched.
 */
export const PATCH_MAX_SHARE = 0.5;

/** The order entries keep their endpoints in (libs/planner/build-service-entry.ts). */
export function byEndpointAddress(
  a: Pick<EndpointEntry, 'ip' | 'port'>,
  b: Pick<EndpointEntry, 'ip' | 'port'>,
): number {
  return byCodeUnit(a.ip, b.ip) || a.port - b.port;
}

export function endpointCount(e: ServiceEntry): number {
  let n = 0;
  for (const p of e.ports) n += p.endpoints.length;
  return n;
}

/**
 * The patch from `base` to `next` (same key), or undefined when `next` is small or the change is
 * not (then the whole entry is about as cheap). O(endpoints). `baseHash`, `nextHash`: the entries'
 * content hashes, which the caller holds already. `limits`: the two thresholds above.
 */
export function diffServiceEntry(
  base: ServiceEntry,
  next: ServiceEntry,
  baseHash: string,
  nextHash: string,
  limits = { minEndpoints: PATCH_MIN_ENDPOINTS, maxShare: PATCH_MAX_SHARE },
): ServicePatch | undefined {
  const total = endpointCount(next);
  if (base.key !== next.key || total < limits.minEndpoints) return undefined;
  const budget = total * limits.maxShare;
  let size = 0;
  const ports: EndpointPatch[] = [];
  for (const p of next.ports) {
    const from = base.ports.findIndex((b) => b.name === p.name && b.protocol === p.protocol);
    const before = from >= 0 ? base.ports[from]!.endpoints : [];
    const after = p.endpoints;
    const upsert: EndpointEntry[] = [];
    const remove: [string, number][] = [];
    // both lists are in entry order: one walk, no lookups (a base out of order fails the check below)
    let i = 0;
    let j = 0;
    while (i < before.length || j < after.length) {
      const c = i >= before.length ? 1 : j >= after.length ? -1 : byEndpointAddress(before[i]!, after[j]!);
      if (c < 0) {
        remove.push([before[i]!.ip, before[i]!.port]);
        i++;
      } else if (c > 0) {
        upsert.push(after[j++]!);
      } else {
        if (before[i] !== after[j] && !sameFlat(before[i]!, after[j]!)) upsert.push(after[j]!);
        i++;
        j++;
      }
      if (size + upsert.length + remove.length / 4 > budget) return undefined;
    }
    size += upsert.length + remove.length / 4;
    ports.push({ from, remove, upsert });
  }
  const patch = {
    key: next.key,
    base: baseHash,
    hash: nextHash,
    head: { ...next, ports: next.ports.map((p) => ({ ...p, endpoints: [] })) },
    ports,
  };
  // Checked once here, so that a node that has the patch signed may take `hash` for the entry it
  // rebuilds instead of hashing it (O(service) on every node for every event): endpoint by endpoint,
  // cheaper than hashing. A base out of entry order (never the planner's) would fail it.
  return rebuilds(base, patch, next) ? patch : undefined;
}

function rebuilds(base: ServiceEntry, patch: ServicePatch, next: ServiceEntry): boolean {
  let made: ServiceEntry;
  try {
    made = applyServicePatch(base, patch);
  } catch {
    return false;
  }
  return made.ports.every((p, i) => {
    const want = next.ports[i]!.endpoints;
    return p.endpoints.length === want.length && p.endpoints.every((e, k) => e === want[k] || sameFlat(e, want[k]!));
  });
}

/**
 * The entry `patch` makes from `base`. Throws one line naming what does not fit (no base, a port
 * out of range, a removal of an endpoint the base lacks, an upsert listed twice); a base other
 * than the planner's is not always caught here, which is why the caller checks the result's hash.
 * O(endpoints): the base's endpoints are sorted already and merged with the sorted upserts.
 */
export function applyServicePatch(base: ServiceEntry | undefined, patch: ServicePatch): ServiceEntry {
  const what = `patch of ${patch.key}`;
  if (!base) throw new Error(`${what}: this node holds no entry to patch`);
  if (patch.head.key !== patch.key) throw new Error(`${what}: its entry is ${patch.head.key}`);
  if (patch.head.ports.length !== patch.ports.length)
    throw new Error(`${what}: ${patch.ports.length} port patches for ${patch.head.ports.length} ports`);
  const ports: ServicePortEntry[] = patch.head.ports.map((head, i) => {
    const p = patch.ports[i]!;
    if (head.endpoints.length !== 0) throw new Error(`${what}: port ${i} of its entry lists endpoints`);
    if (p.from < -1 || p.from >= base.ports.length || !Number.isInteger(p.from))
      throw new Error(`${what}: port ${i} starts from port ${p.from} of ${base.ports.length}`);
    const before = p.from === -1 ? [] : base.ports[p.from]!.endpoints;
    return { ...head, endpoints: mergeEndpoints(before, p, `${what}: port ${i}`) };
  });
  return { ...patch.head, ports };
}

function mergeEndpoints(before: readonly EndpointEntry[], p: EndpointPatch, what: string): EndpointEntry[] {
  const upsert = [...p.upsert].sort(byEndpointAddress);
  for (let i = 1; i < upsert.length; i++)
    if (byEndpointAddress(upsert[i - 1]!, upsert[i]!) === 0)
      throw new Error(`${what}: endpoint ${addressOf(upsert[i]!)} is upserted twice`);
  const remove = p.remove.map(([ip, port]) => ({ ip, port })).sort(byEndpointAddress);
  // One walk over the three sorted lists: a removed endpoint is dropped, an upserted one takes
  // its base copy's place (or its own, when new), every other base endpoint is kept as it is.
  const out: EndpointEntry[] = [];
  let lacking = 0;
  let u = 0;
  let r = 0;
  for (const e of before) {
    while (u < upsert.length && byEndpointAddress(upsert[u]!, e) < 0) out.push(upsert[u++]!);
    while (r < remove.length && byEndpointAddress(remove[r]!, e) < 0) {
      lacking++;
      r++;
    }
    const removed = r < remove.length && byEndpointAddress(remove[r]!, e) === 0;
    if (removed) r++;
    if (u < upsert.length && byEndpointAddress(upsert[u]!, e) === 0) out.push(upsert[u++]!);
    else if (!removed) out.push(e);
  }
  while (u < upsert.length) out.push(upsert[u++]!);
  lacking += remove.length - r;
  if (lacking > 0) throw new Error(`${what}: removes ${lacking} endpoints its base lacks`);
  return out;
}

function addressOf(e: Pick<EndpointEntry, 'ip' | 'port'>): string {
  return `${e.ip}|${e.port}`;
}

/**
 * Equality of two endpoint entries: the same keys with equal values, where a value is a scalar or
 * an array of scalars (hint lists). Any field this release does not know counts too.
 */
function sameFlat(a: EndpointEntry, b: EndpointEntry): boolean {
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  let keys = 0;
  for (const k in x) {
    keys++;
    const u = x[k];
    const v = y[k];
    if (u === v) continue;
    if (!Array.isArray(u) || !Array.isArray(v) || u.length !== v.length) return false;
    for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return false;
  }
  for (const _ in y) keys--;
  return keys === 0;
}
