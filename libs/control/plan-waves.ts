import type { WaveSpec } from './parse-waves.ts';

/**
 * Turns wave specs into cumulative node sets over a fleet. Nodes are taken in code-unit order, so
 * the same fleet and specs always give the same waves (an operator can predict the canary).
 * A wave that would add no node is dropped; the last wave always covers the whole fleet, so a
 * rollout that completes leaves no node behind even when the specs stop short of 100%.
 */
export function planWaves(nodes: readonly string[], specs: readonly WaveSpec[]): string[][] {
  const fleet = [...new Set(nodes)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const waves: string[][] = [];
  let taken = 0;
  for (const spec of specs) {
    const want = spec.kind === 'count' ? spec.n : Math.ceil((spec.p / 100) * fleet.length);
    const size = Math.min(fleet.length, Math.max(want, 1));
    if (size <= taken) continue;
    taken = size;
    waves.push(fleet.slice(0, size));
  }
  if (taken < fleet.length) waves.push(fleet.slice());
  return waves;
}
