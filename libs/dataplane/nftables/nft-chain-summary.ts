import { canonicalFromKernel } from '../../model/index.ts';

/**
 * A comparable digest of one chain, computable both from the rule texts we render and from
 * `nft -j list table` output: the rule count plus every jump/goto target and DNAT destination
 * (`=>addr:port`, or `=>@map` for a DNAT through an endpoint map, whose elements are compared
 * exactly on their own).
 * Resync uses it to notice chains that were flushed, edited or pointed elsewhere without having
 * to re-derive nft's own textual normalisation.
 */
export function summarizeRules(rules: readonly string[]): string {
  const tokens: string[] = [];
  for (const r of rules) {
    for (const m of r.matchAll(/\b(?:goto|jump) ([^\s,}]+)/g)) tokens.push(`->${m[1]}`);
    for (const m of r.matchAll(/\bdnat ip6? to (?:numgen random mod \d+ map (@\S+)|(\S+))/g))
      tokens.push(`=>${m[1] ?? m[2]}`);
  }
  return summarizeTokens(rules.length, tokens);
}

/** The digest from a rule count and the jump/goto (`->X`) and DNAT (`=>A:P`) tokens of its rules. */
export function summarizeTokens(ruleCount: number, tokens: readonly string[]): string {
  return `${ruleCount}|${[...tokens].sort().join(',')}`;
}

/** The same digest from the `expr` arrays of a chain's rules in nft's JSON output. */
export function summarizeJsonRules(exprs: readonly unknown[]): string {
  const tokens: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      v.forEach(walk);
      return;
    }
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    for (const verb of ['jump', 'goto']) {
      const target = (o[verb] as { target?: unknown } | undefined)?.target;
      if (typeof target === 'string') tokens.push(`->${target}`);
    }
    const dnat = o.dnat as { family?: string; addr?: unknown; port?: unknown } | undefined;
    const viaMap = (dnat?.addr as { map?: { data?: unknown } } | undefined)?.map?.data;
    if (typeof viaMap === 'string') tokens.push(`=>${viaMap}`);
    else if (dnat && typeof dnat.addr === 'string') {
      // nft prints ::10.50.1.2 where we render ::a32:102 (review3 K2)
      const addr = canonicalFromKernel(dnat.addr);
      tokens.push(`=>${dnat.family === 'ip6' ? `[${addr}]` : addr}:${String(dnat.port)}`);
    }
    for (const [k, child] of Object.entries(o)) if (k !== 'dnat') walk(child);
  };
  exprs.forEach(walk);
  return `${exprs.length}|${tokens.sort().join(',')}`;
}
