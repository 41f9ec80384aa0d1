import { NFT_FAMILY } from './nft-names.ts';
import type { NftObjects } from './nft-objects.ts';
import { DISPATCH_CHAINS, HELPER_CHAINS, SKELETON_MAPS } from './nft-skeleton.ts';
import { NftTransaction } from './nft-transaction.ts';

/**
 * What the kernel holds of our dynamic objects, as far as a diff needs it: each chain's content
 * as a comparable fingerprint (rule texts for what we applied, a digest for a read-back), set
 * names, and map elements.
 */
export interface NftInventory {
  readonly chains: ReadonlyMap<string, string>;
  readonly sets: ReadonlySet<string>;
  readonly elements: ReadonlyMap<string, ReadonlyMap<string, string>>;
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
 * comparison for resync). Pure.
 */
export function planNftUpdate(
  current: NftInventory,
  desired: NftObjects,
  table: string,
  sameChain: (name: string, currentFp: string, desiredRules: readonly string[]) => boolean = (_n, fp, rules) =>
    fp === chainFingerprint(rules),
): NftTransaction {
  const tx = new NftTransaction(NFT_FAMILY, table);

  // 1. New sets and new chains first: rules and elements below may reference them.
  for (const [name, decl] of desired.sets) {
    if (!current.sets.has(name)) {
      tx.add({ kind: 'set', name, decl });
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
  // 2. Map elements: delete stale or changed keys, then add new values.
  const adds: { map: string; key: string; value: string }[] = [];
  const mapNames = new Set([...current.elements.keys(), ...desired.elements.keys()]);
  for (const map of mapNames) {
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
  for (const e of adds) tx.add({ kind: 'element', ...e });
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
      tx.delete({ kind: 'set', name, decl: '' });
      tx.writes++;
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
  return [...objects.chains.keys()].sort((a, b) => chainRank(a) - chainRank(b) || byCodeUnits(a, b));
}

/**
 * The whole table from nothing in one transaction: `add table; delete table` makes the delete
 * valid whether or not the table exists, then every object is declared before any rule or
 * element references it (chains, sets, maps, then rules, then elements). Pure.
 */
export function planFullLoad(objects: NftObjects, table: string): NftTransaction {
  const tx = new NftTransaction(NFT_FAMILY, table);
  tx.add({ kind: 'table' }).delete({ kind: 'table' }).add({ kind: 'table' });
  // Base chains (with hooks) are declared last: a load too large for one netlink batch holds
  // them back so the table stays inert until complete, and `nft list` prints chains in creation
  // order, so every path creates them in this same order.
  const skeleton = [...HELPER_CHAINS, ...DISPATCH_CHAINS];
  for (const c of skeleton) if (!c.hook) tx.add({ kind: 'chain', name: c.name });
  const names = orderedChainNames(objects);
  for (const name of names) tx.add({ kind: 'chain', name });
  for (const c of skeleton) if (c.hook) tx.add({ kind: 'chain', name: c.name, hook: c.hook });
  for (const [name, decl] of [...objects.sets].sort(([a], [b]) => byCodeUnits(a, b)))
    tx.add({ kind: 'set', name, decl });
  for (const m of SKELETON_MAPS) tx.add({ kind: 'map', name: m.name, type: m.type });
  for (const c of HELPER_CHAINS) for (const rule of c.rules) tx.add({ kind: 'rule', chain: c.name, rule });
  for (const name of names) for (const rule of objects.chains.get(name)!) tx.add({ kind: 'rule', chain: name, rule });
  for (const c of DISPATCH_CHAINS) for (const rule of c.rules) tx.add({ kind: 'rule', chain: c.name, rule });
  for (const m of SKELETON_MAPS) {
    const elems = [...(objects.elements.get(m.name) ?? new Map<string, string>())].sort(([a], [b]) =>
      byCodeUnits(a, b),
    );
    for (const [key, value] of elems) tx.add({ kind: 'element', map: m.name, key, value });
  }
  tx.writes = 1 + objects.sets.size;
  for (const rules of objects.chains.values()) tx.writes += 1 + rules.length;
  for (const m of objects.elements.values()) tx.writes += m.size;
  tx.touchedChains.push(...objects.chains.keys());
  return tx;
}
