/**
 * Ingestion benchmark: the real planner reading a (test) Kubernetes API.
 *
 *   npx tsx bench/ingest/ingest-bench.ts [--services 10000] [--endpoints 10] [--nodes 100]
 *        [--rounds 30] [--bursts 10] [--burst-size 50] [--steady 300] [--steady-interval-ms 10] [--out file.json] [--cpu-prof DIR] [--profile DIR]
 *        [--planner-flag --trace-gc ...] [--build]
 *
 * --build: both measured children (the bare informer's and the planner's) run bundled as
 * scripts/build.mjs bundles what bin/switchboard runs (esbuild, no keepNames, through
 * bench/applier/build-bench.mjs into .cache/bench-ingest/), with plain node, instead of under
 * tsx, whose transform adds a defineProperty call per named closure that the shipped build does
 * not make. The fetch+parse child runs under tsx either way (it runs none of our code).
 *
 * This process hosts test/support's KubeApiServer (objects created through its TS control API
 * from bench/planner/generate-cluster.ts) and a real nats-server (test/support/nats-server.ts).
 * The planner (services/planner runPlanner, temp SQLite db, --kubeconfig at the test server) runs
 * in its own child process so its memory is its own.
 *
 * Both children are forked alike (--import tsx) and time from their module body's first line, i.e.
 * after their own imports load; fork → synced (module load included) is reported for both too.
 *
 * 1. Scale: planner start → synced (= first version recorded and published; the planner records
 *    version 1 inside the same serial step that resolves `synced`), events logged, memory, DB size.
 *    Baselines in the same run, each in a fresh child: raw fetch + JSON.parse of the three
 *    collections (limit=500 pages), and a bare ClusterInformer with a no-op sink to synced.
 * 2. Churn, against the running planner: endpoint changes, Node status-only heartbeats,
 *    annotation-only Service updates, real Service changes, and edit-then-revert pairs.
 *    Latency: server write → version delta received on NATS (sb.v.delta.<n>, i.e. recorded in
 *    the log AND published), versus server write → event in a bare informer sink running in this
 *    process (same client code, no planner). Then bursts and a steady stream for the
 *    events → versions ratio.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import Database from 'better-sqlite3';
import { ClusterInformer, loadKubeConfig } from '../../libs/kube/index.ts';
import { KubeApiServer, type KubeObject } from '../../test/support/kube-api-server/index.ts';
import { writeKubeconfig } from '../../test/support/kubeconfig.ts';
import { startNatsServer, type NatsServerHandle } from '../../test/support/nats-server.ts';
import { generateCluster, makeSlice } from '../planner/generate-cluster.ts';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '30' },
    bursts: { type: 'string', default: '10' },
    'burst-size': { type: 'string', default: '50' },
    steady: { type: 'string', default: '300' },
    'steady-interval-ms': { type: 'string', default: '10' },
    'debounce-ms': { type: 'string' },
    /** Writes a V8 CPU profile of the planner child into this directory when it exits. */
    'cpu-prof': { type: 'string' },
    /**
     * Profiles the planner child from start to synced only (inspector CPU profile + GC entries,
     * see planner-child.ts) into this directory; summarise with bench/ingest/profile-summary.ts.
     */
    profile: { type: 'string' },
    /** Extra node flags for the planner child only (e.g. --trace-gc); repeatable. */
    'planner-flag': { type: 'string', multiple: true },
    /** Runs the informer's and the planner's children bundled as shipped (see the header). */
    build: { type: 'boolean', default: false },
    /**
     * Every child runs from DIR/<child>.mjs with plain node: bundles that
     * bench/build-portable.mjs made, for a machine without this repo's node_modules.
     */
    'children-dir': { type: 'string' },
    out: { type: 'string' },
  },
});
const S = Number(values.services),
  E = Number(values.endpoints),
  N = Number(values.nodes);
const ROUNDS = Number(values.rounds),
  BURSTS = Number(values.bursts),
  BURST_SIZE = Number(values['burst-size']);
const STEADY = Number(values.steady),
  STEADY_MS = Number(values['steady-interval-ms']);
/** Passed to runPlanner's debounceMs; unset = the planner's default (30 ms). */
const DEBOUNCE = values['debounce-ms'] === undefined ? undefined : Number(values['debounce-ms']);

const here = path.dirname(fileURLToPath(import.meta.url));
const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(s.length * p) - 1))]!;
};
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '—');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '—');
const log = (...a: unknown[]) => console.log(...a);

type Msg = Record<string, unknown> & { op: string };

// ---- children ------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
/** --build: the children's bundles, made once per run (file.ts → .cache/bench-ingest/file.mjs). */
const bundled = new Map<string, string>();
function bundle(file: string): string {
  let out = bundled.get(file);
  if (out) return out;
  out = path.resolve(here, '../../.cache/bench-ingest', file.replace(/\.ts$/, '.mjs'));
  execFileSync(process.execPath, [path.join(here, '../applier/build-bench.mjs'), out, path.join(here, file)], {
    stdio: 'inherit',
  });
  // the console's static files travel beside the bundle, as scripts/build.mjs copies them into dist/
  cpSync(path.resolve(here, '../../services/console/static'), path.join(path.dirname(out), 'console-static'), {
    recursive: true,
  });
  bundled.set(file, out);
  return out;
}
function forkChild(file: string, arg: unknown, extraExecArgv: string[] = [], asBuilt = false): ChildProcess {
  const portable = values['children-dir'];
  const script = portable
    ? path.resolve(portable, file.replace(/\.ts$/, '.mjs'))
    : asBuilt
      ? bundle(file)
      : path.join(here, file);
  const c = fork(script, [JSON.stringify(arg)], {
    execArgv: [...(asBuilt || portable ? [] : ['--import', 'tsx']), '--expose-gc', ...extraExecArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}
function nextMessage(c: ChildProcess, want: string, timeoutMs: number): Promise<Msg> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`child: no '${want}' within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMsg = (m: Msg) => {
      if (m.op === 'error') {
        cleanup();
        reject(new Error(`child error: ${String(m.message)}`));
      } else if (m.op === want) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited (${code}) before '${want}'`));
    };
    const cleanup = () => {
      clearTimeout(t);
      c.off('message', onMsg);
      c.off('exit', onExit);
    };
    c.on('message', onMsg);
    c.once('exit', onExit);
  });
}
async function killChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise<void>((r) => c.once('exit', () => r()));
  if (c.connected) c.send({ op: 'stop' });
  const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}
async function baseline(mode: 'fetch' | 'informer', server: string, kubeconfig: string): Promise<Msg> {
  const tFork = now();
  const c = forkChild('baseline-child.ts', { mode, server, kubeconfig }, [], mode === 'informer' && values.build);
  try {
    return { ...(await nextMessage(c, 'done', 600_000)), tFork };
  } finally {
    await killChild(c);
  }
}

// ---- run -----------------------------------------------------------------------------------

const tmp = mkdtempSync(path.join(tmpdir(), 'sb-ingest-'));
let server: KubeApiServer | undefined;
let nats: NatsServerHandle | undefined;
let nc: NatsConnection | undefined;
let informer: ClusterInformer | undefined;
let planner: ChildProcess | undefined;
const result: Record<string, unknown> = {
  command:
    `${values['children-dir'] ? `node ${path.basename(process.argv[1]!)}` : 'npx tsx bench/ingest/ingest-bench.ts'} ${process.argv.slice(2).join(' ')}`.trim(),
  node: process.version,
  cpus: availableParallelism(),
  loadavgAtStart: loadavg().map((x) => +x.toFixed(2)),
  size: { services: S, endpointsPerService: E, nodes: N },
  debounceMs: DEBOUNCE ?? 'default (30)',
  // --build: the informer's and the planner's children ran bundled as shipped, with plain node
  bundled: values.build || values['children-dir'] !== undefined,
};

async function cleanup(): Promise<void> {
  for (const c of [...children]) await killChild(c).catch(() => {});
  await informer?.stop().catch(() => {});
  await nc?.close().catch(() => {});
  await nats?.stop().catch(() => {});
  await server?.stop().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));

async function main(): Promise<void> {
  // -- load the test API server
  server = await KubeApiServer.start();
  const gen = generateCluster({ services: S, endpointsPerService: E, nodes: N });
  let t = now();
  for (const o of gen.nodes) server.create('Node', o as KubeObject);
  for (const o of gen.services) server.create('Service', stripRv(o));
  for (const o of gen.slices) server.create('EndpointSlice', stripRv(o));
  log(
    `loaded ${gen.nodes.length} nodes, ${gen.services.length} services, ${gen.slices.length} slices (${S * E} endpoints) into the test server in ${f1(now() - t)} ms; rv ${server.resourceVersion}`,
  );
  const kc = await writeKubeconfig({ server: server.url, dir: tmp });

  // -- baselines (fresh processes), before the planner
  const fetch1 = await baseline('fetch', server.url, kc.path);
  log(
    `baseline fetch+parse: ${f1(Number(fetch1.tDone) - Number(fetch1.tStart))} ms, ${fetch1.objects} objects, ${(Number(fetch1.bytes) / 1048576).toFixed(1)} MB JSON, rss ${f1(Number(fetch1.rssAfterGcMb))} MB heap ${f1(Number(fetch1.heapUsedAfterGcMb))} MB`,
  );
  const infConnections0 = server.connectionsAccepted;
  const inf1 = await baseline('informer', server.url, kc.path);
  const infConnections = server.connectionsAccepted - infConnections0;
  log(
    `baseline bare informer: ${f1(Number(inf1.tDone) - Number(inf1.tStart))} ms to synced (fork → synced ${f1(Number(inf1.tDone) - Number(inf1.tFork))} ms), rss ${f1(Number(inf1.rssAfterGcMb))} MB heap ${f1(Number(inf1.heapUsedAfterGcMb))} MB`,
  );

  const disk = durableCommitProbe(tmp);
  log(
    `disk: one durable single-row SQLite txn ${f2(disk.singleRowTxnMs)} ms; per row inside one ${300}-row txn ${f2(disk.rowInBatchMs)} ms`,
  );

  // -- NATS + the planner
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url, name: 'ingest-bench-observer' });
  const versionSeen = new Map<number, number>();
  let lastVersion = 0;
  const sub = nc.subscribe('sb.v.delta.*');
  void (async () => {
    for await (const m of sub) {
      const v = Number(m.subject.split('.')[3]);
      if (!versionSeen.has(v)) versionSeen.set(v, now());
      lastVersion = Math.max(lastVersion, v);
    }
  })();
  await nc.flush();

  const db = path.join(tmp, 'planner.db');
  const plannerConnections0 = server.connectionsAccepted;
  const plannerRequests0 = server.requests.length;
  t = now();
  planner = forkChild(
    'planner-child.ts',
    {
      kubeconfig: kc.path,
      nats: nats.url,
      db,
      debounceMs: DEBOUNCE,
      profileDir: values.profile && path.resolve(values.profile),
    },
    [
      ...(values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']] : []),
      ...(values['planner-flag'] ?? []),
    ],
    values.build,
  );
  const ready = await nextMessage(planner, 'ready', 1_800_000);
  // TCP connections the API server accepted from start to synced (each list page opened one
  // before the client kept its connections: issue 15 item 4, eleventh round).
  const plannerConnections = server.connectionsAccepted - plannerConnections0;
  // When the API server saw the planner's first LIST (its clock: Date.now(), as the child's tStart)
  const firstList = server.requests.slice(plannerRequests0).find((r) => r.verb === 'list');
  const v1Seen = versionSeen.get(1);
  const plannerMs = Number(ready.tSynced) - Number(ready.tStart);
  const fetchMs = Number(fetch1.tDone) - Number(fetch1.tStart);
  const infMs = Number(inf1.tDone) - Number(inf1.tStart);
  log(
    `planner: start → synced ${f1(plannerMs)} ms (fork → synced ${f1(Number(ready.tSynced) - t)} ms), v1 on NATS at +${f1((v1Seen ?? NaN) - Number(ready.tStart))} ms, events ${ready.eventsLogged}, db ${(Number(ready.dbBytes) / 1048576).toFixed(1)} MB, rss ${f1(Number(ready.rssAfterGcMb))} MB heap ${f1(Number(ready.heapUsedAfterGcMb))} MB`,
  );

  const fetch2 = await baseline('fetch', server.url, kc.path);
  const fetch2Ms = Number(fetch2.tDone) - Number(fetch2.tStart);
  result.scale = {
    baselineFetchParse: {
      ms: fetchMs,
      msAfterPlanner: fetch2Ms,
      objects: fetch1.objects,
      jsonMb: Number(fetch1.bytes) / 1048576,
      pages: fetch1.pages,
      cpuMs: fetch1.cpuMs,
      rssAfterGcMb: fetch1.rssAfterGcMb,
      heapUsedAfterGcMb: fetch1.heapUsedAfterGcMb,
      maxRssMb: fetch1.maxRssMb,
    },
    bareInformer: {
      ms: infMs,
      forkToSyncedMs: Number(inf1.tDone) - Number(inf1.tFork),
      events: inf1.objects,
      apiConnections: infConnections,
      cpuMs: inf1.cpuMs,
      rssAfterGcMb: inf1.rssAfterGcMb,
      heapUsedAfterGcMb: inf1.heapUsedAfterGcMb,
      maxRssMb: inf1.maxRssMb,
    },
    diskProbe: disk,
    planner: {
      startToSyncedMs: plannerMs,
      forkToSyncedMs: Number(ready.tSynced) - t,
      startToRunPlannerReturnedMs: Number(ready.tRunning) - Number(ready.tStart),
      startToFirstListRequestMs: firstList ? firstList.at - Number(ready.tStart) : null,
      startToFirstVersionRecordedMs: ready.firstVersion
        ? (ready.firstVersion as { createdAt: number }).createdAt - Number(ready.tStart)
        : null,
      startToFirstVersionOnNatsMs: v1Seen !== undefined ? v1Seen - Number(ready.tStart) : null,
      cpuMs: ready.startCpuMs,
      gc: ready.startGc,
      execArgv: ready.execArgv,
      apiConnections: plannerConnections,
      eventsLogged: ready.eventsLogged,
      versions: ready.versions,
      dbBytes: ready.dbBytes,
      dbMainBytes: ready.dbMainBytes,
      dbWalBytes: ready.dbWalBytes,
      rssMb: ready.rssMb,
      heapUsedMb: ready.heapUsedMb,
      rssAfterGcMb: ready.rssAfterGcMb,
      heapUsedAfterGcMb: ready.heapUsedAfterGcMb,
      maxRssMb: ready.maxRssMb,
    },
    ratios: {
      plannerSyncedVsFetchParse: plannerMs / Math.min(fetchMs, fetch2Ms),
      plannerSyncedVsBareInformer: plannerMs / infMs,
      // Both children are forked the same way (node --import tsx); this includes loading each one's modules.
      plannerForkToSyncedVsBareInformer: (Number(ready.tSynced) - t) / (Number(inf1.tDone) - Number(inf1.tFork)),
      bareInformerVsFetchParse: infMs / Math.min(fetchMs, fetch2Ms),
      plannerSyncedVsOneDurableTxnPerEvent: plannerMs / (Number(ready.eventsLogged) * disk.singleRowTxnMs),
      plannerCpuVsFetchCpu: Number(ready.startCpuMs) / Number(fetch1.cpuMs),
      plannerRssVsFetchRss: Number(ready.rssAfterGcMb) / Number(fetch1.rssAfterGcMb),
      plannerRssVsInformerRss: Number(ready.rssAfterGcMb) / Number(inf1.rssAfterGcMb),
      plannerHeapVsFetchHeap: Number(ready.heapUsedAfterGcMb) / Number(fetch1.heapUsedAfterGcMb),
      plannerHeapVsInformerHeap: Number(ready.heapUsedAfterGcMb) / Number(inf1.heapUsedAfterGcMb),
    },
  };

  // -- bare informer sink in this process (churn baseline): rv → arrival time
  const sinkSeen = new Map<string, number>();
  let sinkEvents = 0;
  informer = new ClusterInformer({
    kubeConfig: await loadKubeConfig({ kubeconfig: kc.path }),
    sink: (e) => {
      sinkEvents += 1;
      if (!e.relist) sinkSeen.set(e.resourceVersion, now());
    },
  });
  informer.start();
  await informer.synced;

  const stats = async (): Promise<Msg> => {
    planner!.send({ op: 'stats' });
    return nextMessage(planner!, 'stats', 60_000);
  };
  const waitFor = async (cond: () => boolean, timeoutMs: number): Promise<boolean> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (cond()) return true;
      if (Date.now() > end) return false;
      await sleep(1); // the observers are in this process' event loop: yielding lets them run
    }
  };

  // -- churn operations (through the server's TS control API)
  const sliceGen = new Array<number>(S).fill(0);
  let touch = 0;
  const ns = (s: number) => `ns-${s % 50}`;
  const ops = {
    endpoint: (s: number): string[] => {
      sliceGen[s]! += 1;
      return [
        server!.update('EndpointSlice', stripRv(makeSlice(ns(s), s, E, N, sliceGen[s]!, s % 4 === 0))).metadata
          .resourceVersion!,
      ];
    },
    heartbeat: (s: number): string[] => {
      const name = `node-${s % N}`;
      const cur = server!.get('Node', { name })!;
      const status = {
        ...(cur.status as object),
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'KubeletReady',
            lastHeartbeatTime: new Date(Date.now() + touch++).toISOString(),
          },
        ],
      };
      return [server!.patchStatus('Node', { name }, status).metadata.resourceVersion!];
    },
    annotation: (s: number): string[] => {
      const cur = server!.get('Service', { namespace: ns(s), name: `svc-${s}` })!;
      cur.metadata.annotations = {
        ...(cur.metadata.annotations as object | undefined),
        'bench.switchboard/touch': String(touch++),
      };
      return [server!.update('Service', cur).metadata.resourceVersion!];
    },
    service: (s: number): string[] => {
      const cur = server!.get('Service', { namespace: ns(s), name: `svc-${s}` })!;
      const spec = cur.spec as { ports: { port: number }[] };
      spec.ports[0]!.port = spec.ports[0]!.port === 80 ? 81 : 80;
      return [server!.update('Service', cur).metadata.resourceVersion!];
    },
    revert: (s: number): string[] => {
      const g = sliceGen[s]!;
      const a = server!.update('EndpointSlice', stripRv(makeSlice(ns(s), s, E, N, g + 1, s % 4 === 0))).metadata
        .resourceVersion!;
      const b = server!.update('EndpointSlice', stripRv(makeSlice(ns(s), s, E, N, g, s % 4 === 0))).metadata
        .resourceVersion!;
      return [a, b];
    },
  } satisfies Record<string, (s: number) => string[]>;
  type OpName = keyof typeof ops;
  const expectsVersion: Record<OpName, boolean> = {
    endpoint: true,
    heartbeat: false,
    annotation: false,
    service: true,
    revert: false,
  };
  const names = Object.keys(ops) as OpName[];
  let pick = 0;
  const nextService = () => (pick = (pick * 7919 + 104729) % S);

  // -- 2a. one operation at a time: latency
  const before = await stats();
  const lat: Record<OpName, { sink: number[]; version: number[]; versions: number; writes: number }> =
    Object.fromEntries(names.map((n) => [n, { sink: [], version: [], versions: 0, writes: 0 }])) as never;
  const sinkEvents0 = sinkEvents;
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of names) {
      const v0 = lastVersion;
      const t0 = now();
      const rvs = ops[name](nextService());
      lat[name].writes += rvs.length;
      const last = rvs.at(-1)!;
      await waitFor(() => sinkSeen.has(last), 10_000);
      const got = await waitFor(() => lastVersion > v0, expectsVersion[name] ? 10_000 : 300);
      const ts = sinkSeen.get(last);
      if (ts !== undefined) lat[name].sink.push(ts - t0);
      if (got) {
        lat[name].version.push(versionSeen.get(v0 + 1)! - t0);
        await sleep(50); // let a trailing second version (if any) land before it is counted
        lat[name].versions += lastVersion - v0;
      }
    }
  }
  const after = await stats();
  const single = Object.fromEntries(
    names.map((n) => {
      const l = lat[n];
      return [
        n,
        {
          ops: ROUNDS,
          writes: l.writes,
          versions: l.versions,
          sinkP50: pct(l.sink, 0.5),
          sinkP99: pct(l.sink, 0.99),
          versionP50: pct(l.version, 0.5),
          versionP99: pct(l.version, 0.99),
          ratioP50: pct(l.version, 0.5) / pct(l.sink, 0.5),
          ratioP99: pct(l.version, 0.99) / pct(l.sink, 0.99),
        },
      ];
    }),
  );
  const allSink = names.flatMap((n) => lat[n].sink);
  const allVer = names.flatMap((n) => lat[n].version);
  result.churnSingle = {
    perOp: single,
    eventsLogged: Number(after.eventsLogged) - Number(before.eventsLogged),
    writes: names.reduce((a, n) => a + lat[n].writes, 0),
    sinkEvents: sinkEvents - sinkEvents0,
    versions: Number(after.latestVersion) - Number(before.latestVersion),
    versionLatencyAll: { p50: pct(allVer, 0.5), p99: pct(allVer, 0.99), n: allVer.length },
    sinkLatencyAll: { p50: pct(allSink, 0.5), p99: pct(allSink, 0.99), n: allSink.length },
    plannerCpuMs:
      Number(after.cpuUserMs) + Number(after.cpuSystemMs) - Number(before.cpuUserMs) - Number(before.cpuSystemMs),
  };
  log(
    'single ops:',
    JSON.stringify(result.churnSingle, (_k, v) => (typeof v === 'number' ? +v.toFixed(2) : v)),
  );

  // -- 2b. bursts: BURST_SIZE mixed writes in one tick, then quiet
  const b0 = await stats();
  const burstLat: number[] = [];
  const burstSink: number[] = [];
  let burstWrites = 0;
  for (let b = 0; b < BURSTS; b++) {
    const v0 = lastVersion;
    const t0 = now();
    let last = '';
    for (let i = 0; i < BURST_SIZE; i++) {
      const rvs = ops[names[i % names.length]!](nextService());
      burstWrites += rvs.length;
      last = rvs.at(-1)!;
    }
    const tEnd = now();
    await waitFor(() => sinkSeen.has(last), 10_000);
    burstSink.push(sinkSeen.get(last)! - tEnd);
    if (await waitFor(() => lastVersion > v0, 10_000)) burstLat.push(versionSeen.get(lastVersion)! - tEnd);
    await sleep(300);
  }
  const b1 = await stats();
  result.churnBursts = {
    bursts: BURSTS,
    burstSize: BURST_SIZE,
    writes: burstWrites,
    eventsLogged: Number(b1.eventsLogged) - Number(b0.eventsLogged),
    versions: Number(b1.latestVersion) - Number(b0.latestVersion),
    lastWriteToSinkP50: pct(burstSink, 0.5),
    lastWriteToSinkP99: pct(burstSink, 0.99),
    lastWriteToVersionP50: pct(burstLat, 0.5),
    lastWriteToVersionP99: pct(burstLat, 0.99),
    plannerCpuMsPerEvent:
      (Number(b1.cpuUserMs) + Number(b1.cpuSystemMs) - Number(b0.cpuUserMs) - Number(b0.cpuSystemMs)) /
      (Number(b1.eventsLogged) - Number(b0.eventsLogged)),
  };
  log(
    'bursts:',
    JSON.stringify(result.churnBursts, (_k, v) => (typeof v === 'number' ? +v.toFixed(2) : v)),
  );

  // -- 2c. steady stream: one endpoint change every STEADY_MS ms (longer than nothing, shorter than the debounce?)
  const s0 = await stats();
  const vStart = lastVersion;
  const tS = now();
  const firstVersionDuring: number[] = [];
  for (let i = 0; i < STEADY; i++) {
    ops.endpoint(nextService());
    if (lastVersion > vStart && firstVersionDuring.length === 0) firstVersionDuring.push(now() - tS);
    await sleep(STEADY_MS);
  }
  const tStreamEnd = now();
  const versionsDuring = lastVersion - vStart;
  await waitFor(() => lastVersion > vStart + versionsDuring, 10_000);
  await sleep(300);
  const s1 = await stats();
  result.churnSteady = {
    writes: STEADY,
    intervalMs: STEADY_MS,
    streamMs: tStreamEnd - tS,
    versionsDuringStream: versionsDuring,
    versionsTotal: Number(s1.latestVersion) - Number(s0.latestVersion),
    firstVersionAfterStreamStartMs: firstVersionDuring[0] ?? null,
    eventsLogged: Number(s1.eventsLogged) - Number(s0.eventsLogged),
    streamEndToLastVersionMs: (versionSeen.get(lastVersion) ?? NaN) - tStreamEnd,
  };
  log(
    'steady:',
    JSON.stringify(result.churnSteady, (_k, v) => (typeof v === 'number' ? +v.toFixed(2) : v)),
  );

  // -- sanity: the planner's informers reached the server's last RV; nothing relisted or failed
  const fin = await stats();
  const kinds = fin.kinds as { rv?: string; relists: number; errors: number }[];
  result.final = {
    serverRv: server.resourceVersion,
    plannerMaxRv: Math.max(...kinds.map((k) => Number(k.rv ?? 0))),
    kinds,
    plannerError: fin.errors,
    eventsLogged: fin.eventsLogged,
    versions: fin.latestVersion,
    dbBytes: fin.dbBytes,
    rssAfterGcMb: fin.rssAfterGcMb,
    heapUsedAfterGcMb: fin.heapUsedAfterGcMb,
    maxRssMb: fin.maxRssMb,
  };
  result.loadavgAtEnd = loadavg().map((x) => +x.toFixed(2));
  log('final:', JSON.stringify(result.final));
}

/**
 * Disk baseline: one durable (WAL, synchronous=FULL) single-row transaction, and the same rows
 * in one transaction, with better-sqlite3 on the same filesystem as the planner's db.
 */
function durableCommitProbe(dir: string, n = 300): { singleRowTxnMs: number; rowInBatchMs: number } {
  const db = new Database(path.join(dir, 'probe.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)');
    const ins = db.prepare('INSERT INTO t (b) VALUES (?)');
    const row = 'x'.repeat(700);
    const one = db.transaction(() => ins.run(row));
    let t = performance.now();
    for (let i = 0; i < n; i++) one();
    const singleRowTxnMs = (performance.now() - t) / n;
    const many = db.transaction(() => {
      for (let i = 0; i < n; i++) ins.run(row);
    });
    t = performance.now();
    many();
    return { singleRowTxnMs, rowInBatchMs: (performance.now() - t) / n };
  } finally {
    db.close();
    rmSync(path.join(dir, 'probe.db'), { force: true });
    rmSync(path.join(dir, 'probe.db-wal'), { force: true });
    rmSync(path.join(dir, 'probe.db-shm'), { force: true });
  }
}

function stripRv(o: unknown): KubeObject {
  const k = o as KubeObject;
  const { resourceVersion: _rv, ...metadata } = k.metadata;
  return { ...k, metadata };
}

try {
  await main();
  const text = JSON.stringify(result, (_k, v) => (typeof v === 'number' ? +v.toFixed(3) : v), 2);
  if (values.out) writeFileSync(values.out, `${text}\n`);
  log(text);
} catch (e) {
  console.error('ingest bench failed:', e);
  process.exitCode = 1;
} finally {
  await cleanup();
}
// Our own handles (watch streams, NATS) are closed; exit even if a library keeps a timer.
process.exit(process.exitCode ?? 0);
