// Replicated event log benchmark (not a test). On a 3-server JetStream cluster started here on
// loopback, in the same run:
//   1. append rate: the same write batches (appendEvents of --batch events, synchronous=FULL) into
//      three logs: no replication (the baseline), R1 (flush() to a 1-replica log stream after each
//      batch) and R3 (3 replicas); the modes take turns every --round batches so machine load hits
//      all three alike.
//   2. follower lag: an R3 leader writes --rate events/s for --seconds (batches every 50 ms, each
//      flushed) while a follower applies them into its own file; for every batch, the time from the
//      leader's flush returning to the follower's file holding it, and the follower's lagRows sampled
//      every 50 ms.
// Ends with one JSON line. Run: npx tsx bench/ha/log-replication-bench.ts [--events 20000] [--batch 100]
//   [--round 20] [--rate 1000] [--seconds 20] [--sync full|normal]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EventLog, createLogReplicator, rowCount, type LogReplicator } from '../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../libs/model/index.ts';
import { startNatsCluster } from '../../test/support/nats-cluster.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const EVENTS = arg('events', 20_000);
const BATCH = arg('batch', 100);
const ROUND = arg('round', 20);
const RATE = arg('rate', 1000);
const SECONDS = arg('seconds', 20);
/** --sync normal: no fsync per local commit, to see the replication cost apart from the disk's. */
const SYNC =
  process.argv.includes('--sync') && process.argv[process.argv.indexOf('--sync') + 1] === 'normal' ? 'normal' : 'full';

/** An EndpointSlice of one of 1,000 services rewritten (pod churn), ~600 bytes of JSON. */
function event(i: number): WatchEvent {
  const s = i % 1000;
  const name = `svc-${s}-abcde`;
  return {
    kind: 'EndpointSlice',
    type: i < 1000 ? 'ADDED' : 'MODIFIED',
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

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const round1 = (x: number) => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-ha-bench-'));
  const cluster = await startNatsCluster();
  const conns: NatsConnection[] = [];
  const client = async () => {
    const nc = await connect({ servers: cluster.urls.split(','), maxReconnectAttempts: -1 });
    conns.push(nc);
    return nc;
  };
  try {
    // 1. Append rate, three modes taking turns.
    interface Mode {
      name: string;
      log: EventLog;
      r?: LogReplicator;
      ms: number;
      events: number;
      rounds: number[];
    }
    const modes: Mode[] = [];
    for (const [name, replicas] of [
      ['none', 0],
      ['R1', 1],
      ['R3', 3],
    ] as const) {
      const log = await EventLog.open({ file: path.join(dir, `${name}.db`), sync: SYNC });
      const r = replicas
        ? await createLogReplicator({ log, nc: await client(), group: `bench-${name}`, replicas, snapshotEveryRows: 0 })
        : undefined;
      await r?.claim(1);
      modes.push({ name, log, r, ms: 0, events: 0, rounds: [] });
    }
    const batches = Math.ceil(EVENTS / BATCH);
    for (let b0 = 0; b0 < batches; b0 += ROUND) {
      // Each round the modes go in a rotated order, so none is always first after a pause.
      const order = modes.map((_, k) => modes[(k + b0 / ROUND) % modes.length]!);
      for (const m of order) {
        const t0 = performance.now();
        let n = 0;
        for (let b = b0; b < Math.min(batches, b0 + ROUND); b++) {
          m.log.appendEvents(Array.from({ length: BATCH }, (_, k) => event(b * BATCH + k)));
          await m.r?.flush();
          n += BATCH;
        }
        const dt = performance.now() - t0;
        m.ms += dt;
        m.events += n;
        m.rounds.push(n / (dt / 1000));
      }
    }
    const rate = (m: Mode) => m.events / (m.ms / 1000);
    const base = rate(modes[0]!);
    // The paired ratio of each round (same moment, same load), then its median: robust to load swings.
    const pairedRatio = (m: Mode) =>
      pct(
        m.rounds.map((r, k) => modes[0]!.rounds[k]! / r),
        50,
      );
    const append = modes.map((m) => ({
      mode: m.name,
      events: m.events,
      eventsPerSec: Math.round(rate(m)),
      ratioToNone: Math.round((base / rate(m)) * 100) / 100,
      medianRoundRatioToNone: Math.round(pairedRatio(m) * 100) / 100,
    }));
    for (const m of modes) {
      await m.r?.close();
      m.log.close();
    }

    // 2. Follower lag under RATE events/s.
    const leaderLog = await EventLog.open({ file: path.join(dir, 'lag-leader.db'), sync: SYNC });
    const leader = await createLogReplicator({
      log: leaderLog,
      nc: await client(),
      group: 'bench-lag',
      replicas: 3,
      snapshotEveryRows: 0,
    });
    const followerLog = await EventLog.open({ file: path.join(dir, 'lag-follower.db'), sync: SYNC });
    const follower = await createLogReplicator({
      log: followerLog,
      nc: await client(),
      group: 'bench-lag',
      replicas: 3,
    });
    await leader.claim(1);
    const following = follower.follow();
    await following.caughtUp;
    const tickMs = 50;
    const perTick = Math.max(1, Math.round((RATE * tickMs) / 1000));
    const flushed: { at: number; rows: number }[] = [];
    const latencies: number[] = [];
    const lagSamples: number[] = [];
    let seen = 0;
    let stop = false;
    const watcher = (async () => {
      while (!stop || seen < flushed.length) {
        const rows = rowCount(followerLog.position());
        const now = performance.now();
        while (seen < flushed.length && flushed[seen]!.rows <= rows) latencies.push(now - flushed[seen++]!.at);
        await new Promise((r) => setTimeout(r, 5)); // polling the follower's file: no event to await
      }
    })();
    const sampler = setInterval(() => lagSamples.push(follower.position().lagRows), 50);
    const t0 = performance.now();
    let i = 1_000_000;
    let ticks = 0;
    while (performance.now() - t0 < SECONDS * 1000) {
      const due = t0 + ticks * tickMs;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      leaderLog.appendEvents(Array.from({ length: perTick }, () => event(i++)));
      await leader.flush();
      flushed.push({ at: performance.now(), rows: rowCount(leaderLog.position()) });
      ticks++;
    }
    const elapsed = (performance.now() - t0) / 1000;
    stop = true;
    await watcher;
    clearInterval(sampler);
    await following.stop();
    await leader.close();
    await follower.close();
    const lag = {
      targetEventsPerSec: RATE,
      achievedEventsPerSec: Math.round((ticks * perTick) / elapsed),
      batches: ticks,
      applyLatencyMs: {
        p50: round1(pct(latencies, 50)),
        p99: round1(pct(latencies, 99)),
        max: round1(Math.max(...latencies)),
      },
      lagRows: { p50: pct(lagSamples, 50), p99: pct(lagSamples, 99), max: Math.max(0, ...lagSamples) },
      sameRows: rowCount(leaderLog.position()) === rowCount(followerLog.position()),
    };
    leaderLog.close();
    followerLog.close();
    const out = { load: os.loadavg().map(round1), sync: SYNC, batch: BATCH, append, lag };
    console.log(JSON.stringify(out));
  } finally {
    for (const c of conns) await c.close().catch(() => {});
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
