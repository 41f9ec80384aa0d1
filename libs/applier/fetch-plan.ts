/**
 * Which artifacts an applier must fetch to go from what it runs to its target. Pure.
 *
 * - Same version: nothing.
 * - A short way ahead (at most `maxDeltaChain` versions): the deltas in between, O(change) bytes.
 * - Empty, far behind, or a target below what it runs (a per-node override may point back during
 *   a rollout): restart from the newest checkpoint at or before the target, which the target's own
 *   delta names, then the deltas after it.
 */
export type FetchPlan =
  | { readonly kind: 'none' }
  | { readonly kind: 'deltas'; readonly from: number; readonly to: number }
  | { readonly kind: 'checkpoint'; readonly to: number };

export function planFetch(o: { applied: number; target: number; maxDeltaChain: number }): FetchPlan {
  if (o.target === o.applied) return { kind: 'none' };
  if (o.applied > 0 && o.target > o.applied && o.target - o.applied <= o.maxDeltaChain) {
    return { kind: 'deltas', from: o.applied + 1, to: o.target };
  }
  return { kind: 'checkpoint', to: o.target };
}
