import { summarizeRules } from './nft-chain-summary.ts';
import type { NftObjects } from './nft-objects.ts';
import type { NftReadScope } from './nft-runner.ts';
import { SKELETON_CHAINS, SKELETON_MAPS, SKELETON_SETS } from './nft-skeleton.ts';
import type { NftTransaction } from './nft-transaction.ts';
import type { NftReadBack } from './read-nft-table.ts';

const SKELETON_CHAIN_NAMES = new Set(SKELETON_CHAINS.map((c) => c.name));
const SKELETON_SET_NAMES = new Set([...SKELETON_MAPS, ...SKELETON_SETS].map((s) => s.name));

/**
 * What a verify after `tx` must read back: the chains, per-group sets and maps it wrote, and the
 * individual elements it wrote into the skeleton's maps and sets (which hold an entry per
 * service or endpoint address: tens of thousands at 10k services, too many to dump for one
 * change). Undefined when the whole table must be read: a (re)load, or a skeleton chain touched.
 * Pure.
 */
export function touchedScope(tx: NftTransaction): NftReadScope | undefined {
  if (tx.fullLoad) return undefined; // without queuing its operations (NftTransaction.fullLoad)
  const chains = new Set<string>();
  const sets = new Set<string>();
  const elements = new Map<string, { set: string; key: string }>();
  for (const { object: o } of tx.ops) {
    switch (o.kind) {
      case 'table':
        return undefined;
      case 'chain':
      case 'rule': {
        const name = o.kind === 'chain' ? o.name : o.chain;
        if (SKELETON_CHAIN_NAMES.has(name)) return undefined;
        chains.add(name);
        break;
      }
      case 'set':
      case 'map':
        if (SKELETON_SET_NAMES.has(o.name)) return undefined;
        sets.add(o.name);
        break;
      case 'element':
        if (SKELETON_SET_NAMES.has(o.map)) elements.set(`${o.map} ${o.key}`, { set: o.map, key: o.key });
        else sets.add(o.map);
        break;
    }
  }
  return { chains: [...chains], sets: [...sets], elements: [...elements.values()] };
}

export const scopeIsEmpty = (s: NftReadScope): boolean =>
  s.chains.length === 0 && s.sets.length === 0 && s.elements.length === 0;

/**
 * Where a read-back of `scope` differs from `objects` (what we applied): each touched chain's
 * digest (or its absence when we deleted it), each touched set's existence and owned elements,
 * each touched skeleton element's value (or absence). Empty when they agree. Pure.
 */
export function scopedDrift(rb: NftReadBack, objects: NftObjects, scope: NftReadScope): string[] {
  const out: string[] = [];
  for (const name of scope.chains) {
    const want = objects.chains.get(name);
    const got = rb.inventory.chains.get(name);
    if (want === undefined ? got !== undefined : got !== summarizeRules(want))
      out.push(`chain ${name}: ${got === undefined ? 'missing' : want === undefined ? 'not deleted' : 'differs'}`);
  }
  for (const name of scope.sets) {
    const want = objects.sets.has(name);
    if (rb.inventory.sets.has(name) !== want) {
      out.push(`set ${name}: ${want ? 'missing' : 'not deleted'}`);
      continue;
    }
    const wantElems = objects.elements.get(name);
    if (!want || wantElems === undefined) continue;
    const gotElems = rb.inventory.elements.get(name) ?? new Map<string, string>();
    const same = gotElems.size === wantElems.size && [...wantElems].every(([k, v]) => gotElems.get(k) === v);
    if (!same) out.push(`set ${name}: elements differ`);
  }
  for (const { set, key } of scope.elements) {
    const want = objects.elements.get(set)?.get(key);
    const got = rb.inventory.elements.get(set)?.get(key);
    if (want !== got) out.push(`element ${key} of ${set}: ${got === undefined ? 'missing' : `is ${got || 'present'}`}`);
  }
  return out;
}
