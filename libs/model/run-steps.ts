/**
 * A generator's return value, its steps run at once. Work that may be large is written as a
 * generator that yields between bounded steps (pure code, no clock, no await); a caller that must
 * not block runs it in slices (services/planner/run-in-slices.ts), any other runs it with this.
 */
export function runSteps<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}
