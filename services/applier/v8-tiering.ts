import v8 from 'node:v8';

/**
 * V8 flags the applier process sets when its command starts, before any dataplane code has run:
 * V8 applies them to each function as it first compiles it, so everything the applier runs
 * later (the incremental path above all) gets them. NODE_OPTIONS cannot carry these (Node allows
 * only a few V8 flags there), and the image's entry point is bin/switchboard for every command.
 *
 * --no-lazy-feedback-allocation: a function gets its feedback vector (where V8's inline caches
 * keep what they learn) on its first call, not after it has run about eight times its own
 * bytecode length. An applier's first apply is a bulk load; its later applies are small changes
 * that run code the load never ran (the change's diff, slice, read-back check). Without a vector
 * that code's every property access takes V8's generic path until the vector comes, and
 * baseline (Sparkplug) and optimized code wait for it too: the first tens of changes after a
 * load ran about twice as slow as later ones (docs/benchmarks-history.md, "Applier (ipvs)", seventh
 * round). The cost is a feedback vector for every function that runs once (start-up code).
 */
export const APPLIER_V8_FLAGS: readonly string[] = ['--no-lazy-feedback-allocation'];

export function tuneV8ForApplier(): void {
  for (const flag of APPLIER_V8_FLAGS) v8.setFlagsFromString(flag);
}
