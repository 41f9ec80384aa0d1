/**
 * Probe of the planner's initial-list ingest path without the network (round 8): a 10k cluster
 * (bench/planner/generate-cluster.ts) goes through it as the informer delivers it, pages of 500
 * objects parsed from their JSON text (so each page's raw objects are new, young objects), queued
 * and appended in batches of 2 000 with `buildReady` after each (as the planner does before its
 * first sync), then version 1 is recorded. Mode `raw` queues the raw events (the planner before
 * round 8); `prepared` queues DataAxis.prepare's output (round 8). Reports wall, CPU, GC pauses
 * (perf_hooks) and version 1's hash (both modes must agree). One mode per process:
 *
 *   npx tsx --expose-gc [--trace-gc-nvp] bench/ingest/prepared-queue-probe.ts raw|prepared [--services 10000]
 *
 * With --trace-gc-nvp, the bytes scavenges copied (new_space_survived + promoted) in the window
 * are a measure of survivors that the load does not move as much as pause times: sum the `gc=s`
 * lines between "probe: window start" and "probe: window end" (bench/ingest/round8-probe.txt).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { EventLog } from '../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../libs/model/index.ts';
import { DataAxis, type PreparedEvent } from '../../libs/versioning/index.ts';
import { generateCluster } from '../planner/generate-cluster.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { services: { type: 'string', default: '10000' } },
});
const mode = positionals[0];
if (mode !== 'raw' && mode !== 'prepared') throw new Error('usage: prepared-queue-probe.ts raw|prepared');
const S = Number(values.services);
const gen = generateCluster({ services: S, endpointsPerService: 10, nodes: 100 });
const kinds = [
  ['Node', gen.nodes],
  ['Service', gen.services],
  ['EndpointSlice', gen.slices],
] as const;
// Each page as the API sends it: JSON text, parsed when it "arrives".
const pages: { kind: WatchEvent['kind']; text: string }[] = [];
for (const [kind, objects] of kinds)
  for (let i = 0; i < objects.length; i += 500) pages.push({ kind, text: JSON.stringify(objects.slice(i, i + 500)) });
gen.nodes.length = gen.services.length = gen.slices.length = 0;

const dir = mkdtempSync(path.join(tmpdir(), 'sb-prepared-probe-'));
const log = await EventLog.open({ file: path.join(dir, 'planner.db') });
const axis = DataAxis.restore(log);
global.gc?.();
const gcs = { scavenges: 0, scavengeMs: 0, majors: 0, majorMs: 0 };
const obs = new PerformanceObserver((l) => {
  for (const e of l.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
    if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gcs.scavenges += 1;
      gcs.scavengeMs += e.duration;
    } else {
      gcs.majors += 1;
      gcs.majorMs += e.duration;
    }
  }
});
obs.observe({ entryTypes: ['gc'] });
// Markers for --trace-gc-nvp (printed on the same stdout): sum its scavenge lines between them only.
console.log('probe: window start');
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const releaseWal = log.holdWalCheckpoints();
let queue: (WatchEvent | PreparedEvent)[] = [];
let rv = 0;
const flush = (all: boolean) => {
  while (queue.length >= (all ? 1 : 2000)) {
    axis.ingest(queue.slice(0, 2000));
    queue = queue.slice(2000);
    axis.live.buildReady();
  }
};
for (const page of pages) {
  await new Promise<void>((r) => setImmediate(r)); // a page arrives
  for (const raw of JSON.parse(page.text) as { metadata: { name: string; namespace?: string; uid?: string } }[]) {
    const e: WatchEvent = {
      kind: page.kind,
      type: 'ADDED',
      origin: 'relist',
      namespace: raw.metadata.namespace ?? '',
      name: raw.metadata.name,
      uid: raw.metadata.uid ?? '',
      resourceVersion: String(++rv),
      object: raw,
    };
    queue.push(mode === 'prepared' ? axis.prepare(e) : e);
  }
  flush(false);
}
flush(true);
const v = axis.sync();
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
console.log('probe: window end');
releaseWal();
obs.disconnect();
const heap = process.memoryUsage().heapUsed / 1048576;
console.log(
  JSON.stringify({
    mode,
    events: rv,
    wallMs: +wallMs.toFixed(0),
    cpuMs: +((cpu.user + cpu.system) / 1000).toFixed(0),
    ...Object.fromEntries(Object.entries(gcs).map(([k, x]) => [k, +x.toFixed(0)])),
    heapMb: +heap.toFixed(0),
    version: v?.record.version,
    hash: v?.record.hash.slice(0, 12),
  }),
);
log.close();
rmSync(dir, { recursive: true, force: true });
