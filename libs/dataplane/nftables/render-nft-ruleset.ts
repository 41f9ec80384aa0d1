import type { NodeState } from '../../model/index.ts';
import { NFT_FAMILY, NFT_TABLE } from './nft-names.ts';
import { renderNftObjects, type NftObjects } from './nft-objects.ts';
import { DISPATCH_CHAINS, HELPER_CHAINS, SKELETON_MAPS, type SkeletonChain } from './nft-skeleton.ts';

export interface RulesetTextOptions {
  /** Table name (tests and benchmarks use their own). */
  readonly table?: string;
}

// Dynamic chains reference each other in one direction (external → service → endpoint, with
// firewall chains standalone); declaring them in that reverse order lets one `nft -f` load them.
const CHAIN_ORDER = ['endpoint-', 'firewall-', 'service-', 'external-'];

function chainRank(name: string): number {
  const i = CHAIN_ORDER.findIndex((p) => name.startsWith(p));
  return i < 0 ? CHAIN_ORDER.length : i;
}

function chainBlock(name: string, rules: readonly string[], hook?: string): string {
  const body = [...(hook ? [hook] : []), ...rules].map((r) => `\t\t${r}\n`).join('');
  return `\tchain ${name} {\n${body}\t}\n`;
}

/** The table as one `nft -f` document (`table inet switchboard { ... }`). */
export function formatNftTable(objects: NftObjects, options: RulesetTextOptions = {}): string {
  const out: string[] = [`table ${NFT_FAMILY} ${options.table ?? NFT_TABLE} {\n`];
  const skel = (c: SkeletonChain) => out.push(chainBlock(c.name, c.rules, c.hook));
  HELPER_CHAINS.forEach(skel);
  for (const [name, decl] of [...objects.sets].sort(([a], [b]) => (a < b ? -1 : 1))) out.push(`\tset ${name} {\n\t\t${decl}\n\t}\n`);
  const names = [...objects.chains.keys()].sort((a, b) => chainRank(a) - chainRank(b) || (a < b ? -1 : a > b ? 1 : 0));
  for (const n of names) out.push(chainBlock(n, objects.chains.get(n)!));
  for (const m of SKELETON_MAPS) {
    const elems = [...(objects.elements.get(m.name) ?? new Map<string, string>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const elemText = elems.length === 0 ? '' : `\t\telements = {\n${elems.map(([k, v]) => `\t\t\t${k} : ${v}`).join(',\n')}\n\t\t}\n`;
    out.push(`\tmap ${m.name} {\n\t\ttype ${m.type};\n${elemText}\t}\n`);
  }
  DISPATCH_CHAINS.forEach(skel);
  out.push('}\n');
  return out.join('');
}

/** What `plan --format nft` prints: the whole table this node must hold, loadable with `nft -f`. */
export function renderNftRuleset(state: NodeState, options: RulesetTextOptions = {}): string {
  return formatNftTable(renderNftObjects(state), options);
}
