import type { IpFamily } from '../../model/index.ts';
import { jumpTarget, splitTableKey, type NetfilterGlue } from './netfilter-glue.ts';
import type { NetfilterObservation } from './observed-kernel.ts';

/**
 * The chains whose jumps into ours are ours to manage. A rule in any other chain that jumps into
 * one of ours belongs to another program (the CNI portmap plugin's `externalSetMarkChain:
 * KUBE-MARK-MASQ`, kubelet's hostport chains, kube-proxy's own rules): never deleted (probe7 C2).
 */
export const BUILTIN_CHAINS: ReadonlySet<string> = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);

/**
 * The one `iptables-restore --noflush` text (`ip6tables-restore` for IPv6) that turns the
 * observed glue of `family` into `desired` (or, with desired undefined, removes our chains), or
 * undefined when nothing differs. Tables whose chains already match are left out entirely, so a
 * no-op sync writes nothing. Tables are named by table key (tableKey) in every argument.
 * Chains of ours that are no longer wanted are deleted, except those a foreign chain still jumps
 * to (and what they jump to): `-X` of a referenced chain fails and would fail the whole table's
 * restore, and the referring program relies on it (KUBE-MARK-MASQ still setting the masquerade
 * mark), so such a chain is left as it is, as kube-proxy leaves it.
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
    const builtins = new Set([...Object.keys(jumps), ...Object.keys(have).filter((ch) => BUILTIN_CHAINS.has(ch))]);
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
    const kept = referencedByForeign(have, ownedHere);
    const stale = [...(owned[table] ?? [])].filter((ch) => !(ch in want) && ch in have && !kept.has(ch));
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

/**
 * Our chains that a foreign (neither ours nor built-in) chain jumps to, directly or through
 * another of ours: `have` holds, besides our chains, every rule elsewhere that jumps into them.
 */
function referencedByForeign(
  have: Readonly<Record<string, readonly string[]>>,
  ours: ReadonlySet<string>,
): Set<string> {
  const kept = new Set<string>();
  const visit = (rules: readonly string[]) => {
    for (const r of rules) {
      const target = jumpTarget(r);
      if (target === undefined || !ours.has(target) || kept.has(target)) continue;
      kept.add(target);
      visit(have[target] ?? []);
    }
  };
  for (const [chain, rules] of Object.entries(have)) if (!ours.has(chain) && !BUILTIN_CHAINS.has(chain)) visit(rules);
  return kept;
}
