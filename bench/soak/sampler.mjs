// Preloaded into each soak child (`node --expose-gc --import bench/soak/sampler.mjs …`): every
// SOAK_SAMPLE_MS it forces a full GC and appends one JSON line of the process's own figures
// (heap used after GC, RSS, external, active resources by type, open fds, listeners on process)
// to $SOAK_DIR/samples/$SOAK_TAG.jsonl; process warnings (MaxListenersExceeded…) go to the same
// file as {warning}. Writing $SOAK_DIR/samples/$SOAK_TAG.snap asks for a heap snapshot.
import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';

const dir = path.join(process.env.SOAK_DIR ?? '/tmp', 'samples');
const tag = process.env.SOAK_TAG ?? `pid-${process.pid}`;
const every = Number(process.env.SOAK_SAMPLE_MS ?? 15000);
mkdirSync(dir, { recursive: true });
const file = path.join(dir, `${tag}.jsonl`);
const t0 = Date.now();
const write = (o) =>
  appendFileSync(file, `${JSON.stringify({ t: Math.round((Date.now() - t0) / 1000), pid: process.pid, ...o })}\n`);
process.on('warning', (w) => write({ warning: `${w.name}: ${w.message}` }));
const sample = () => {
  if (typeof globalThis.gc === 'function') globalThis.gc();
  const m = process.memoryUsage();
  const res = {};
  for (const r of process.getActiveResourcesInfo()) res[r] = (res[r] ?? 0) + 1;
  let fds = -1;
  try {
    fds = readdirSync('/proc/self/fd').length;
  } catch {}
  const listeners = {};
  for (const e of process.eventNames()) listeners[String(e)] = process.listenerCount(e);
  const hs = v8.getHeapStatistics();
  write({
    heapUsedMiB: +(m.heapUsed / 2 ** 20).toFixed(2),
    rssMiB: +(m.rss / 2 ** 20).toFixed(1),
    externalMiB: +(m.external / 2 ** 20).toFixed(2),
    arrayBuffersMiB: +(m.arrayBuffers / 2 ** 20).toFixed(2),
    contexts: hs.number_of_native_contexts,
    detached: hs.number_of_detached_contexts,
    fds,
    res,
    listeners,
  });
  const snap = path.join(dir, `${tag}.snap`);
  if (existsSync(snap)) {
    rmSync(snap);
    v8.writeHeapSnapshot(path.join(dir, `${tag}-${Date.now()}.heapsnapshot`));
  }
};
setTimeout(sample, 3000).unref();
setInterval(sample, every).unref();
