// Event log benchmarks (not tests). Figures go to docs/benchmarks.md as ratios against baselines
// measured in the same run:
//   appends: EventLog.appendEvents (validation + hash chain + durable commit per batch) versus raw
//            better-sqlite3 inserts of the same rows into the same table and indexes, same pragmas,
//            same batch size, no validation and no chain;
//   replay:  rebuilding the state after N events (no checkpoint / recent checkpoint) versus a raw
//            scan of the same rows that only JSON.parses each object.
// Run: npx tsx bench/eventlog/eventlog-bench.ts [--appends 200000] [--batch 1000] [--replay 1000000]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { EventLog, rebuildAtSeq } from '../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../libs/model/index.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const APPENDS = arg('appends', 200_000);
const BATCH = arg('batch', 1000);
const REPLAY = arg('replay', 1_000_000);
const SERVICES = arg('services', 10_000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swb-bench-'));
const ms = (t0: number) => performance.now() - t0;

/** Synthetic churn: services once, then slices rewritten over and over (pod churn), a few nodes. */
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
        metadata: { name, namespace: 'default', uid: `u-${name}`, resourceVersion: String(i + 1) },
        spec: {
          clusterIP: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
          ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
        },
      },
    };
  }
  if (i < SERVICES + 100) {
    const name = `node-${i - SERVICES}`;
    return {
      kind: 'Node',
      type: 'ADDED',
      origin: 'watch',
      namespace: '',
      name,
      uid: `u-${name}`,
      resourceVersion: String(i + 1),
      object: {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name, resourceVersion: String(i + 1) },
        status: { addresses: [{ type: 'InternalIP', address: `192.168.${(i >> 8) & 255}.${i & 255}` }] },
      },
    };
  }
  const s = i % SERVICES;
  const name = `svc-${s}-abcde`;
  return {
    kind: 'EndpointSlice',
    type: i < SERVICES * 2 + 100 ? 'ADDED' : 'MODIFIED',
    origin: 'watch',
    namespace: 'default',
    name,
    uid: `u-${name}`,
    resourceVersion: String(i + 1),
    object: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      addressType: 'IPv4',
      metadata: {
        name,
        namespace: 'default',
        resourceVersion: String(i + 1),
        labels: { 'kubernetes.io/service-name': `svc-${s}` },
      },
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: Array.from({ length: 5 }, (_, k) => ({
        addresses: [`10.244.${(i + k) & 255}.${(i * 7 + k) & 255}`],
        conditions: { ready: (i + k) % 9 !== 0 },
        nodeName: `node-${(i + k) % 100}`,
      })),
    },
  };
}

const HASH = 'f'.repeat(64);
const owner = (e: WatchEvent) =>
  e.kind === 'Service'
    ? e.name
    : e.kind === 'EndpointSlice'
      ? (e.object as { metadata: { labels: Record<string, string> } }).metadata.labels['kubernetes.io/service-name']!
      : '';

async function appendBench(): Promise<void> {
  const events = Array.from({ length: APPENDS }, (_, i) => event(i));
  // Baseline: the same rows through raw prepared inserts, one transaction per batch, same pragmas.
  const raw = new Database(path.join(dir, 'raw.db'));
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = FULL');
  raw.exec(`CREATE TABLE events (seq INTEGER PRIMARY KEY, received_at TEXT, kind TEXT, type TEXT, origin TEXT, namespace TEXT, name TEXT,
    uid TEXT, resource_version TEXT, service TEXT, object TEXT, row_hash TEXT)`);
  // The same secondary indexes as the log's schema: the comparison isolates validation + chain.
  raw.exec('CREATE INDEX a ON events (namespace, service, seq); CREATE INDEX b ON events (kind, namespace, name, seq)');
  const ins = raw.prepare('INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const rawBatch = (b: number) => {
    const at = new Date().toISOString();
    raw.transaction(() => {
      for (let i = b; i < Math.min(b + BATCH, events.length); i++) {
        const e = events[i]!;
        // The same column values the log stores (service owner, a 64-char hash), minus computing them.
        ins.run(
          i + 1,
          at,
          e.kind,
          e.type,
          e.origin,
          e.namespace,
          e.name,
          e.uid,
          e.resourceVersion,
          owner(e),
          JSON.stringify(e.object),
          HASH,
        );
      }
    })();
  };
  const log = await EventLog.open({ file: path.join(dir, 'append.db') });
  // Batches alternate between the two, so load from other processes on this shared machine
  // hits both sides alike.
  let rawMs = 0;
  let logMs = 0;
  for (let b = 0; b < events.length; b += BATCH) {
    let t0 = performance.now();
    rawBatch(b);
    rawMs += ms(t0);
    t0 = performance.now();
    log.appendEvents(events.slice(b, b + BATCH));
    logMs += ms(t0);
  }
  raw.close();
  log.close();
  const rate = (n: number, t: number) => Math.round(n / (t / 1000));
  console.log(
    `appends: ${APPENDS} events (~${Math.round(JSON.stringify(events[events.length - 1]!.object).length)} bytes each), batch ${BATCH}, synchronous=FULL, batches interleaved`,
  );
  console.log(`  raw better-sqlite3 baseline: ${rawMs.toFixed(0)} ms (${rate(APPENDS, rawMs)} events/s)`);
  console.log(
    `  EventLog.appendEvents:       ${logMs.toFixed(0)} ms (${rate(APPENDS, logMs)} events/s), ratio ${(logMs / rawMs).toFixed(2)}x baseline`,
  );
}

async function replayBench(): Promise<void> {
  const file = path.join(dir, 'replay.db');
  const log = await EventLog.open({ file, sync: 'normal' });
  let t0 = performance.now();
  const GEN = 10_000;
  for (let b = 0; b < REPLAY; b += GEN)
    log.appendEvents(Array.from({ length: Math.min(GEN, REPLAY - b) }, (_, k) => event(b + k)));
  console.log(
    `replay: generated ${REPLAY} events (${SERVICES} services, ${SERVICES} slices rewritten ~${Math.round(REPLAY / SERVICES)}x each) in ${ms(t0).toFixed(0)} ms, file ${(fs.statSync(file).size / 1e6).toFixed(0)} MB`,
  );
  // Baseline: read every row and JSON.parse its object, nothing else.
  t0 = performance.now();
  let n = 0;
  // A second, read-only handle on the same file: the log's own handle stays private to libs/eventlog.
  const raw = new Database(file, { readonly: true });
  for (const r of raw
    .prepare('SELECT seq, kind, type, namespace, name, object FROM events ORDER BY seq')
    .iterate() as Iterable<{ object: string }>) {
    if (JSON.parse(r.object)) n++;
  }
  raw.close();
  const scanMs = ms(t0);
  console.log(`  raw scan + JSON.parse baseline:   ${scanMs.toFixed(0)} ms (${n} rows)`);
  t0 = performance.now();
  const fold = rebuildAtSeq(log, REPLAY);
  const foldMs = ms(t0);
  console.log(
    `  replay from empty (folded):        ${foldMs.toFixed(0)} ms, ${fold.eventsApplied} objects applied, ratio ${(foldMs / scanMs).toFixed(2)}x baseline`,
  );
  t0 = performance.now();
  const seq = rebuildAtSeq(log, REPLAY, { sequential: true });
  const seqMs = ms(t0);
  console.log(
    `  replay from empty (every event):   ${seqMs.toFixed(0)} ms, ratio ${(seqMs / scanMs).toFixed(2)}x baseline, same hash: ${seq.hash === fold.hash}`,
  );
  // A checkpoint 10k events before the end: what replay of a recent version costs.
  const mid = REPLAY - 10_000;
  const st = rebuildAtSeq(log, mid).state;
  t0 = performance.now();
  log.checkpoint(st, { seq: mid });
  const cpMs = ms(t0);
  t0 = performance.now();
  const fromCp = rebuildAtSeq(log, REPLAY);
  const cpReplayMs = ms(t0);
  console.log(`  checkpoint write (${st.objectCount} objects): ${cpMs.toFixed(0)} ms`);
  console.log(
    `  replay from checkpoint + 10k events: ${cpReplayMs.toFixed(0)} ms, ratio ${(cpReplayMs / scanMs).toFixed(2)}x baseline, same hash: ${fromCp.hash === fold.hash}`,
  );
  log.close();
}

try {
  if (APPENDS > 0) await appendBench();
  if (REPLAY > 0) await replayBench();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
