/**
 * Status bench (review4 G7): what GET /status costs the planner right after a new version, with a
 * fleet of N nodes (live ones in the cluster plus departed ones that ACKed once) and S NodePort
 * services (so every node's state differs). A real Planner on a real SQLite log and the manifests
 * source; the bus is an in-memory fake (publish is not measured here).
 *
 * Baseline, same run: what status() did before e6b7c87 for that version — render and hash every
 * fleet node's state (nodeStateHash(renderNodeState(...)) per node, none cached yet). Then:
 * status() now, and the background checks once K nodes ACK the new version: their total time and
 * the longest the event loop was held (perf_hooks.monitorEventLoopDelay max) while they ran.
 *   node --import tsx bench/planner/status-bench.ts [--nodes 200] [--live 10] [--services 1000] [--acks 10]
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { EventLog } from '../../libs/eventlog/index.ts';
import { type Ack } from '../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../libs/planner/index.ts';
import { manifestsPlanner, memoryPlannerBus, until } from './bench-planner.ts';

const { values } = benchArgs({
  options: {
    nodes: { type: 'string', default: '200' },
    live: { type: 'string', default: '10' },
    services: { type: 'string', default: '1000' },
    acks: { type: 'string', default: '10' },
  },
});
const N = Number(values.nodes);
const LIVE = Math.min(N, Number(values.live));
const S = Number(values.services);
const K = Math.min(LIVE, Number(values.acks));

const dir = mkdtempSync(join(tmpdir(), 'status-bench-'));
const manifests = join(dir, 'manifests');
const doc = (o: unknown) => JSON.stringify(o);
const nodeDoc = (i: number) =>
  doc({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: `live-${i}` },
    status: { addresses: [{ type: 'InternalIP', address: `192.0.${2 + (i >> 8)}.${i & 255}` }] },
  });
const svcDoc = (i: number) =>
  doc({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `s${i}`, namespace: 'default' },
    spec: {
      type: 'NodePort',
      clusterIP: `10.96.${i >> 8}.${i & 255}`,
      clusterIPs: [`10.96.${i >> 8}.${i & 255}`],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30000 + (i % 2700) }],
    },
  });

const { bus, hear } = memoryPlannerBus();
const ack = (node: string, version: number, nodeStateHash: string, dataHash: string): Ack => ({
  type: 'ACK',
  node,
  version,
  configRevision: 1,
  dataHash,
  nodeStateHash,
  mode: 'ipvs',
  kernelWrites: 1,
  timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
  at: new Date().toISOString(),
});

async function main() {
  const { mkdirSync } = await import('node:fs');
  mkdirSync(manifests);
  writeFileSync(join(manifests, 'nodes.yaml'), Array.from({ length: LIVE }, (_, i) => nodeDoc(i)).join('\n---\n'));
  writeFileSync(join(manifests, 'svcs.yaml'), Array.from({ length: S }, (_, i) => svcDoc(i)).join('\n---\n'));
  const log = await EventLog.open({ file: join(dir, 'log.db') });
  const p = manifestsPlanner({ log, bus, manifests });
  try {
    await p.start();
    await p.synced;
    // the fleet: every node ACKs version 1 once (the departed ones with a junk hash), then is checked
    const v1 = p.data.latest()!;
    for (let i = 0; i < N; i++)
      await hear(ack(i < LIVE ? `live-${i}` : `gone-${i}`, v1.version, 'x'.repeat(64), v1.hash));
    await until(() => p.hashChecks.pending === 0 && p.fleet().length === N, 'fleet checked at version 1', 120_000);

    // a new version (one more live node), as in review4's reproduction
    writeFileSync(join(manifests, 'churn.yaml'), nodeDoc(LIVE));
    await until(() => p.data.latest()!.version > v1.version, 'version 2', 120_000);
    const v2 = p.data.latest()!;
    const fleet = p.fleet();
    const cfg = p.config.revision(1)!.config;

    let t = performance.now();
    for (const node of fleet) nodeStateHash(renderNodeState(p.data.publishedData(), node, cfg));
    const baselineMs = performance.now() - t;
    const renders0 = p.hashChecks.rendered;
    t = performance.now();
    p.status();
    const firstMs = performance.now() - t;
    t = performance.now();
    p.status();
    const secondMs = performance.now() - t;
    const rendersByStatus = p.hashChecks.rendered - renders0;

    // K live nodes ACK version 2: their checks run off the read path, in slices
    const expected = new Map(
      Array.from({ length: K }, (_, i) => [
        `live-${i}`,
        nodeStateHash(renderNodeState(p.data.publishedData(), `live-${i}`, cfg)),
      ]),
    );
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    t = performance.now();
    for (const [node, h] of expected) void hear(ack(node, v2.version, h, v2.hash));
    await until(() => p.hashChecks.pending === 0, 'checks of version 2', 120_000);
    const checksMs = performance.now() - t;
    loop.disable();
    const synced = p.status().filter((r) => r.status === 'SYNCED').length;
    const out = {
      load: (await import('node:os'))
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' '),
      nodes: N,
      live: LIVE,
      services: S,
      acks: K,
      fleet: fleet.length,
      baselineOldStatusMs: Math.round(baselineMs),
      perNodeRenderMs: +(baselineMs / fleet.length).toFixed(1),
      firstStatusMs: +firstMs.toFixed(2),
      secondStatusMs: +secondMs.toFixed(2),
      ratioFirstStatusVsOld: +(firstMs / baselineMs).toExponential(2),
      rendersByStatus,
      checksOfKAcksMs: Math.round(checksMs),
      longestLoopBlockMs: +(loop.max / 1e6).toFixed(1),
      syncedAfterChecks: synced,
    };
    console.log(JSON.stringify(out));
  } finally {
    await p.stop();
    log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
