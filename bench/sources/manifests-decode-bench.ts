/**
 * Manifests decode bench (probe10 H9): the longest the planner's event loop is held
 * (perf_hooks.monitorEventLoopDelay max) while a large manifests change goes from the file to a
 * version. A real Planner on a real SQLite log and the manifests source; the bus is an in-memory
 * fake. The same change twice in one run, each on a fresh log: the file decoded on the event loop
 * (`caller`, the code before probe10 H9) and on the decoder's worker thread (`worker`, now). The
 * planner renews its leader lease on that loop: a block past the lease TTL (15 s by default) is a
 * step-down.
 *   node --import tsx bench/sources/manifests-decode-bench.ts [--slices 100] [--endpoints 1000] [--thread worker|caller] [--profile FILE]
 * --thread: only that round (default both); `worker` alone measures the version build's blocks.
 * --profile: a CPU profile of the `worker` round's change (where the loop's remaining time goes).
 * --slices 1 --endpoints 100000 is probe10's file (the slice is now rejected: over 1000 endpoints).
 */
import { BenchUsageError, benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startCpuProfile } from '../cpu-profile.ts';
import { EventLog } from '../../libs/eventlog/index.ts';
import { ManifestDecoder } from '../../libs/kube/index.ts';
import { manifestsPlanner, memoryPlannerBus, until } from '../planner/bench-planner.ts';

const { values } = benchArgs({
  options: {
    slices: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '1000' },
    profile: { type: 'string' },
    thread: { type: 'string' },
  },
});
if (values.thread !== undefined && values.thread !== 'worker' && values.thread !== 'caller')
  throw new BenchUsageError(`--thread must be worker or caller, not ${values.thread}`);
const SLICES = Number(values.slices);
const ENDPOINTS = Number(values.endpoints);

const slice = (s: number) =>
  `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: big-${s}, namespace: default, labels: {kubernetes.io/service-name: big}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
${Array.from({ length: ENDPOINTS }, (_, i) => {
  const n = s * ENDPOINTS + i;
  return `- {addresses: [10.${1 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}], conditions: {ready: true}, nodeName: node-1}\n`;
}).join('')}`;
const BIG = `apiVersion: v1
kind: Service
metadata: {name: big, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, protocol: TCP}]}
${Array.from({ length: SLICES }, (_, s) => slice(s)).join('')}`;
const NODE = `apiVersion: v1
kind: Node
metadata: {name: node-1}
status: {addresses: [{type: InternalIP, address: 192.0.2.1}]}
`;

/**
 * The longest the loop was held while the version was built: from the flush of the change's events
 * (onEvents) until the turn after the version was published (onVersion), the longest gap between
 * turns of a setImmediate callback re-armed every turn (the build's slices, its log write, GC).
 */
function buildBlocks(before: number) {
  let last = 0;
  const b = {
    longestMs: 0,
    done: false,
    versionMade: false,
    onEvents() {
      if (last !== 0 || before === Number.MAX_SAFE_INTEGER) return; // started once, and not before the change
      last = performance.now();
      const tick = () => {
        const now = performance.now();
        b.longestMs = Math.max(b.longestMs, now - last);
        last = now;
        if (b.versionMade) b.done = true;
        else setImmediate(tick);
      };
      setImmediate(tick);
    },
    onVersion(v: number) {
      if (v > before) b.versionMade = true;
    },
  };
  return b;
}
let build = buildBlocks(Number.MAX_SAFE_INTEGER);

async function round(thread: 'caller' | 'worker') {
  const dir = mkdtempSync(join(tmpdir(), 'manifests-decode-bench-'));
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(join(manifests, 'nodes.yaml'), NODE);
  const decoder = new ManifestDecoder({ thread });
  const log = await EventLog.open({ file: join(dir, 'log.db') });
  // a bus of the round's own: one that holds the previous round's versions 1 and 2 made this
  // round's fresh log publish nothing new (no onVersion), and the round never ended
  const { bus } = memoryPlannerBus();
  const p = manifestsPlanner({
    log,
    bus,
    manifests,
    decoder,
    hooks: { onEvents: () => build.onEvents(), onVersion: (v) => build.onVersion(v) },
  });
  try {
    await p.start();
    await p.synced;
    const v1 = p.data.latest()!.version;
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    const profiling = values.profile && thread === 'worker' ? await startCpuProfile() : undefined;
    const t = performance.now();
    build = buildBlocks(v1);
    writeFileSync(join(manifests, 'big.yaml'), BIG);
    await until(() => (p.data.latest()?.version ?? 0) > v1 && build.done, 'the version of big.yaml', 600_000);
    const changeMs = performance.now() - t;
    loop.disable();
    if (profiling) writeFileSync(values.profile!, JSON.stringify(await profiling()));
    return {
      thread,
      changeMs: Math.round(changeMs),
      longestLoopBlockMs: Math.round(loop.max / 1e6),
      longestBuildBlockMs: Math.round(build.longestMs),
    };
  } finally {
    await p.stop();
    log.close();
    await decoder.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const rounds = [];
for (const t of ['caller', 'worker'] as const) if ((values.thread ?? t) === t) rounds.push(await round(t));
console.log(
  JSON.stringify({
    load: loadavg()
      .map((x) => x.toFixed(1))
      .join(' '),
    slices: SLICES,
    endpointsPerSlice: ENDPOINTS,
    fileBytes: Buffer.byteLength(BIG),
    rounds,
  }),
);
