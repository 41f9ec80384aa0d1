import type { WaveSpec } from './parse-waves.ts';

const byCodeUnit = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Turns wave specs into cumulative node sets over a fleet. The same fleet, specs and node
 * statuses always give the same waves (an operator can predict the canary): nodes that may be a
 * canary (`notCanary` does not name them: their applier is live and in sync, canaryBlocker in
 * node-status.ts) come first, in code-unit order, then the others in code-unit order. A wave that
 * would add no node is dropped; the last wave always covers the whole fleet, so a rollout that
 * completes leaves no node behind even when the specs stop short of 100%.
 *
 * With more than one wave the first is the canary, and it must hold only such nodes: waves taken
 * in name order alone made a Node without an applier (never heard from) the canary, and the
 * rollout stalled on it until its wave timeout and halted (W1). When it cannot, this throws the
 * one-line reason and no rollout starts. A single wave is the whole fleet at once: no canary.
 */
export function planWaves(
  nodes: readonly string[],
  specs: readonly WaveSpec[],
  /** Fleet nodes that may not be a canary, with why (their status word and reason). */
  notCanary: ReadonlyMap<string, string> = new Map(),
): string[][] {
  const unique = [...new Set(nodes)].sort(byCodeUnit);
  const eligible = unique.filter((n) => !notCanary.has(n));
  const fleet = [...eligible, ...unique.filter((n) => notCanary.has(n))];
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
  if (waves.length > 1 && waves[0]!.length > eligible.length)
    throw new Error(noCanary(waves[0]!.length, eligible, unique.length, notCanary));
  return waves;
}

function noCanary(
  size: number,
  eligible: readonly string[],
  fleet: number,
  notCanary: ReadonlyMap<string, string>,
): string {
  const shown = [...notCanary].sort(([a], [b]) => byCodeUnit(a, b)).slice(0, 3);
  const others = notCanary.size - shown.length;
  const why = shown.map(([n, w]) => `${n} ${oneLine(w)}`).join('; ') + (others > 0 ? `; and ${others} more` : '');
  const names = eligible.slice(0, 3).join(', ') + (eligible.length > 3 ? ', …' : '');
  const have = eligible.length === 0 ? 'none' : `only ${eligible.length} (${names})`;
  return `no canary: the first wave takes ${size} node(s) whose applier is live and in sync, and ${have} of the ${fleet} fleet nodes is: ${why}`;
}

/** A reason on one short line: a node's NACK error (its words) may hold newlines or run long. */
function oneLine(text: string): string {
  const t = text.replace(/\s+/g, ' ');
  return t.length > 160 ? `${t.slice(0, 159)}…` : t;
}
