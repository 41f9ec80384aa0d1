/**
 * Fan-out bench: event → all nodes ACKed, versus the raw core-NATS publish → reply floor to the
 * same connections, in the same run. Usage:
 *   npx tsx bench/fanout/run-fanout.ts [--nodes 100,1000] [--events 40] [--workers 4] [--services 50] [--warmup 0] [--cpu-prof DIR] [--out FILE] [--signed 1]
 * (--warmup K: unmeasured events first, until each worker process has handled K node-events;
 * --applier-v8 0: the workers run without the V8 flags the applier process sets;
 * --build 1: the workers run bundled as scripts/build.mjs bundles what bin/switchboard runs
 * (esbuild, no keepNames; .cache/bench-fanout/), with plain node, instead of under tsx, whose
 * transform adds a defineProperty call per named closure made, which the shipped applier does not.)
 * (--worker-script FILE: the workers run from FILE with plain node, a bundle that
 * bench/fanout/build-portable.mjs made, for a machine without this repo's node_modules.)
 * (--cpu-prof DIR: each applier worker process writes a V8 CPU profile of the events window only,
 * from the first counters read to the last, into DIR; summarize with bench/fanout/profile-summary.ts.)
 * Prints a markdown table (ratios against the floor) and writes JSON to FILE (default bench/fanout/last-run.json).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { generateKeyPairSync } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { AckCollector, signerFromKey, TargetStore, VersionPublisher } from '../../libs/bus/index.ts';
import { startCpuProfile } from '../cpu-profile.ts';
import { startNatsServer } from '../../test/support/nats-server.ts';
import { node, service, VersionMaker } from '../../test/libs/bus/fixtures.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const nodeCounts = (args.get('nodes') ?? '100,1000').split(',').map(Number);
const events = Number(args.get('events') ?? 40);
const workers = Number(args.get('workers') ?? 4);
const services = Number(args.get('services') ?? 50);
/** `--signed 1`: the planner signs (Ed25519) and every applier verifies, as with --signing-key/--planner-key. */
const signed = args.get('signed') === '1';
const signer = signed ? signerFromKey(generateKeyPairSync('ed25519').privateKey) : undefined;
const cpuProf = args.get('cpu-prof');
if (cpuProf) mkdirSync(cpuProf, { recursive: true }); // the workers and the planner side write their profiles there
/** Node-events each worker process handles before the measured events (unmeasured; 0 = none). */
const warmupNodeEvents = Number(args.get('warmup') ?? 0);
/** `--applier-v8 0`: the workers run without the applier process's V8 flags (services/applier/v8-tiering.ts). */
const applierV8 = args.get('applier-v8') !== '0';
const outFile = args.get('out');
const here = path.dirname(fileURLToPath(import.meta.url));
/** `--build 1`: the applier workers run as shipped (bundled, no keepNames), not under tsx's transform. */
const built = args.get('build') === '1';
/** How a worker process starts: node's arguments before the worker's own. */
const workerScript = args.get('worker-script');
const workerEntry = workerScript
  ? [path.resolve(workerScript)]
  : built
    ? bundledWorker()
    : ['--import', 'tsx', path.join(here, 'fanout-worker.ts')];

function bundledWorker(): string[] {
  // Inside the repo, so npm packages resolve from its node_modules (kept external, as shipped).
  const out = path.resolve(here, '../../.cache/bench-fanout/fanout-worker.mjs');
  const bundler = path.resolve(here, '../applier/build-bench.mjs'); // the shipped-build options
  execFileSync(process.execPath, [bundler, out, path.join(here, 'fanout-worker.ts')], { stdio: 'inherit' });
  return [out];
}

interface Stats {
  p50: number;
  p99: number;
  max: number;
  mean: number;
}
const stats = (xs: number[]): Stats => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { p50: q(0.5), p99: q(0.99), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
};

async function runScale(n: number): Promise<Record<string, unknown>> {
  const server = await startNatsServer({ jetstream: true, config: 'max_payload: 8MB' });
  const children: ChildProcess[] = [];
  try {
    const nc = await connect({ servers: server.url, name: 'bench-planner' });
    const publisher = await VersionPublisher.open({ nc, checkpointEvery: 50, signer });
    const targets = await TargetStore.open({ nc, signer });
    const m = new VersionMaker();
    const publish = async (delta: Parameters<VersionMaker['next']>[0]) => {
      const t0 = performance.now();
      const v = m.next(delta);
      const r = await publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
      const stored = performance.now() - t0; // the delta's store acknowledgement, before the notice
      // as NatsPlannerBus does: the notice carries the delta the stream just stored
      await targets.setDefaultTarget(
        { version: v.delta.version, configRevision: 0 },
        publisher.storedDelta(v.delta.version),
      );
      return { version: v.delta.version, bytes: r.reduce((s, x) => s + x.bytes, 0), storedMs: stored };
    };
    const nodes = Array.from({ length: n }, (_, i) => node(`node-${i}`));
    await publish({ upsertServices: Array.from({ length: services }, (_, i) => service(i, 5)), upsertNodes: nodes });

    const fetchMs: number[] = [];
    // every ACK's arrival after its event's start, and each event's first: measured events only
    // (`measuredVersion` is the one in flight; warm-up events set none)
    const ackArrivalMs: number[] = [];
    const firstAckMs: number[] = [];
    let measuredVersion = 0;
    let firstSeen = 0;
    const publishMs: number[] = [];
    const deltaStoredMs: number[] = [];
    let eventStart = 0;
    const acked = new Map<number, { count: number; done: () => void }>();
    let startupNacks = 0;
    let failed: (e: Error) => void = () => {};
    const failure = new Promise<never>((_, rej) => {
      failed = rej;
    });
    failure.catch(() => {});
    const collector = await AckCollector.start({
      nc,
      callbacks: {
        onAck: (a) => {
          const w = acked.get(a.version);
          if (w && a.version === measuredVersion) {
            const at = performance.now() - eventStart;
            fetchMs.push(a.timings.fetchMs);
            ackArrivalMs.push(at);
            if (firstSeen !== a.version) {
              firstSeen = a.version;
              firstAckMs.push(at);
            }
          }
          if (w && ++w.count === n) w.done();
        },
        onNack: (x) => {
          // the first version (each node fetches the checkpoint) may time out on a loaded host:
          // the session retries it; a NACK of a measured event ends the run
          if (x.version === 1) startupNacks++;
          else failed(new Error(`NACK from ${x.node}: ${x.error}`));
        },
      },
    });
    // a version not ACKed by all in time (120 s; 300 s for the first) ends the run with the count, instead of waiting forever
    const waitAll = (version: number) =>
      Promise.race([
        failure,
        new Promise<void>((done, fail) => {
          const w = { count: 0, done: () => (clearTimeout(t), done()) };
          const limitS = version === 1 ? 300 : 120; // the first: every node loads the checkpoint
          const t = setTimeout(
            () => fail(new Error(`version ${version}: ${w.count} of ${n} appliers ACKed after ${limitS} s`)),
            limitS * 1000,
          );
          acked.set(version, w);
        }),
      ]);
    const firstAll = waitAll(1);

    const t0 = performance.now();
    const per = Math.ceil(n / workers);
    await Promise.all(
      Array.from({ length: workers }, (_, w) => {
        const count = Math.min(per, n - w * per);
        if (count <= 0) return Promise.resolve();
        const p = spawn(
          process.execPath,
          [
            ...workerEntry,
            server.url,
            String(count),
            String(w * per),
            signer?.publicKeyPem ?? '',
            cpuProf ?? '',
            applierV8 ? '1' : '0',
          ],
          { stdio: ['pipe', 'pipe', 'inherit'] },
        );
        children.push(p);
        return new Promise<void>((res, rej) => {
          p.once('exit', (c) => rej(new Error(`worker ${w} exited ${c}`)));
          createInterface({ input: p.stdout! }).on('line', (l) => {
            if (l === 'ready') res();
          });
        });
      }),
    );
    await firstAll;
    const startupMs = performance.now() - t0;

    // Unmeasured events first, until each worker process has handled `warmup` node-events: V8
    // optimizes a function only after it has run a while, so the first events of a fresh process
    // measure its JIT (a node's own work is ~4× slower in its first 2,000 events than after them,
    // node-event-bench.ts), not the steady state of an applier that has been running.
    let change = 0;
    const warmupEvents = Math.ceil(warmupNodeEvents / per);
    for (let e = 0; e < warmupEvents; e++) {
      await pingAll(nc, n);
      const all = waitAll(m.version + 1);
      await publish({ upsertServices: [service(change % services, 5, ++change)] });
      await all;
    }

    // interleave the two measurements so drift on this shared machine hits both alike
    const floor: number[] = [];
    const fanout: number[] = [];
    const bytes: number[] = [];
    // CPU per phase (floor pings vs events), read between phases outside the timed windows:
    // the worker processes (every applier and its client), nats-server, and this process (the
    // planner side: publisher, target store, ACK collector)
    const serverPid = natsServerPid(server.storeDir);
    const zero = () => ({ workers: 0, workersSys: 0, server: 0, planner: 0 });
    const phaseCpu = { floor: zero(), fanout: zero() };
    // the appliers' traffic by phase too: the events' own, without the floor's pings between them
    const noTraffic = () => ({ inMsgs: 0, outMsgs: 0, inBytes: 0, outBytes: 0 });
    const phaseTraffic = { floor: noTraffic(), fanout: noTraffic() };
    let traffic = noTraffic();
    const cpuNow = async () => {
      const w = await byteCounters(nc, workers, per, n);
      traffic = { inMsgs: w.inMsgs, outMsgs: w.outMsgs, inBytes: w.inBytes, outBytes: w.outBytes };
      const own = process.cpuUsage();
      return {
        workers: w.cpuMs,
        workersSys: w.sysMs,
        server: processCpuMs(serverPid),
        planner: (own.user + own.system) / 1000,
      };
    };
    const addTraffic = (into: ReturnType<typeof noTraffic>, a: ReturnType<typeof noTraffic>) => {
      for (const k of Object.keys(into) as (keyof typeof into)[]) into[k] += traffic[k] - a[k];
    };
    const addPhase = (into: ReturnType<typeof zero>, a: ReturnType<typeof zero>, b: ReturnType<typeof zero>) => {
      for (const k of Object.keys(into) as (keyof typeof into)[]) into[k] += b[k] - a[k];
    };
    const before = await byteCounters(nc, workers, per, n, true);
    // the planner side's profile (this process), over the same window as the workers'
    const plannerProfile = cpuProf ? await startCpuProfile() : undefined;
    let c0 = await cpuNow();
    let traffic0 = traffic;
    for (let e = 0; e < events; e++) {
      floor.push(await pingAll(nc, n));
      const c1 = await cpuNow();
      addPhase(phaseCpu.floor, c0, c1);
      addTraffic(phaseTraffic.floor, traffic0);
      const traffic1 = traffic;
      const t = performance.now();
      eventStart = t;
      const version = m.version + 1;
      measuredVersion = version;
      const all = waitAll(version);
      const p = await publish({ upsertServices: [service(change % services, 5, ++change)] }); // one endpoint set changes
      publishMs.push(performance.now() - t);
      deltaStoredMs.push(p.storedMs);
      await all;
      fanout.push(performance.now() - t);
      bytes.push(p.bytes);
      const c2 = await cpuNow();
      addPhase(phaseCpu.fanout, c1, c2);
      addTraffic(phaseTraffic.fanout, traffic1);
      c0 = c2;
      traffic0 = traffic;
    }
    const after = await byteCounters(nc, workers, per, n, true);
    if (plannerProfile)
      writeFileSync(
        path.join(cpuProf!, `planner-${n}-${process.pid}.cpuprofile`),
        JSON.stringify(await plannerProfile()),
      );
    collector.stop();
    await nc.close();
    const f = stats(floor);
    const s = stats(fanout);
    return {
      nodes: n,
      events,
      services,
      workers,
      signed,
      startupMs: Math.round(startupMs),
      warmupEvents,
      startupNacks,
      applierV8,
      built: built || workerScript !== undefined,
      host: { cpus: availableParallelism(), node: process.version },
      floorMs: f,
      fanoutMs: s,
      breakdown: {
        plannerPublishMs: stats(publishMs),
        deltaStoredMs: stats(deltaStoredMs),
        applierFetchMs: stats(fetchMs),
        ackArrivalMs: stats(ackArrivalMs),
        firstAckMs: stats(firstAckMs),
      },
      ratio: { p50: s.p50 / f.p50, p99: s.p99 / f.p99, max: s.max / f.max },
      publishedBytesPerEvent: Math.round(bytes.reduce((a, b) => a + b, 0) / bytes.length),
      applierBytesPerEventPerNode: Math.round(
        (after.inBytes + after.outBytes - before.inBytes - before.outBytes) / events / n,
      ),
      // the events' own traffic per node-event (the phases as for the CPU below): messages and
      // bytes into and out of one applier's connection for one event
      applierTrafficPerNodeEvent: Object.fromEntries(
        Object.entries(phaseTraffic).map(([k, v]) => [
          k,
          Object.fromEntries(Object.entries(v).map(([part, x]) => [part, x / events / n])),
        ]),
      ),
      // the three below include the floor's ping (1 in) and pong (1 out) per event
      applierInMsgsPerEventPerNode: (after.inMsgs - before.inMsgs) / events / n,
      applierOutMsgsPerEventPerNode: (after.outMsgs - before.outMsgs) / events / n,
      // CPU of the appliers' processes during the events (also answering the floor's pings)
      applierCpuMsPerEventPerNode: (after.cpuMs - before.cpuMs) / events / n,
      // the same CPU split by phase (ms per event per node): what one ping reply costs against one
      // event, in the appliers' processes, in nats-server and in the planner side (this process);
      // each phase also holds one round of the counter requests that measure it
      cpuMsPerEventPerNode: Object.fromEntries(
        Object.entries(phaseCpu).map(([k, v]) => [
          k,
          Object.fromEntries(Object.entries(v).map(([part, ms]) => [part, ms / events / n])),
        ]),
      ),
      checkpointBytes: JSON.stringify(m.index.toClusterData()).length,
    };
  } finally {
    for (const c of children) c.stdin?.end();
    await Promise.all(
      children.map((c) =>
        c.exitCode !== null
          ? undefined
          : new Promise((r) => {
              c.once('exit', r);
              setTimeout(() => c.kill('SIGKILL'), 10_000);
            }),
      ),
    );
    await server.stop();
  }
}

/** The floor: one core-NATS publish, every connection replies, wait for all replies. */
async function pingAll(nc: NatsConnection, n: number): Promise<number> {
  const inbox = `bench.pong.${Math.random().toString(36).slice(2)}`;
  let got = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => {
    done = r;
  });
  const sub = nc.subscribe(inbox, {
    callback: () => {
      if (++got === n) done();
    },
  });
  await nc.flush();
  const t = performance.now();
  nc.publish('bench.ping', 'x', { reply: inbox });
  await all;
  const ms = performance.now() - t;
  sub.unsubscribe();
  return ms;
}

/** The nats-server process started for `storeDir` (its config file sits beside the store). */
function natsServerPid(storeDir: string): number | undefined {
  const conf = path.join(path.dirname(storeDir), 'server.conf');
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(conf)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** User + system CPU of a process from /proc (clock ticks of 10 ms); NaN where unknown. */
function processCpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10; // utime, stime (fields 14, 15)
}

/** Bytes and messages in+out over all simulated appliers' connections (includes the baseline pings). */
/** `cpuMs`: user + system CPU of the worker processes (every applier and its NATS client); `sysMs` the system part. */
type Counters = { inBytes: number; outBytes: number; inMsgs: number; outMsgs: number; cpuMs: number; sysMs: number };
async function byteCounters(
  nc: NatsConnection,
  workers: number,
  per: number,
  n: number,
  window = false,
): Promise<Counters> {
  const sum: Counters = { inBytes: 0, outBytes: 0, inMsgs: 0, outMsgs: 0, cpuMs: 0, sysMs: 0 };
  for (let w = 0; w < workers && w * per < n; w++) {
    const r = JSON.parse(
      (await nc.request(`bench.stats.${w * per}`, window ? 'window' : '', { timeout: 10_000 })).string(),
    ) as Counters;
    for (const k of Object.keys(sum) as (keyof Counters)[]) sum[k] += r[k];
  }
  return sum;
}

const results = [];
for (const n of nodeCounts) {
  process.stderr.write(`fan-out: ${n} appliers...\n`);
  const r = await runScale(n);
  results.push(r);
  process.stderr.write(JSON.stringify(r) + '\n');
  // after each size, so a later size that fails keeps the earlier ones
  writeFileSync(
    outFile ?? path.join(here, 'last-run.json'),
    JSON.stringify({ at: new Date().toISOString(), results }, null, 2) + '\n',
  );
}
const f = (x: number) => x.toFixed(1);
console.log(
  '| appliers | floor p50 / p99 / max (ms) | fan-out p50 / p99 / max (ms) | ratio p50 / p99 / max | published B/event | applier B/event/node (events alone) |',
);
console.log('|---|---|---|---|---|---|');
for (const r of results as any[]) {
  console.log(
    `| ${r.nodes} | ${f(r.floorMs.p50)} / ${f(r.floorMs.p99)} / ${f(r.floorMs.max)} | ${f(r.fanoutMs.p50)} / ${f(r.fanoutMs.p99)} / ${f(r.fanoutMs.max)} | ${r.ratio.p50.toFixed(2)} / ${r.ratio.p99.toFixed(2)} / ${r.ratio.max.toFixed(2)} | ${r.publishedBytesPerEvent} | ${Math.round(r.applierTrafficPerNodeEvent.fanout.inBytes + r.applierTrafficPerNodeEvent.fanout.outBytes)} |`,
  );
}
console.log("\nCPU per event per node (ms), floor ping vs event: appliers' processes, nats-server, planner side");
for (const r of results as any[]) {
  const c = r.cpuMsPerEventPerNode;
  const x = (v: number) => v.toFixed(3);
  const line = (p: Record<string, number>) =>
    `${x(p.workers!)} (sys ${x(p.workersSys!)}) / ${x(p.server!)} / ${x(p.planner!)}`;
  console.log(`${r.nodes} appliers: floor ${line(c.floor)}; event ${line(c.fanout)}`);
}
