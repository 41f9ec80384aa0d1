import type { NftTableChanges } from './nft-change-log.ts';
import type { NftObjects } from './nft-objects.ts';
import type { NftReadScope } from './nft-runner.ts';
import { SKELETON_MAPS, SKELETON_SETS } from './nft-skeleton.ts';
import type { NftInventory } from './plan-nft-update.ts';
import type { NftReadBack } from './read-nft-table.ts';

const SKELETON_SET_NAMES: ReadonlySet<string> = new Set([...SKELETON_MAPS, ...SKELETON_SETS].map((s) => s.name));

// A resync after the ruleset generation moved, when nf_tables' notifications named what the
// commits since the last known generation changed in our table (NftChangeLog): it reads back
// only those objects and diffs them with what we applied, narrowed to the same objects, so
// planNftUpdate repairs exactly them. Pure.

/** The read scope of what the notifications named. */
export function changesScope(c: NftTableChanges): NftReadScope {
  return { chains: [...c.chains], sets: [...c.sets], elements: c.elements };
}

/**
 * `objects` narrowed to `scope`: the scope's chains and per-group sets that we want (absent
 * ones are to be deleted), the whole elements of the scope's sets, and of a skeleton set only
 * the scope's keys (with an empty map when we want none of them, so that planNftUpdate deletes
 * what the kernel holds).
 */
export function narrowToScope(objects: NftObjects, scope: NftReadScope): NftObjects {
  const chains = new Map<string, readonly string[]>();
  for (const name of scope.chains) {
    const rules = objects.chains.get(name);
    if (rules) chains.set(name, rules);
  }
  const sets = new Map<string, string>();
  const elements = new Map<string, Map<string, string>>();
  for (const name of scope.sets) {
    const decl = objects.sets.get(name);
    if (decl !== undefined) sets.set(name, decl);
    const want = objects.elements.get(name);
    if (want) elements.set(name, new Map(want));
  }
  for (const { set, key } of scope.elements) {
    let m = elements.get(set);
    if (!m) elements.set(set, (m = new Map()));
    const v = objects.elements.get(set)?.get(key);
    if (v !== undefined) m.set(key, v);
  }
  return { chains, sets, elements, shared: new Map() };
}

/**
 * A scoped read-back as the inventory planNftUpdate diffs from: the skeleton's sets are not
 * per-group sets (a scoped read may list one whose elements it read; they are never deleted).
 */
export function scopedInventory(rb: NftReadBack): NftInventory {
  return {
    chains: rb.inventory.chains,
    sets: new Set([...rb.inventory.sets].filter((s) => !SKELETON_SET_NAMES.has(s))),
    elements: rb.inventory.elements,
  };
}
