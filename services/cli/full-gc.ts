import v8 from 'node:v8';
import vm from 'node:vm';

export interface FullGcOptions {
  /**
   * Sweep the freed pages inside the collection, on this thread, instead of leaving them to V8's
   * concurrent sweeper threads after it returns. Where the process has no spare core for those
   * threads (a CPU-limited container; the test VM, whose emulator runs every vCPU on one host
   * thread) they take the CPU from whatever runs next: after the applier's collection at 10k × 10
   * they used 1.0–1.4 s of the emulator's CPU beside the first changes (docs/benchmarks.md,
   * "Applier (ipvs)"). The same work moves into the pause, which the caller chose to take now.
   */
  readonly finishSweeping?: boolean;
}

/**
 * One full, compacting garbage collection now, and the heap used before and after (bytes).
 *
 * Why: the planner's initial sync allocates several times its steady-state heap (list pages,
 * parsed objects, the first checkpoint), and V8 keeps those pages committed until its next major
 * GC, which an idle planner may not run for hours: at 10k services the process sat at ~550 MB RSS
 * with ~155 MB of live heap (bench/startup). Collecting once after the sync returns the pages.
 * `gc` is exposed to a fresh context only (`--expose-gc` at runtime), not to the program.
 */
export function fullGc(options: FullGcOptions = {}): { beforeBytes: number; afterBytes: number } {
  const beforeBytes = v8.getHeapStatistics().used_heap_size;
  v8.setFlagsFromString('--expose-gc');
  // V8 reads the flag when a collection starts its sweeping: off for this one, then back to what
  // the process runs with (on, unless its command line turned it off).
  const sweepInPause = options.finishSweeping === true && !process.execArgv.includes('--no-concurrent-sweeping');
  if (sweepInPause) v8.setFlagsFromString('--no-concurrent-sweeping');
  try {
    (vm.runInNewContext('gc') as () => void)();
  } finally {
    if (sweepInPause) v8.setFlagsFromString('--concurrent-sweeping');
  }
  return { beforeBytes, afterBytes: v8.getHeapStatistics().used_heap_size };
}
