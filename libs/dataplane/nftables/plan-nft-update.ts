import { NFT_FAMILY } from './nft-names.ts';
import type { NftObjects } from './nft-objects.ts';

/**
 * What the kernel holds of our dynamic objects, as far as a diff needs it: each chain's content
 * as a comparable fingerprint (rule texts for what we applied, a rule count plus the rules'
 * JSON for a read-back), set names, and map elements.
 */
export interface NftInventory {
  readonly chains: ReadonlyMap<string, string>;
  readonly sets: ReadonlySet<string>;
  readonly elements: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

/** One atomic `nft -f` script and how many kernel objects it writes. */
export interface NftTransaction {
  readonly script: string;
  readonly writes: number;
  readonly touchedChains: readonly string[];
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
  current: NftInventory, desired: NftObjects, table: string,
  sameChain: (name: string, currentFp: string, desiredRules: readonly string[]) => boolean =
    (_n, fp, rules) => fp === chainFingerprint(rules),
): NftTransaction {
  const t = `${NFT_FAMILY} ${table}`;
  const lines: string[] = [];
  let writes = 0;
  const touched: string[] = [];

  // 1. New sets and new chains first: rules and elements below may reference them.
  for (const [name, decl] of desired.sets) {
    if (!current.sets.has(name)) { lines.push(`add set ${t} ${name} { ${decl} }`); writes++; }
  }
  const refill: string[] = [];
  for (const [name, rules] of desired.chains) {
    const fp = current.chains.get(name);
    if (fp === undefined) { lines.push(`add chain ${t} ${name}`); writes++; refill.push(name); }
    else if (!sameChain(name, fp, rules)) { lines.push(`flush chain ${t} ${name}`); writes++; refill.push(name); }
  }
  for (const name of refill) {
    for (const r of desired.chains.get(name)!) { lines.push(`add rule ${t} ${name} ${r}`); writes++; }
    touched.push(name);
  }
  // 2. Map elements: delete stale or changed keys, then add new values.
  const adds: string[] = [];
  const mapNames = new Set([...current.elements.keys(), ...desired.elements.keys()]);
  for (const map of mapNames) {
    const cur = current.elements.get(map) ?? new Map<string, string>();
    const want = desired.elements.get(map) ?? new Map<string, string>();
    for (const [k, v] of cur) {
      if (want.get(k) !== v) { lines.push(`delete element ${t} ${map} { ${k} }`); writes++; }
    }
    for (const [k, v] of want) {
      if (cur.get(k) !== v) { adds.push(`add element ${t} ${map} { ${k} : ${v} }`); writes++; }
    }
  }
  lines.push(...adds);
  // 3. Chains and sets no longer wanted: flush all of them before deleting any, since removed
  // chains may still jump to each other (service → endpoint) until flushed.
  const gone = [...current.chains.keys()].filter((n) => !desired.chains.has(n));
  for (const n of gone) lines.push(`flush chain ${t} ${n}`);
  for (const n of gone) { lines.push(`delete chain ${t} ${n}`); writes++; }
  for (const s of current.sets) if (!desired.sets.has(s)) { lines.push(`delete set ${t} ${s}`); writes++; }
  return { script: lines.length === 0 ? '' : lines.join('\n') + '\n', writes, touchedChains: touched };
}
