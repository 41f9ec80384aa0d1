import type { NodeState } from '../../model/index.ts';
import { NFT_FAMILY, NFT_TABLE } from './nft-names.ts';
import { isMapDecl, renderNftObjects, type NftObjects } from './nft-objects.ts';
import { DISPATCH_CHAINS, HELPER_CHAINS, SKELETON_MAPS, SKELETON_SETS, type SkeletonChain } from './nft-skeleton.ts';
import { byCodeUnits, orderedChainNames } from './plan-nft-update.ts';

export interface RulesetTextOptions {
  /** Table name (tests and benchmarks use their own). */
  readonly table?: string;
}

function chainBlock(name: string, rules: readonly string[], hook?: string): string {
  const body = [...(hook ? [hook] : []), ...rules].map((r) => `\t\t${r}\n`).join('');
  return `\tchain ${name} {\n${body}\t}\n`;
}

/** `elements = { … }` of a set (values '') or map, in key order; '' when it has none. */
function elementsBlock(elements: ReadonlyMap<string, string> | undefined): string {
  const elems = [...(elements ?? new Map<string, string>())].sort(([a], [b]) => byCodeUnits(a, b));
  if (elems.length === 0) return '';
  return `\t\telements = {\n${elems.map(([k, v]) => `\t\t\t${v === '' ? k : `${k} : ${v}`}`).join(',\n')}\n\t\t}\n`;
}

/** The table as one `nft -f` document (`table inet switchboard { ... }`). */
export function formatNftTable(objects: NftObjects, options: RulesetTextOptions = {}): string {
  const out: string[] = [`table ${NFT_FAMILY} ${options.table ?? NFT_TABLE} {\n`];
  const skel = (c: SkeletonChain) => out.push(chainBlock(c.name, c.rules, c.hook));
  HELPER_CHAINS.forEach(skel);
  for (const [name, decl] of [...objects.sets].sort(([a], [b]) => byCodeUnits(a, b)))
    out.push(
      `\t${isMapDecl(decl) ? 'map' : 'set'} ${name} {\n\t\t${decl}\n${elementsBlock(objects.elements.get(name))}\t}\n`,
    );
  for (const s of SKELETON_SETS)
    out.push(`\tset ${s.name} {\n\t\t${s.decl}\n${elementsBlock(objects.elements.get(s.name))}\t}\n`);
  for (const n of orderedChainNames(objects)) out.push(chainBlock(n, objects.chains.get(n)!));
  for (const m of SKELETON_MAPS)
    out.push(`\tmap ${m.name} {\n\t\ttype ${m.type};\n${elementsBlock(objects.elements.get(m.name))}\t}\n`);
  DISPATCH_CHAINS.forEach(skel);
  out.push('}\n');
  return out.join('');
}

/** What `plan --format nft` prints: the whole table this node must hold, loadable with `nft -f`. */
export function renderNftRuleset(state: NodeState, options: RulesetTextOptions = {}): string {
  return formatNftTable(renderNftObjects(state), options);
}
