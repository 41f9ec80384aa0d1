// probe10 H9: the version build of a large change (here 30 000 endpoints; 100 000 in the bench)
// yields to the planner's event loop in slices, so its lease renewal, heartbeats and GET /status
// run during it; a change that arrives mid-build waits for it and makes the next version. Counted
// without time: a setImmediate callback re-armed every turn runs once per slice (buildSliceMs 0:
// one step a slice); the old build ran in one synchronous step, during which nothing ran.
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog, replayVersion } from '../../../libs/eventlog/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import type { KubeEvent, KubeEventSink, RawKubeObject } from '../../../libs/kube/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import type { EventSource } from '../../../services/planner/event-source.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { Planner } from '../../../services/planner/planner.ts';
import { plannerEnv, until, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
const stops: (() => unknown)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await Promise.resolve(s()).catch(() => undefined);
  await env.cleanup();
});

let rv = 0;
const event = (object: Record<string, unknown>): KubeEvent => {
  const kind = object.kind as KubeEvent['kind'];
  const metadata = { namespace: 'default', resourceVersion: String(++rv), ...(object.metadata as object) };
  return {
    kind,
    type: 'ADDED',
    resourceVersion: String(rv),
    relist: false,
    object: { ...object, metadata } as RawKubeObject,
  };
};
const service = (name: string, ip: string) =>
  event({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, uid: `u-${name}` },
    spec: { clusterIP: ip, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  });
/** Slice s of `big`: 1 000 endpoints (the most a slice may hold). */
const slice = (s: number, ready = true) =>
  event({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `big-${s}`, uid: `u-big-${s}`, labels: { 'kubernetes.io/service-name': 'big' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: Array.from({ length: 1000 }, (_, i) => {
      const k = s * 1000 + i;
      return {
        addresses: [`10.${1 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`],
        conditions: { ready },
        nodeName: 'node-1',
      };
    }),
  });

/** The event log, the bus and a source the test feeds through `sink` (`first`: what it sends when started). */
async function fixture(first?: KubeEvent) {
  const log = await EventLog.open({ file: env.db });
  stops.push(() => log.close());
  const bus = await NatsPlannerBus.open({ nc: env.nc });
  stops.push(() => bus.close());
  let fed: KubeEventSink | undefined;
  const source = (s: KubeEventSink): EventSource => {
    fed = s;
    return {
      origin: undefined,
      synced: Promise.resolve(),
      start: async () => void (first && (await s(first))),
      stop: async () => {},
      health: () => ({}),
      problem: () => undefined,
    };
  };
  const sink = (e: KubeEvent) => fed!(e);
  return { log, bus, source, sink };
}

describe('the planner builds a large version in slices (probe10 H9)', () => {
  it('callbacks run during the build, once per slice; a change arriving mid-build makes the next version; replay rebuilds every version', async () => {
    const { log, bus, source, sink } = await fixture(service('big', '10.96.0.10'));
    const errors: string[] = [];
    const planner = new Planner({
      log,
      bus,
      initialConfig: DEFAULT_PROXY_CONFIG,
      debounceMs: 0,
      buildSliceMs: 0,
      source,
      hooks: { onError: (where, e) => errors.push(`${where}: ${String(e)}`) },
    });
    stops.push(() => planner.stop());
    await planner.start();
    await planner.synced;
    expect(log.latestVersion()?.version).toBe(1);

    // A callback re-armed every turn of the event loop, as a lease renewal or a heartbeat's handler
    // would be; during the build it also reads what GET /status reads, and sends the second change.
    let ranDuringBuild = 0;
    let builtOn: number | undefined; // the version published when the build under way began
    let statusMoved = false;
    let secondSent = false;
    let ticking = true;
    const tick = () => {
      if (!ticking) return;
      if (!planner.data.buildUnderWay) builtOn = undefined;
      else {
        ranDuringBuild++;
        planner.status();
        builtOn ??= planner.data.latest()?.version;
        statusMoved ||= planner.data.latest()?.version !== builtOn;
        if (ranDuringBuild === 3 && !secondSent) {
          secondSent = true;
          void sink(slice(0, false)); // its 1 000 endpoints turn not ready: a change of its own
        }
      }
      setImmediate(tick);
    };
    setImmediate(tick);
    stops.push(() => (ticking = false));

    for (let s = 0; s < 30; s++) void sink(slice(s));
    await until(() => (log.latestVersion()?.version ?? 0) >= 2, 20_000, 'version 2');
    if (secondSent) await until(() => (log.latestVersion()?.version ?? 0) >= 3, 20_000, 'version 3');
    ticking = false;

    // 30 000 endpoints: dozens of steps (2 000 endpoints read, then ~1 000 serialised and hashed, a step)
    expect(ranDuringBuild).toBeGreaterThanOrEqual(20);
    expect(statusMoved).toBe(false); // status read the published version, never a half-built one
    expect(secondSent).toBe(true);
    const [v2, v3] = [log.version(2)!, log.version(3)!];
    const second = log.events().find((e) => e.name === 'big-0' && e.seq > 31)!;
    expect(second.seq).toBeGreaterThan(v2.seqTo); // queued behind the build, not folded into it
    expect(v3.seqTo).toBeGreaterThanOrEqual(second.seq);
    for (const v of log.versions()) expect(replayVersion(log, v.version).hash).toBe(v.hash);
    expect(planner.data.publishedHash()).toBe(planner.data.live.hash());
    expect(errors).toEqual([]);
  });

  // At 10,000 services × 250 endpoints a restore held the thread ~16 s, past the lease, at every
  // role change (docs/scale.md): it runs in slices now, at start and at each follower refresh.
  it('restores a large view in slices (a planner starting, a follower refreshing): the same view as at once', async () => {
    const SERVICES = 300;
    const { log, bus, source, sink } = await fixture();
    const serviceWithSlice = (i: number) => [
      service(`s${i}`, `10.96.${i >> 8}.${i & 255}`),
      event({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: `s${i}-a`, uid: `u-s${i}-a`, labels: { 'kubernetes.io/service-name': `s${i}` } },
        addressType: 'IPv4',
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        endpoints: Array.from({ length: 20 }, (_, k) => ({
          addresses: [`10.${1 + (i >> 8)}.${i & 255}.${k + 1}`],
          conditions: { ready: true },
          nodeName: 'node-1',
        })),
      }),
    ];
    const errors: string[] = [];
    const leader = new Planner({
      log,
      bus,
      initialConfig: DEFAULT_PROXY_CONFIG,
      debounceMs: 0,
      checkpointEvery: 2 * SERVICES, // a checkpoint after the list: the restore reads it
      source,
      hooks: { onError: (where, e) => errors.push(`${where}: ${String(e)}`) },
    });
    stops.push(() => leader.stop());
    await leader.start();
    for (let i = 0; i < SERVICES; i++) for (const e of serviceWithSlice(i)) await sink(e);
    await until(
      () =>
        log.lastSeq() >= 2 * SERVICES &&
        log.checkpoints().length > 0 &&
        !leader.data.buildUnderWay &&
        leader.data.publishedHash() === leader.data.live.hash(),
      20_000,
      'every event in a version, and a checkpoint (the leader idle: the views compared below hold still)',
    );

    // Counted without time, as the build above: a callback re-armed every turn runs once per slice.
    let turns = 0;
    let ticking = true;
    const tick = () => {
      if (!ticking) return;
      turns++;
      setImmediate(tick);
    };
    const turnsDuring = async (work: () => Promise<void>): Promise<number> => {
      const before = turns;
      await work();
      return turns - before;
    };
    setImmediate(tick);
    stops.push(() => (ticking = false));
    const follower = new Planner({
      log,
      bus,
      initialConfig: DEFAULT_PROXY_CONFIG,
      buildSliceMs: 0,
      role: 'follower',
      source,
      hooks: { onError: (where, e) => errors.push(`${where}: ${String(e)}`) },
    });
    stops.push(() => follower.stop());
    const atStart = await turnsDuring(() => follower.start());
    const whole = DataAxis.restore(log);
    expect(follower.data.publishedHash()).toBe(whole.publishedHash());
    expect(follower.data.live.hash()).toBe(whole.live.hash());
    expect(follower.data.latest()?.version).toBe(log.latestVersion()?.version);

    // a change the leader makes a version of; the follower's refresh reads it, in slices too
    await sink(service('s0', '10.96.200.1'));
    await until(
      () =>
        (log.latestVersion()?.version ?? 0) > whole.latest()!.version &&
        !leader.data.buildUnderWay &&
        leader.data.publishedHash() === leader.data.live.hash(),
      20_000,
      'the next version',
    );
    const atRefresh = await turnsDuring(() => follower.refresh());
    ticking = false;
    expect(follower.data.latest()?.version).toBe(log.latestVersion()?.version);
    expect(follower.data.publishedHash()).toBe(DataAxis.restore(log).publishedHash());
    // one service entry a step (and the checkpoint a piece, the events a few hundred, a step)
    expect(atStart).toBeGreaterThanOrEqual(SERVICES);
    expect(atRefresh).toBeGreaterThanOrEqual(SERVICES);
    expect(errors).toEqual([]);
  });
});

// At 10,000 services of 250 endpoints one batch of 2,000 EndpointSlices is ~40 MB of rows: its
// append and build held the leader's thread 1–2 s, two such batches in one turn, and a version
// appended everything queued in one call. Batches now end at 4 MiB of rows, the batcher appends
// one a turn, and a version appends what is queued a batch a step.
describe("the planner's event batches are bounded by their rows' size", () => {
  it('a burst of large EndpointSlices is appended in batches of at most 4 MiB of rows, one a turn of the event loop', async () => {
    const { log, bus, source, sink } = await fixture(service('big', '10.96.0.10'));
    const batches: number[] = [];
    const atTurn: number[] = []; // the setImmediate turn each batch was appended in
    let turnsNow = () => -1;
    const planner = new Planner({
      log,
      bus,
      initialConfig: DEFAULT_PROXY_CONFIG,
      debounceMs: 0,
      source,
      hooks: {
        onEvents: (n) => {
          batches.push(n);
          atTurn.push(turnsNow());
        },
      },
    });
    stops.push(() => planner.stop());
    await planner.start();
    await planner.synced;
    const before = batches.length;
    const firstSeq = log.lastSeq() + 1;
    let turns = 0;
    turnsNow = () => turns;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    stops.push(() => (ticking = false));
    for (let s = 0; s < 120; s++) void sink(slice(s));
    await until(() => log.lastSeq() >= firstSeq + 119, 20_000, 'the 120 slices in the log');
    const sizes = batches.slice(before);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(120);
    // each row's size as the file holds it (a second connection, read-only: the log is open)
    const file = new Database(env.db, { readonly: true });
    const rows = file
      .prepare('SELECT length(object) FROM events WHERE seq >= ? ORDER BY seq')
      .pluck()
      .all(firstSeq) as number[];
    file.close();
    expect(rows.reduce((a, b) => a + b, 0)).toBeGreaterThan(2 * 4 * 1024 * 1024); // three batches at least
    let at = 0;
    for (const n of sizes) {
      const bytes = rows.slice(at, at + n).reduce((a, b) => a + b, 0);
      if (n > 1) expect(bytes, `a batch of ${n} events`).toBeLessThanOrEqual(4 * 1024 * 1024);
      at += n;
    }
    expect(sizes.length).toBeGreaterThanOrEqual(3);
    // not all in one turn: a scheduled batch and the version's first may share one (a timer's
    // callback runs before the next setImmediate), never more
    const turnsOf = atTurn.slice(before);
    for (const t of new Set(turnsOf)) expect(turnsOf.filter((x) => x === t).length).toBeLessThanOrEqual(2);
  });
});
