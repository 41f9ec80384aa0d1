/**
 * Wave specs as operators write them: "1,10%,50%,100%". A bare number is a node count, a
 * percentage is a share of the fleet; each wave is cumulative (the nodes of every wave so far).
 */
export type WaveSpec =
  | { readonly kind: 'count'; readonly n: number }
  | { readonly kind: 'percent'; readonly p: number };

export function parseWaves(text: string): WaveSpec[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new Error('waves: at least one wave is required, e.g. 1,10%,50%,100%');
  return parts.map((part) => {
    const pct = /^(\d+(?:\.\d+)?)%$/.exec(part);
    if (pct) {
      const p = Number(pct[1]);
      if (!(p > 0 && p <= 100)) throw new Error(`waves: ${part} must be within (0%, 100%]`);
      return { kind: 'percent', p };
    }
    if (/^\d+$/.test(part) && Number(part) > 0) return { kind: 'count', n: Number(part) };
    throw new Error(`waves: ${JSON.stringify(part)} is neither a node count nor a percentage`);
  });
}

export function formatWaves(waves: readonly WaveSpec[]): string {
  return waves.map((w) => (w.kind === 'count' ? String(w.n) : `${w.p}%`)).join(',');
}
