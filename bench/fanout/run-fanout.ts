/**
 * Fan-out bench: event → all nodes ACKed, versus the raw core-NATS publish → reply floor to the
 * same connections, in the same run. Usage:
 *   npx tsx bench/fanout/run-fanout.ts [--nodes 100,1000] [--events 40] [--workers 4] [--services 50] [--cpu-prof DIR] [--out FILE] [--signed 1]
 * (--cpu-prof DIR: each applier worker process writes a V8 CPU profile of the events window only,
 * from the first counters read to the last, into DIR; summarize with bench/fanout/profile-summary.ts.)
 * Prints a markdown table (ratios against the floor) and writes JSON to FILE (default bench/fanout/last-run.json).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { generateKeyPairSync } from 'node:crypto';
import { AckCollector, signerFromKey, TargetStore, VersionPublisher } from '../../libs/bus/index.ts';
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
const outFile = args.get('out');
const here = path.dirname(fileURLToPath(import.meta.url));

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
      const v = m.next(delta);
      const r = await publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
      // as NatsPlannerBus does: the notice carries the delta the stream just stored
      await targets.setDefaultTarget(
        { version: v.delta.version, configRevision: 0 },
        publisher.storedDelta(v.delta.version),
      );
      return { version: v.delta.version, bytes: r.reduce((s, x) => s + x.bytes, 0) };
    };
    const nodes = Array.from({ length: n }, (_, i) => node(`node-${i}`));
    await publish({ upsertServices: Array.from({ length: services }, (_, i) => service(i, 5)), upsertNodes: nodes });

    const fetchMs: number[] = [];
    const firstAckMs: number[] = [];
    const publishMs: number[] = [];
    let eventStart = 0;
    const acked = new Map<number, { count: number; done: () => void }>();
    const collector = await AckCollector.start({
      nc,
      callbacks: {
        onAck: (a) => {
          const w = acked.get(a.version);
          if (w && a.version > 1) {
            fetchMs.push(a.timings.fetchMs);
            firstAckMs.push(performance.now() - eventStart);
          }
          if (w && ++w.count === n) w.done();
        },
        onNack: (x) => {
          throw new Error(`NACK from ${x.node}: ${x.error}`);
        },
      },
    });
    const waitAll = (version: number) => new Promise<void>((done) => acked.set(version, { count: 0, done }));
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
            '--import',
            'tsx',
            path.join(here, 'fanout-worker.ts'),
            server.url,
            String(count),
            String(w * per),
            signer?.publicKeyPem ?? '',
            cpuProf ?? '',
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

    // interleave the two measurements so drift on this shared machine hits both alike
    const floor: number[] = [];
    const fanout: number[] = [];
    const bytes: number[] = [];
    const before = await byteCounters(nc, workers, per, n);
    for (let e = 0; e < events; e++) {
      floor.push(await pingAll(nc, n));
      const t = performance.now();
      eventStart = t;
      const version = m.version + 1;
      const all = waitAll(version);
      const p = await publish({ upsertServices: [service(e % services, 5, e + 1)] }); // one endpoint set changes
      publishMs.push(performance.now() - t);
      await all;
      fanout.push(performance.now() - t);
      bytes.push(p.bytes);
    }
    const after = await byteCounters(nc, workers, per, n);
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
      floorMs: f,
      fanoutMs: s,
      breakdown: {
        plannerPublishMs: stats(publishMs),
        applierFetchMs: stats(fetchMs),
        ackArrivalMs: stats(firstAckMs),
      },
      ratio: { p50: s.p50 / f.p50, p99: s.p99 / f.p99, max: s.max / f.max },
      publishedBytesPerEvent: Math.round(bytes.reduce((a, b) => a + b, 0) / bytes.length),
      applierBytesPerEventPerNode: Math.round(
        (after.inBytes + after.outBytes - before.inBytes - before.outBytes) / events / n,
      ),
      // both include the floor's ping (1 in) and pong (1 out) per event
      applierInMsgsPerEventPerNode: (after.inMsgs - before.inMsgs) / events / n,
      applierOutMsgsPerEventPerNode: (after.outMsgs - before.outMsgs) / events / n,
      // CPU of the appliers' processes during the events (also answering the floor's pings)
      applierCpuMsPerEventPerNode: (after.cpuMs - before.cpuMs) / events / n,
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

/** Bytes and messages in+out over all simulated appliers' connections (includes the baseline pings). */
/** `cpuMs`: user + system CPU of the worker processes (every applier and its NATS client). */
type Counters = { inBytes: number; outBytes: number; inMsgs: number; outMsgs: number; cpuMs: number };
async function byteCounters(nc: NatsConnection, workers: number, per: number, n: number): Promise<Counters> {
  const sum: Counters = { inBytes: 0, outBytes: 0, inMsgs: 0, outMsgs: 0, cpuMs: 0 };
  for (let w = 0; w < workers && w * per < n; w++) {
    const r = JSON.parse((await nc.request(`bench.stats.${w * per}`, '', { timeout: 10_000 })).string()) as Counters;
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
}
writeFileSync(
  outFile ?? path.join(here, 'last-run.json'),
  JSON.stringify({ at: new Date().toISOString(), results }, null, 2) + '\n',
);
const f = (x: number) => x.toFixed(1);
console.log(
  '| appliers | floor p50 / p99 / max (ms) | fan-out p50 / p99 / max (ms) | ratio p50 / p99 / max | published B/event | applier B/event/node |',
);
console.log('|---|---|---|---|---|---|');
for (const r of results as any[]) {
  console.log(
    `| ${r.nodes} | ${f(r.floorMs.p50)} / ${f(r.floorMs.p99)} / ${f(r.floorMs.max)} | ${f(r.fanoutMs.p50)} / ${f(r.fanoutMs.p99)} / ${f(r.fanoutMs.max)} | ${r.ratio.p50.toFixed(2)} / ${r.ratio.p99.toFixed(2)} / ${r.ratio.max.toFixed(2)} | ${r.publishedBytesPerEvent} | ${r.applierBytesPerEventPerNode} |`,
  );
}
