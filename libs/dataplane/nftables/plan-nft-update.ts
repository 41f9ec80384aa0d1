import { NFT_FAMILY } from './nft-names.ts';
import { isEndpointMap, isMapDecl, type NftObjects } from './nft-objects.ts';
import {
  DISPATCH_CHAINS,
  HELPER_CHAINS,
  SKELETON_CHAINS,
  SKELETON_MAPS,
  SKELETON_SETS,
  type SkeletonDamage,
} from './nft-skeleton.ts';
import { NftTransaction, type NftObject } from './nft-transaction.ts';

/**
 * What the kernel holds of our dynamic objects, as far as a diff needs it: each chain's content
 * as a comparable fingerprint (rule texts for what we applied, a digest for a read-back), the
 * names of per-group sets and maps, and the elements of every set or map whose elements we own
 * (NftObjects.elements).
 */
export interface NftInventory {
  readonly chains: ReadonlyMap<string, string>;
  readonly sets: ReadonlySet<string>;
  readonly elements: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

/** Per-group sets and maps carry their kind in their name (nft-objects.ts names them). */
const setKind = (name: string): 'map' | 'set' => (isEndpointMap(name) ? 'map' : 'set');

/** The transaction object declaring a per-group set or map (a `:` in the body makes a map). */
export function setObject(name: string, decl: string): NftObject {
  return isMapDecl(decl) ? { kind: 'map', name, decl } : { kind: 'set', name, decl };
}

/** Fingerprint of a chain we rendered: its rules in order. */
export function chainFingerprint(rules: readonly string[]): string {
  return rules.join('\n');
}

export function inventoryOf(objects: NftObjects): NftInventory {
  return {
    chains: new Map([...objects.chains].map(([n, r]) => [n, chainFingerprint(r)])),
    sets: new Set(objects.sets.keys()),
    elements: objects.elements,
  };
}

/**
 * The incremental transaction from `current` (what the kernel holds) to `desired`: only chains
 * whose content differs are flushed and refilled, only changed map elements are replaced, and
 * nothing else is touched — the table, its other chains and the affinity sets' learned entries
 * stay as they are. `sameChain` decides content equality (text for applied state, a read-back
 * comparison for resync). With `skeleton` (a read-back's damage), the same transaction also
 * repairs the skeleton in place: missing sets, maps and chains are declared first, damaged
 * skeleton chains are refilled last (after what their rules reference exists), so a table from
 * an older release or edited behind our back is mended without a reload, which at 10k services
 * takes several netlink batches during which the node would have no table at all. Pure.
 */
export function planNftUpdate(
  current: NftInventory,
  desired: NftObjects,
  table: string,
  sameChain: (name: string, currentFp: string, desiredRules: readonly string[]) => boolean = (_n, fp, rules) =>
    fp === chainFingerprint(rules),
  skeleton?: SkeletonDamage,
): NftTransaction {
  const tx = new NftTransaction(NFT_FAMILY, table);

  // 0. Skeleton sets, maps and hook-less chains that are missing (dynamic rules jump to the
  // helpers, map elements and dispatch rules need the maps).
  const skeletonChains = new Set(skeleton?.chains);
  for (const s of SKELETON_SETS)
    if (skeleton?.sets.includes(s.name)) {
      tx.add({ kind: 'set', name: s.name, decl: s.decl });
      tx.writes++;
    }
  for (const m of SKELETON_MAPS)
    if (skeleton?.sets.includes(m.name)) {
      tx.add({ kind: 'map', name: m.name, decl: `type ${m.type};` });
      tx.writes++;
    }
  for (const c of SKELETON_CHAINS) if (skeletonChains.has(c.name) && !c.hook) tx.add({ kind: 'chain', name: c.name });

  // 1. New sets and new chains first: rules and elements below may reference them.
  for (const [name, decl] of desired.sets) {
    if (!current.sets.has(name)) {
      tx.add(setObject(name, decl));
      tx.writes++;
    }
  }
  const refill: string[] = [];
  for (const [name, rules] of desired.chains) {
    const fp = current.chains.get(name);
    if (fp === undefined) {
      tx.add({ kind: 'chain', name });
      tx.writes++;
      refill.push(name);
    } else if (!sameChain(name, fp, rules)) {
      tx.flush({ kind: 'chain', name });
      tx.writes++;
      refill.push(name);
    }
  }
  for (const name of refill) {
    for (const rule of desired.chains.get(name)!) {
      tx.add({ kind: 'rule', chain: name, rule });
      tx.writes++;
    }
    tx.touchedChains.push(name);
  }
  // 2. Elements: delete stale or changed keys, then add new values (a changed endpoint is an
  // element replace in its endpoint map). A map that goes away takes its elements with it.
  const adds: { map: string; key: string; value: string }[] = [];
  for (const map of desired.elements.keys()) {
    const cur = current.elements.get(map) ?? new Map<string, string>();
    const want = desired.elements.get(map) ?? new Map<string, string>();
    for (const [key, v] of cur) {
      if (want.get(key) !== v) {
        tx.delete({ kind: 'element', map, key });
        tx.writes++;
      }
    }
    for (const [key, value] of want) {
      if (cur.get(key) !== value) {
        adds.push({ map, key, value });
        tx.writes++;
      }
    }
  }
  for (const { map, key, value } of adds) tx.add({ kind: 'element', map, key, ...(value === '' ? {} : { value }) });
  // 3. Chains and sets no longer wanted: flush all of them before deleting any, since removed
  // chains may still jump to each other (service → endpoint) until flushed.
  const gone = [...current.chains.keys()].filter((n) => !desired.chains.has(n));
  for (const name of gone) tx.flush({ kind: 'chain', name });
  for (const name of gone) {
    tx.delete({ kind: 'chain', name });
    tx.writes++;
  }
  for (const name of current.sets)
    if (!desired.sets.has(name)) {
      tx.delete({ kind: setKind(name), name, decl: '' });
      tx.writes++;
    }
  // 4. Damaged skeleton chains, refilled in declaration order (helpers, dispatch chains, then
  // the base chains that jump to them); a missing base chain is declared with its hook here,
  // once everything it leads to is in place. `add chain` of one that exists changes nothing.
  for (const c of SKELETON_CHAINS) {
    if (!skeletonChains.has(c.name)) continue;
    if (c.hook) tx.add({ kind: 'chain', name: c.name, hook: c.hook });
    tx.flush({ kind: 'chain', name: c.name });
    for (const rule of c.rules) tx.add({ kind: 'rule', chain: c.name, rule });
    tx.writes += 1 + c.rules.length;
  }
  return tx;
}

// Dynamic chains reference each other in one direction (external → service → endpoint, with
// firewall chains standalone); the order only matters for readable `nft -f` text.
const CHAIN_ORDER = ['endpoint-', 'firewall-', 'service-', 'external-'];

function chainRank(name: string): number {
  const i = CHAIN_ORDER.findIndex((p) => name.startsWith(p));
  return i < 0 ? CHAIN_ORDER.length : i;
}

export const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Dynamic chain names in declaration order (endpoints first, then firewall, service, external). */
export function orderedChainNames(objects: NftObjects): string[] {
  // Bucketed by rank, each bucket in code-unit order (Array#sort's default order for strings,
  // without a comparator call per comparison: 10k names at a full load).
  const buckets: string[][] = Array.from({ length: CHAIN_ORDER.length + 1 }, () => []);
  for (const name of objects.chains.keys()) buckets[chainRank(name)]!.push(name);
  return buckets.flatMap((b) => b.sort());
}

/**
 * The whole table from nothing in one transaction: `add table; delete table` makes the delete
 * valid whether or not the table exists, then every object is declared before any rule or
 * element references it (chains, sets, maps, then rules, then elements). Pure. The operations
 * are queued when first read (NftTransaction.deferred): the netlink runner encodes the load from
 * `fullLoad` through emitFullLoad instead, in the same order.
 */
export function planFullLoad(objects: NftObjects, table: string): NftTransaction {
  let size = 3 + HELPER_CHAINS.length + DISPATCH_CHAINS.length + SKELETON_SETS.length + SKELETON_MAPS.length;
  for (const c of [...HELPER_CHAINS, ...DISPATCH_CHAINS]) size += c.rules.length;
  size += objects.sets.size;
  for (const rules of objects.chains.values()) size += 1 + rules.length;
  for (const [name, m] of objects.elements)
    if (objects.sets.has(name) || SKELETON_ELEMENT_SETS.includes(name)) size += m.size;
  const tx = NftTransaction.deferred(NFT_FAMILY, table, size, (t) =>
    emitFullLoad(objects, (verb, object) => (verb === 'add' ? t.add(object) : t.delete(object))),
  );
  tx.fullLoad = objects;
  tx.writes = 1 + objects.sets.size;
  for (const rules of objects.chains.values()) tx.writes += 1 + rules.length;
  for (const m of objects.elements.values()) tx.writes += m.size;
  tx.touchedChains.push(...objects.chains.keys());
  return tx;
}

/** Skeleton sets and maps whose elements a full load adds, after the rules. */
const SKELETON_ELEMENT_SETS: readonly string[] = [
  ...SKELETON_SETS.map((s) => s.name),
  ...SKELETON_MAPS.map((m) => m.name),
];

/**
 * The operations of a full load of `objects`, in order (the one home of that order: planFullLoad
 * queues them, the netlink runner encodes them as they come). Pure.
 */
export function emitFullLoad(objects: NftObjects, emit: (verb: 'add' | 'delete', object: NftObject) => void): void {
  emit('add', { kind: 'table' });
  emit('delete', { kind: 'table' });
  emit('add', { kind: 'table' });
  // Base chains (with hooks) are declared last: a load too large for one netlink batch holds
  // them back so the table stays inert until complete, and `nft list` prints chains in creation
  // order, so every path creates them in this same order.
  const skeleton = [...HELPER_CHAINS, ...DISPATCH_CHAINS];
  for (const c of skeleton) if (!c.hook) emit('add', { kind: 'chain', name: c.name });
  const names = orderedChainNames(objects);
  for (const name of names) emit('add', { kind: 'chain', name });
  for (const c of skeleton) if (c.hook) emit('add', { kind: 'chain', name: c.name, hook: c.hook });
  // Keys in code-unit order (Array#sort's default for strings, no comparator call per
  // comparison: ~120k element keys at 10k services), so the script does not depend on the
  // order the objects were built or patched in.
  const addElements = (name: string) => {
    const elems = objects.elements.get(name);
    if (!elems) return;
    for (const key of [...elems.keys()].sort()) {
      const value = elems.get(key)!;
      emit('add', value === '' ? { kind: 'element', map: name, key } : { kind: 'element', map: name, key, value });
    }
  };
  // Each per-group set's elements right after its declaration: the netlink runner then
  // addresses them by batch id instead of by name (a walk over every set of the table).
  for (const name of [...objects.sets.keys()].sort()) {
    emit('add', setObject(name, objects.sets.get(name)!));
    addElements(name);
  }
  for (const s of SKELETON_SETS) emit('add', { kind: 'set', name: s.name, decl: s.decl });
  for (const m of SKELETON_MAPS) emit('add', { kind: 'map', name: m.name, decl: `type ${m.type};` });
  for (const c of HELPER_CHAINS) for (const rule of c.rules) emit('add', { kind: 'rule', chain: c.name, rule });
  for (const name of names)
    for (const rule of objects.chains.get(name)!) emit('add', { kind: 'rule', chain: name, rule });
  for (const c of DISPATCH_CHAINS) for (const rule of c.rules) emit('add', { kind: 'rule', chain: c.name, rule });
  for (const name of SKELETON_ELEMENT_SETS) addElements(name);
}
