/**
 * A process near its heap limit, for heap-headroom.test.ts: it keeps allocating until its live heap
 * is SHARE of V8's limit (V8 runs its own full collections on the way), then lets go of it all and
 * collects once. Every line HeapWatch says is printed as JSON; `held` when the allocation stops.
 * Run with a small --max-old-space-size and --expose-gc.
 */
import v8 from 'node:v8';
import { HeapWatch } from '../../../services/cli/heap-headroom.ts';

const share = Number(process.env.SHARE ?? '0.85');
const print = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const watch = new HeapWatch({ say: (line, warning) => print({ line, warning }) });
const limit = v8.getHeapStatistics().heap_size_limit;
let kept: number[][] = [];
const turn = () => new Promise<void>((r) => setImmediate(r));
// ~1 MB of old-generation objects a step, each step a turn of the loop (the observer's callbacks run between)
while (v8.getHeapStatistics().used_heap_size < share * limit) {
  for (let i = 0; i < 128; i++) kept.push(Array.from({ length: 1024 }, (_, j) => j + 0.5));
  await turn();
}
print({ held: v8.getHeapStatistics().used_heap_size, limit, reading: watch.reading ?? null });
kept = [];
(globalThis as { gc?: () => void }).gc!();
await turn();
await turn();
print({ released: v8.getHeapStatistics().used_heap_size, reading: watch.reading ?? null });
watch.stop();
