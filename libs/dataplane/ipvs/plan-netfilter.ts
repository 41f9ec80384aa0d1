import type { IpFamily } from '../../model/index.ts';
import { splitTableKey, type NetfilterGlue } from './netfilter-glue.ts';
import type { NetfilterObservation } from './observed-kernel.ts';

/**
 * The one `iptables-restore --noflush` text (`ip6tables-restore` for IPv6) that turns the
 * observed glue of `family` into `desired` (or, with desired undefined, removes our chains), or
 * undefined when nothing differs. Tables whose chains already match are left out entirely, so a
 * no-op sync writes nothing. Tables are named by table key (tableKey) in every argument.
 */
export function planNetfilter(
  desired: NetfilterGlue | undefined,
  observed: NetfilterObservation,
  owned: Readonly<Record<string, readonly string[]>>,
  family: IpFamily,
): string | undefined {
  const tables = new Set([...Object.keys(desired?.chains ?? {}), ...Object.keys(owned)]);
  const out: string[] = [];
  for (const table of [...tables].sort()) {
    const name = splitTableKey(table);
    if (name.family !== family) continue;
    const want = desired?.chains[table] ?? {};
    const jumps = desired?.jumps[table] ?? {};
    const have = observed.tables[table] ?? {};
    const ownedHere = new Set([...(owned[table] ?? []), ...Object.keys(want)]);
    const lines: string[] = [];
    let dirty = false;
    // Jumps from built-in chains: insert missing ones, delete ours that are no longer wanted.
    const builtins = new Set([...Object.keys(jumps), ...Object.keys(have).filter((ch) => !ownedHere.has(ch))]);
    for (const chain of [...builtins].sort()) {
      const wantJ = jumps[chain] ?? [];
      const haveJ = have[chain] ?? [];
      for (const j of haveJ)
        if (!wantJ.includes(j)) {
          lines.push(`-D ${chain} ${j}`);
          dirty = true;
        }
      // Insert in reverse so they end up in order at the top.
      for (const j of [...wantJ].reverse())
        if (!haveJ.includes(j)) {
          lines.push(`-I ${chain} 1 ${j}`);
          dirty = true;
        }
    }
    const chainsChanged = Object.entries(want).some(([ch, rules]) => !same(have[ch], rules));
    const stale = [...(owned[table] ?? [])].filter((ch) => !(ch in want) && ch in have);
    if (chainsChanged || stale.length > 0) dirty = true;
    if (!dirty) continue;
    // Declaring a chain in --noflush mode flushes it (and creates it when missing).
    const decl = [...new Set([...Object.keys(want), ...stale])].sort().map((ch) => `:${ch} - [0:0]`);
    const rules: string[] = [];
    for (const [ch, rs] of Object.entries(want)) for (const r of rs) rules.push(`-A ${ch} ${r}`);
    out.push(
      `*${name.table}`,
      ...decl,
      ...lines.filter((l) => l.startsWith('-D')),
      ...rules,
      ...lines.filter((l) => l.startsWith('-I')),
      ...stale.map((ch) => `-X ${ch}`),
      'COMMIT',
    );
  }
  return out.length === 0 ? undefined : out.join('\n') + '\n';
}

function same(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}
