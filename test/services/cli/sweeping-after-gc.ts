// Run as a child by full-gc.test.ts: `node --import tsx sweeping-after-gc.ts ROUND...`, each ROUND
// one of `plain` (fullGc()), `finish` (fullGc({ finishSweeping: true })) or `hook` (the applier's
// GcAfterBigApply with its default collector). Each round makes ~2M small objects garbage, collects
// it, then idles until the threads other than the main one stop using CPU (schedstat: ns on a
// CPU), and prints one JSON line: per round, the collection's pause, what those threads (V8's
// sweepers among them) used after it, and what it freed. A child, so that the threads are V8's
// and Node's own, not vitest's workers.
import { readdirSync, readFileSync } from 'node:fs';
import { GcAfterBigApply } from '../../../services/applier/gc-after-big-apply.ts';
import { fullGc } from '../../../services/cli/full-gc.ts';

const otherThreadsMs = () =>
  readdirSync('/proc/self/task')
    .filter((t) => t !== String(process.pid))
    .reduce((ms, t) => ms + Number(readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ')[0]) / 1e6, 0);

async function quiet(): Promise<void> {
  for (let last = -1, now = otherThreadsMs(), i = 0; now - last >= 1 && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    [last, now] = [now, otherThreadsMs()];
  }
}

async function collect(round: string): Promise<{ beforeBytes: number; afterBytes: number }> {
  if (round === 'plain') return fullGc();
  if (round === 'finish') return fullGc({ finishSweeping: true });
  if (round === 'hook') {
    const done = await new GcAfterBigApply({ minGrowthBytes: 0 }).afterApply();
    if (!done) throw new Error('the hook did not collect');
    return done;
  }
  throw new Error(`unknown round ${round}`);
}

const out = [];
for (const round of process.argv.slice(2)) {
  let held = Array.from({ length: 2_000_000 }, (_, i) => ({ i, s: `x${i}` }));
  held = held.slice(0, 200_000); // no idling here: V8's memory reducer would collect it first
  const t0 = performance.now();
  const r = await collect(round);
  const pauseMs = performance.now() - t0;
  const before = otherThreadsMs();
  await quiet();
  out.push({
    round,
    pauseMs,
    afterMs: otherThreadsMs() - before,
    freed: r.beforeBytes - r.afterBytes,
    held: held.length,
  });
}
console.log(JSON.stringify(out));
