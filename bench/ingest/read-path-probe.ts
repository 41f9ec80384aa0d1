/**
 * Probe of the planner's read path for an initial list, without the network or the log's writes
 * (issue 15 item 4, twelfth round): every object of a 10k cluster (bench/planner/generate-cluster.ts,
 * 20 100 objects, parsed from one JSON text so they are fresh objects) goes through
 * DataAxis.prepare, as the planner does for each listed object (projection, row text, check, read
 * into the model). Reports per round the CPU of the prepares and the heap the outcomes (the model
 * objects the state keeps) retain after a full GC.
 *
 *   flock /work/coord/bench.lock node --expose-gc --import tsx bench/ingest/read-path-probe.ts [rounds]
 *
 * The first round includes optimisation; compare the later ones.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventLog } from '../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../libs/model/index.ts';
import { DataAxis, type PreparedEvent } from '../../libs/versioning/index.ts';
import { generateCluster } from '../planner/generate-cluster.ts';

if (!global.gc) throw new Error('run with node --expose-gc');
const gen = generateCluster({ services: 10000, endpointsPerService: 10, nodes: 100 });
const dir = mkdtempSync(path.join(tmpdir(), 'sb-read-path-probe-'));
const log = await EventLog.open({ file: path.join(dir, 'planner.db') });
const axis = DataAxis.restore(log);
const text = JSON.stringify([gen.nodes, gen.services, gen.slices]);
gen.nodes.length = gen.services.length = gen.slices.length = 0;
const KINDS = ['Node', 'Service', 'EndpointSlice'] as const;
type Meta = { metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string } };

const rounds = Number(process.argv[2] ?? 5);
for (let r = 0; r < rounds; r++) {
  const lists = JSON.parse(text) as Meta[][];
  const events: WatchEvent[] = [];
  lists.forEach((objects, k) => {
    for (const o of objects)
      events.push({
        kind: KINDS[k]!,
        type: 'ADDED',
        origin: 'watch',
        name: o.metadata.name,
        namespace: o.metadata.namespace ?? '',
        uid: o.metadata.uid ?? `uid-${events.length}`,
        resourceVersion: o.metadata.resourceVersion ?? String(events.length + 1),
        object: o,
      });
  });
  global.gc();
  const c0 = process.cpuUsage();
  const out: PreparedEvent['outcome'][] = events.map((e) => axis.prepare(e).outcome);
  const cpu = process.cpuUsage(c0);
  events.length = 0;
  lists.length = 0;
  global.gc();
  const kept = process.memoryUsage().heapUsed;
  const n = out.length;
  out.length = 0;
  global.gc();
  const retainedMb = (kept - process.memoryUsage().heapUsed) / 1048576;
  console.log(
    `round ${r + 1}: ${n} objects prepared, CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms, model retained ${retainedMb.toFixed(1)} MB`,
  );
}
log.close();
rmSync(dir, { recursive: true, force: true });
