// Planner restart benchmark (not a test). A log of --events watch events (default 1M) with the
// checkpoint a planner checkpointing every --checkpoint-every events would have last written (see
// below) is made, then, in the same run:
//   restart: DataAxis.restore(log): nearest checkpoint + the deciding event of each object changed
//            after it (what a restarted planner does now);
//   baseline (cold scan): the fold from the first event, every event in order, no checkpoint (what a
//            restarted planner did before checkpoints).
// Both give the same state (checked). Ends with one JSON line.
// Run: npx tsx bench/planner/restart-bench.ts [--events 1000000] [--services 10000] [--checkpoint-every 10000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog, rebuildAtSeq } from '../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../libs/model/index.ts';
import { DataAxis } from '../../libs/versioning/index.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const EVENTS = arg('events', 1_000_000);
const SERVICES = arg('services', 10_000);
const EVERY = arg('checkpoint-every', 10_000);
const BATCH = arg('batch', 1000);
const COLD_RUNS = arg('cold-runs', 1);
const ms = (t0: number) => performance.now() - t0;

/** Services once, then their slices rewritten over and over (pod churn). */
function event(i: number): WatchEvent {
  if (i < SERVICES) {
    const name = `svc-${i}`;
    return {
      kind: 'Service',
      type: 'ADDED',
      origin: 'watch',
      namespace: 'default',
      name,
      uid: `u-${name}`,
      resourceVersion: String(i + 1),
      object: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace: 'default', uid: `u-${name}` },
        spec: {
          clusterIP: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
          ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
        },
      },
    };
  }
  const s = i % SERVICES;
  const name = `svc-${s}-abcde`;
  return {
    kind: 'EndpointSlice',
    type: i < SERVICES * 2 ? 'ADDED' : 'MODIFIED',
    origin: 'watch',
    namespace: 'default',
    name,
    uid: `u-${name}`,
    resourceVersion: String(i + 1),
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      addressType: 'IPv4',
      metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${s}` } },
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: 3 }, (_, k) => ({
        addresses: [`10.244.${(i + k) & 255}.${(i * 7 + k) & 255}`],
        conditions: { ready: true },
      })),
    },
  };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swb-restart-bench-'));
try {
  const file = path.join(dir, 'log.db');
  const log = await EventLog.open({ file, sync: 'normal' });
  let t0 = performance.now();
  // The events go in through the log's own append (group commits of BATCH); the checkpoint a
  // running planner would have written last (TAIL events before the end: close to the worst case
  // of --checkpoint-every) is the state the one fold gives at that seq, written by log.checkpoint
  // as DataAxis.checkpointIfDue does; then the planner's data axis records the latest version.
  const TAIL = EVERY - BATCH / 2;
  const cpSeq = EVENTS - TAIL;
  for (let i = 0; i < EVENTS; i += BATCH) {
    log.appendEvents(Array.from({ length: Math.min(BATCH, EVENTS - i) }, (_, k) => event(i + k)));
    if (i + BATCH === cpSeq || (i < cpSeq && i + BATCH > cpSeq)) {
      const at = rebuildAtSeq(log, log.lastSeq());
      log.checkpoint(at.state, { rejections: at.rejections.values() });
    }
  }
  const axis = DataAxis.restore(log);
  axis.sync();
  const genMs = ms(t0);
  const cp = log.checkpoints().at(-1)!;
  const tail = log.lastSeq() - cp.seq;
  console.log(
    `generated ${log.lastSeq()} events, ${log.latestVersion()?.version} version(s), checkpoint at ${cp.seq} in ${genMs.toFixed(0)} ms; file ${(fs.statSync(file).size / 1e6).toFixed(0)} MB`,
  );
  log.close();

  // Each side opens the log afresh; they alternate twice so load elsewhere hits both alike.
  const runs: { restartMs: number; coldMs: number }[] = [];
  let same = true;
  let eventsAfterCheckpoint = 0;
  for (let r = 0; r < Math.max(1, COLD_RUNS); r++) {
    let l = await EventLog.open({ file, migrate: false });
    t0 = performance.now();
    const restored = DataAxis.restore(l);
    const restartMs = ms(t0);
    eventsAfterCheckpoint = rebuildAtSeq(l, l.lastSeq()).eventsApplied;
    const hash = restored.live.hash();
    l.close();
    l = await EventLog.open({ file, migrate: false });
    t0 = performance.now();
    const cold = rebuildAtSeq(l, l.lastSeq(), { sequential: true, ignoreCheckpoints: true });
    const coldMs = ms(t0);
    same &&= cold.hash === hash;
    l.close();
    runs.push({ restartMs, coldMs });
  }
  const restartMs = Math.min(...runs.map((r) => r.restartMs));
  const coldMs = Math.min(...runs.map((r) => r.coldMs));
  console.log(
    `restart (checkpoint at seq ${cp.seq}, ${cp.objectCount} objects, ${tail} events after it, ${eventsAfterCheckpoint} deciding rows read): ${restartMs.toFixed(0)} ms`,
  );
  console.log(`cold scan of every event (the baseline):          ${coldMs.toFixed(0)} ms; same state: ${same}`);
  console.log(
    JSON.stringify({
      events: EVENTS,
      services: SERVICES,
      checkpointEvery: EVERY,
      tailEvents: tail,
      restartMs: Math.round(restartMs),
      coldScanMs: Math.round(coldMs),
      ratioRestartVsColdScan: Number((restartMs / coldMs).toFixed(4)),
      sameState: same,
    }),
  );
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
