// What a planner restart pays for "known objects" (sources diff their first scan/list against the
// objects the log holds): EventLog.liveObjectEvents on a log of N events over M objects, against a
// plain read of every event of the same log (the cold-scan baseline), in the same run.
//   npx tsx bench/sources/known-objects-bench.ts [EVENTS=1000000] [OBJECTS=10000]
// Prints one JSON line.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventLog } from '../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../libs/model/index.ts';

const events = Number(process.argv[2] ?? 1_000_000);
const objects = Number(process.argv[3] ?? 10_000);
const dir = mkdtempSync(path.join(tmpdir(), 'sb-known-objects-'));
try {
  const log = await EventLog.open({ file: path.join(dir, 'log.db'), sync: 'normal' });
  let batch: WatchEvent[] = [];
  for (let i = 0; i < events; i++) {
    const name = `svc-${i % objects}`;
    const rv = String(i + 1);
    batch.push({
      kind: 'Service',
      type: i < objects ? 'ADDED' : 'MODIFIED',
      origin: 'manifests',
      namespace: 'default',
      name,
      uid: '',
      resourceVersion: rv,
      object: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: 'default', resourceVersion: rv },
        spec: {
          type: 'ClusterIP',
          clusterIP: '10.96.0.1',
          ports: [{ name: 'http', port: 80 + (i % 7), protocol: 'TCP' }],
        },
      },
    });
    if (batch.length === 5000) {
      log.appendEvents(batch);
      batch = [];
    }
  }
  if (batch.length) log.appendEvents(batch);
  let t = performance.now();
  const live = log.liveObjectEvents();
  const knownMs = performance.now() - t;
  t = performance.now();
  let read = 0;
  for (let from = 1; ; from += 50_000) {
    const page = log.events({ fromSeq: from, limit: 50_000 });
    read += page.length;
    if (page.length < 50_000) break;
  }
  const scanMs = performance.now() - t;
  log.close();
  if (live.length !== objects || read !== events) throw new Error(`bench: got ${live.length} objects, ${read} events`);
  console.log(
    JSON.stringify({
      events,
      objects,
      knownObjectsMs: Math.round(knownMs),
      readEveryEventMs: Math.round(scanMs),
      ratio: +(knownMs / scanMs).toFixed(3),
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
