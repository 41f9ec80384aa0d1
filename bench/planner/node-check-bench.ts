/**
 * The planner's node-state hash checks for one version: the hash every ACKing node must echo.
 * Old path (the baseline, same run): nodeStateHash(renderNodeState(...)) per node, O(cluster)
 * each, timed on a sample of nodes (every node would take minutes) and scaled to the fleet. New
 * path: ExpectedNodeStateHashes built once for the version, then every node's hash; and the next
 * version (one EndpointSlice changed): moving it there and every node's hash again. The sampled
 * nodes' hashes are compared between the paths (the run fails on a difference). Then the
 * planner's own path (NodeHashChecks + ExpectedHashCache, the real scheduler): every node's check
 * for a fresh cache (the first build, in steps) and for a later version, with the event loop's
 * longest stall meanwhile (monitorEventLoopDelay, and a 1 ms timer's longest gap); before the
 * build was sliced, the stall was the build plus one node (newBuildMs + newPerNodeMs).
 * Each phase also gives its process CPU time (process.cpuUsage: the machine is shared, so wall
 * time alone mixes in other work), and the planner path its slices' CPU time (the longest
 * slice's own, and the longest by CPU) and V8's longest GC pause meanwhile, which tell a slice
 * that computed for long from one descheduled or paused by GC; and the longest single step (of
 * the build or of a node's hash) with the GC pauses that began within the longest slice.
 *   npx tsx --expose-gc bench/planner/node-check-bench.ts [--services 10000] [--endpoints 10] [--nodes 100] [--old-sample 4] [--versions 3]
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { loadavg } from 'node:os';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { DEFAULT_PROXY_CONFIG, readKubeObject, type KubeObject } from '../../libs/model/index.ts';
import { ClusterState, ExpectedNodeStateHashes, nodeStateHash, renderNodeState } from '../../libs/planner/index.ts';
import { ExpectedHashCache, NodeHashChecks } from '../../services/planner/node-hash-checks.ts';
import { generateCluster, makeSlice } from './generate-cluster.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '100' },
    'old-sample': { type: 'string', default: '4' },
    versions: { type: 'string', default: '3' },
  },
});
const S = Number(values.services);
const E = Number(values.endpoints);
const N = Number(values.nodes);
const SAMPLE = Math.min(N, Number(values['old-sample']));
const VERSIONS = Number(values.versions);

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const cpuMs = (c0: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
};
const loadBefore = loadavg()[0]!;
const read = (raw: unknown): KubeObject => {
  const r = readKubeObject(raw);
  if (!r.ok) throw new Error(r.rejection.reason);
  return r.object;
};
const heap = () => {
  global.gc?.();
  return process.memoryUsage().heapUsed;
};

// the raw objects go once read (a planner keeps no copy of them): at 10k × 250 they would be
// hundreds of MB more for V8 to mark, in every figure below
const state = (() => {
  const gen = generateCluster({ services: S, endpointsPerService: E, nodes: N });
  return ClusterState.fromObjects([...gen.nodes, ...gen.services, ...gen.slices].map(read));
})();
const data = state.data;
const nodes = data.nodeNames();
const config = DEFAULT_PROXY_CONFIG;
const sample = Array.from({ length: SAMPLE }, (_, i) => nodes[Math.floor((i * N) / SAMPLE)]!);

// old: a full render + hash per node (the first one pays JIT warm-up: one untimed)
nodeStateHash(renderNodeState(data, sample[0]!, config));
const oldHashes = new Map<string, string>();
let t = process.hrtime.bigint();
let c = process.cpuUsage();
for (const n of sample) oldHashes.set(n, nodeStateHash(renderNodeState(data, n, config)));
const oldPerNodeMs = ms(t) / SAMPLE;
const oldPerNodeCpuMs = cpuMs(c) / SAMPLE;

// new: built once for the version, then every node
const heap0 = heap();
const buffers0 = process.memoryUsage().arrayBuffers;
let hashes = new ExpectedNodeStateHashes(config);
t = process.hrtime.bigint();
c = process.cpuUsage();
hashes.update(data);
const buildMs = ms(t);
const buildCpuMs = cpuMs(c);
t = process.hrtime.bigint();
c = process.cpuUsage();
const fast = new Map<string, string>();
let rendered = 0;
let laidOver = 0;
let ownItems = 0;
let decidedOnce = 0;
for (const n of nodes) {
  fast.set(n, hashes.hash(n));
  rendered += hashes.lastStats.servicesRendered;
  laidOver += hashes.lastStats.servicesLaidOver;
  ownItems += hashes.lastStats.ownItems;
  decidedOnce += hashes.lastStats.claimsDecidedOnce ?? 0; // absent before NodePort groups
}
const allNodesMs = ms(t);
const allNodesCpuMs = cpuMs(c);
const heldMb = (heap() - heap0) / 1048576;
// Buffers outside the JS heap (the per-node overlay memos since 2026-12-06), measured after heap()'s GC
const heldBuffersMb = (process.memoryUsage().arrayBuffers - buffers0) / 1048576;
for (const [n, h] of oldHashes)
  if (fast.get(n) !== h) throw new Error(`node ${n}: fast hash ${fast.get(n)} != full render ${h}`);

// later versions: one EndpointSlice changed each; moved there, every node again
const next: {
  updateMs: number;
  allNodesMs: number;
  allNodesCpuMs: number;
  copiesHashed: number;
  copiesMade: number;
  loopBackKept: number;
  loopBackPatched: number;
}[] = [];
for (let v = 1; v <= VERSIONS; v++) {
  const s = (v * 7919) % S;
  state.apply({ op: 'upsert', object: read(makeSlice(`ns-${s % 50}`, s, E, N, v, s % 4 === 0)) });
  state.commit();
  t = process.hrtime.bigint();
  hashes.update(data);
  const updateMs = ms(t);
  t = process.hrtime.bigint();
  c = process.cpuUsage();
  let copiesHashed = 0;
  let copiesMade = 0;
  let loopBackKept = 0;
  let loopBackPatched = 0;
  for (const n of nodes) {
    hashes.hash(n);
    copiesHashed += hashes.lastStats.copiesHashed ?? 0; // absent before the copies were kept
    copiesMade += hashes.lastStats.copiesMade ?? 0; // absent before they were identified
    loopBackKept += hashes.lastStats.loopBackKept ? 1 : 0; // absent before the walk was kept
    loopBackPatched += hashes.lastStats.loopBackPatched ? 1 : 0; // absent before it was patched
  }
  next.push({
    updateMs,
    allNodesMs: ms(t),
    allNodesCpuMs: cpuMs(c),
    copiesHashed,
    copiesMade,
    loopBackKept,
    loopBackPatched,
  });
}
const check = sample[sample.length - 1]!;
if (hashes.hash(check) !== nodeStateHash(renderNodeState(data, check, config)))
  throw new Error(`node ${check}: fast hash differs from the full render after ${VERSIONS} versions`);

/**
 * Every node's check of `version` as the planner runs it (NodeHashChecks slices of 10 ms that
 * yield, the shared build as its prepare), with the longest event-loop stall meanwhile.
 */
async function plannerChecks(cache: ExpectedHashCache, version: number) {
  const at = { version, revision: 1, config, data };
  // the default scheduler's (setImmediate, or setTimeout for a rest), each slice timed in wall and CPU
  const slices = { longestWallMs: 0, itsCpuMs: 0, longestCpuMs: 0, count: 0, longestAt: 0 };
  const schedule = (fn: () => void, restMs: number) => {
    const run = () => {
      const w0 = performance.now();
      const c0 = process.cpuUsage();
      fn();
      const wall = performance.now() - w0;
      const cpu = cpuMs(c0);
      slices.count += 1;
      if (wall > slices.longestWallMs) Object.assign(slices, { longestWallMs: wall, itsCpuMs: cpu, longestAt: w0 });
      slices.longestCpuMs = Math.max(slices.longestCpuMs, cpu);
    };
    if (restMs <= 0) {
      const h = setImmediate(run);
      return { cancel: () => clearImmediate(h) };
    }
    const h = setTimeout(run, restMs);
    return { cancel: () => clearTimeout(h) };
  };
  const gc = { maxMs: 0, totalMs: 0, pauses: [] as { at: number; ms: number }[] };
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gc.maxMs = Math.max(gc.maxMs, e.duration);
      gc.totalMs += e.duration;
      gc.pauses.push({ at: e.startTime, ms: e.duration });
    }
  });
  // each step of the build and of a node's hash timed alone: a long slice is one long step, or GC
  const longestStep = { ms: 0, kind: '' };
  const timed = <T>(kind: string, steps: Iterator<void, T>): Iterator<void, T> => ({
    next: () => {
      const t = performance.now();
      const r = steps.next();
      const took = performance.now() - t;
      if (took > longestStep.ms) Object.assign(longestStep, { ms: took, kind });
      return r;
    },
    return: (v?: T) => steps.return?.(v as T) ?? { done: true, value: v as T },
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const checks = new NodeHashChecks({
    compute: (node) => timed('node', cache.hashSteps(node, at)),
    prepare: () => {
      const steps = cache.prepare(at);
      return steps && timed('build', steps);
    },
    schedule,
  });
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let last = performance.now();
  let maxGapMs = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
  }, 1);
  delay.enable();
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  for (const n of nodes) checks.want(n, version, 1);
  while (checks.pending > 0) await new Promise((r) => setTimeout(r, 5));
  const allMs = ms(t0);
  const allCpuMs = cpuMs(c0);
  delay.disable();
  clearInterval(probe);
  await new Promise((r) => setTimeout(r, 50)); // the last GC entries
  gcObserver.disconnect();
  const check = nodes[version % N]!;
  if (checks.get(check, version, 1) !== nodeStateHash(renderNodeState(data, check, config)))
    throw new Error(`node ${check}: the planner path's hash differs from the full render`);
  return {
    allNodesMs: r(allMs),
    allNodesCpuMs: r(allCpuMs),
    maxStallMs: r(delay.max / 1e6),
    maxTimerGapMs: r(maxGapMs),
    longestSliceMs: r(checks.longestSliceMs),
    slices: slices.count,
    longestSliceWallMs: r(slices.longestWallMs),
    longestSliceItsCpuMs: r(slices.itsCpuMs),
    longestSliceCpuMs: r(slices.longestCpuMs),
    longestStepMs: r(longestStep.ms),
    longestStepOf: longestStep.kind,
    // GC pauses that began within the longest slice (V8's, on the main thread)
    longestSliceGcMs: r(
      gc.pauses
        .filter((p) => p.at >= slices.longestAt && p.at < slices.longestAt + slices.longestWallMs)
        .reduce((sum, p) => sum + p.ms, 0),
    ),
    gcMaxPauseMs: r(gc.maxMs),
    gcTotalMs: r(gc.totalMs),
    steps: checks.prepareSteps,
  };
}

const r = (x: number) => Math.round(x * 10) / 10;
const oldAllMs = oldPerNodeMs * N;
const newFirstMs = buildMs + allNodesMs;
const steady = next.map((x) => x.updateMs + x.allNodesMs).sort((a, b) => a - b);
const steadyMs = steady[Math.floor(steady.length / 2)] ?? Number.NaN;
// the planner's path: a fresh cache (first build) at the current content, then one more version;
// the new path's hasher above is let go first, so that the planner's path runs with one hasher's
// state in the heap, as a planner with one config revision in use does
hashes = new ExpectedNodeStateHashes(config);
const cache = new ExpectedHashCache();
const plannerFirst = await plannerChecks(cache, 1);
const s2 = (7 * 7919) % S;
state.apply({ op: 'upsert', object: read(makeSlice(`ns-${s2 % 50}`, s2, E, N, VERSIONS + 1, s2 % 4 === 0)) });
state.commit();
const plannerNext = await plannerChecks(cache, 2);

console.log(
  JSON.stringify({
    services: S,
    endpointsPerService: E,
    nodes: N,
    oldSample: SAMPLE,
    loadAverage: [r(loadBefore), r(loadavg()[0]!)],
    oldPerNodeMs: r(oldPerNodeMs),
    oldPerNodeCpuMs: r(oldPerNodeCpuMs),
    oldAllNodesMsProjected: r(oldAllMs),
    newBuildMs: r(buildMs),
    newBuildCpuMs: r(buildCpuMs),
    newAllNodesMs: r(allNodesMs),
    newAllNodesCpuMs: r(allNodesCpuMs),
    newPerNodeMs: r(allNodesMs / N),
    newFirstVersionMs: r(newFirstMs),
    nextVersions: next.map((x) => ({
      updateMs: r(x.updateMs),
      allNodesMs: r(x.allNodesMs),
      allNodesCpuMs: r(x.allNodesCpuMs),
      // NodePort copies hashed again over every node (their group's winner changed)
      copiesHashedPerNode: r(x.copiesHashed / N),
      copiesMadePerNode: r(x.copiesMade / N),
      // nodes whose KUBE-LOOP-BACK members were taken as their last hash found them
      loopBackKeptNodes: x.loopBackKept,
      // nodes whose members were taken so but for their moved local services, walked again
      loopBackPatchedNodes: x.loopBackPatched,
    })),
    servicesRenderedPerNode: r(rendered / N),
    servicesLaidOverPerNode: r(laidOver / N),
    ownItemsPerNode: r(ownItems / N),
    claimsDecidedOncePerNode: r(decidedOnce / N),
    heldMb: r(heldMb),
    heldBuffersMb: r(heldBuffersMb),
    ratioFirstVersion: r(oldAllMs / newFirstMs),
    // before the build was sliced, one slice held the whole build and the first node
    oldStallMs: r(buildMs + allNodesMs / N),
    plannerFirst,
    plannerNext,
    ratioNextVersion: r(oldAllMs / steadyMs),
  }),
);
