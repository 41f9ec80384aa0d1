import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * A generator's return value, its steps run at once. Work that may be large is written as a
 * generator that yields between bounded steps (pure code, no clock, no await); a caller that must
 * not block runs it in slices (runInSlices), any other runs it with this.
 */
export function runSteps<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

export interface SliceOptions {
  /** Longest a slice keeps stepping before it yields to the event loop, in ms (at least one step a slice). */
  readonly sliceMs: number;
  /** Clock for the budget (default performance.now). */
  readonly nowMs?: () => number;
  /** Asked between slices: a reason to give the work up (the run rejects with it), or undefined to go on. */
  readonly stopIf?: () => string | undefined;
}

/**
 * Runs a generator's steps in slices of about sliceMs, waiting for the
 * event loop's next turn between slices (setImmediate: timers, I/O and other callbacks go first),
 * and resolves with its return value. So a build of seconds holds the planner's thread for one
 * step past the budget at most, and its lease renewal, heartbeats, ACKs and GET /status run in
 * between (probe10 H9). A step that throws rejects; the generator is then done. Given up
 * (stopIf), the generator is returned first, so its finally blocks run.
 */
export async function runInSlices<T>(steps: Generator<void, T, void>, o: SliceOptions): Promise<T> {
  const now = o.nowMs ?? (() => performance.now());
  for (;;) {
    const end = now() + o.sliceMs;
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
      if (now() >= end) break;
    }
    await nextTurn();
    const stop = o.stopIf?.();
    if (stop !== undefined) {
      steps.return(undefined as T); // its finally blocks run: what it staged is undone
      throw new Error(stop);
    }
  }
}
