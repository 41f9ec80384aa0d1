import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * One full, compacting garbage collection now, and the heap used before and after (bytes).
 *
 * Why: the planner's initial sync allocates several times its steady-state heap (list pages,
 * parsed objects, the first checkpoint), and V8 keeps those pages committed until its next major
 * GC, which an idle planner may not run for hours: at 10k services the process sat at ~550 MB RSS
 * with ~155 MB of live heap (bench/startup). Collecting once after the sync returns the pages.
 * `gc` is exposed to a fresh context only (`--expose-gc` at runtime), not to the program.
 */
export function fullGc(): { beforeBytes: number; afterBytes: number } {
  const beforeBytes = v8.getHeapStatistics().used_heap_size;
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
  return { beforeBytes, afterBytes: v8.getHeapStatistics().used_heap_size };
}
