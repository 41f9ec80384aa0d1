// How long online retention holds the planner's thread (review4 G8): builds a log as a planner
// writes it (a version every --per-version events, a checkpoint every 10,000 events, an ACK of
// every version by --nodes nodes), then runs OnlineRetention on it with the planner's settings
// (synchronous=FULL, 500 rows a step, a cut at a checkpoint) while a 1 ms timer measures the
// longest gap of the event loop. Prints the figures; not a test.
// Run: flock /work/coord/bench.lock npx tsx bench/eventlog/retention-stall.ts [--events 120000] [--slice 2000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog, OnlineRetention } from '../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../libs/model/index.ts';
import { DataAxis } from '../../libs/versioning/index.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const EVENTS = arg('events', 120_000);
const PER_VERSION = arg('per-version', 100);
const NODES = arg('nodes', 20);
const SERVICES = arg('services', 2000);
const SLICE = arg('slice', 500);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swb-retention-bench-'));
const file = path.join(dir, 'log.db');

function event(i: number): WatchEvent {
  const s = i % SERVICES;
  const svc = i < SERVICES;
  const name = svc ? `svc-${s}` : `svc-${s}-abcde`;
  const rv = String(i + 1);
  return {
    kind: svc ? 'Service' : 'EndpointSlice',
    type: i < 2 * SERVICES ? 'ADDED' : 'MODIFIED',
    origin: 'watch',
    namespace: 'default',
    name,
    uid: `u-${name}`,
    resourceVersion: rv,
    object: svc
      ? {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name, namespace: 'default', uid: `u-${name}`, resourceVersion: rv },
          spec: { clusterIP: `10.96.${s >> 8}.${s & 255}`, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
        }
      : {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: {
            name,
            namespace: 'default',
            uid: `u-${name}`,
            resourceVersion: rv,
            labels: { 'kubernetes.io/service-name': `svc-${s}` },
          },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
          endpoints: [{ addresses: [`10.1.${(i >> 8) & 255}.${i & 255}`], conditions: { ready: true } }],
        },
  };
}

let t0 = performance.now();
{
  const log = await EventLog.open({ file, sync: 'normal' });
  const axis = DataAxis.restore(log);
  const rev = log.recordConfigRevision({ config: {} as never, reason: 'bench' }).revision;
  for (let i = 0; i < EVENTS; i += PER_VERSION) {
    axis.ingest(Array.from({ length: Math.min(PER_VERSION, EVENTS - i) }, (_, k) => event(i + k)));
    const v = axis.sync();
    axis.checkpointIfDue(10_000);
    if (v)
      log.atomically(() => {
        for (let n = 0; n < NODES; n++)
          log.recordAck({
            type: 'ACK',
            node: `node-${n}`,
            version: v.record.version,
            configRevision: rev,
            dataHash: v.record.hash,
            nodeStateHash: 'n'.repeat(64),
            mode: 'ipvs',
            kernelWrites: 1,
            timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
            at: new Date().toISOString(),
          });
      });
  }
  if (process.argv.includes('--keep')) fs.copyFileSync(file, '/tmp/retain/bench-log.db');
  console.log(
    `built: ${log.lastSeq()} events, ${log.latestVersion()?.version} versions, ${log.checkpoints().length} checkpoints, ${(fs.statSync(file).size / 1e6).toFixed(1)} MB in ${Math.round(performance.now() - t0)} ms`,
  );
  log.close();
}

// synchronous=FULL as the planner, then the same on a copy without fsync (what the steps cost apart from it)
for (const sync of ['full', 'normal'] as const) {
  const copy = path.join(dir, `run-${sync}.db`);
  fs.copyFileSync(file, copy);
  const log = await EventLog.open({ file: copy, sync });
  const latest = log.latestVersion()!.version;
  const r = new OnlineRetention({
    log,
    policy: { versions: Math.floor(latest / 10) },
    bounds: () => ({ floors: [], clusterHas: () => true }), // the planner knows its cluster's nodes
    sliceRows: SLICE,
  });
  const gaps: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }, 1);
  t0 = performance.now();
  await r.runOnce();
  const total = performance.now() - t0;
  clearInterval(timer);
  gaps.sort((a, b) => a - b);
  const q = (p: number) => (gaps[Math.min(gaps.length - 1, Math.floor(gaps.length * p))] ?? 0).toFixed(1);
  const run = r.lastRun();
  console.log(
    `retention (synchronous=${sync}): ${run?.eventsRemoved} events and ${run?.acksRemoved} ACK rows removed in ${run?.steps} steps, ${Math.round(total)} ms; longest step ${run?.longestStepMs} ms; event-loop gaps median ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, longest ${q(1)} ms; ${r.status().error ?? 'ok'}`,
  );
  log.close();
}
fs.rmSync(dir, { recursive: true, force: true });
