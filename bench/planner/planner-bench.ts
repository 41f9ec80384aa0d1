/**
 * Planner benchmark: full build of a 10k services / 100k endpoints / 100 nodes cluster, the cost
 * of one watch event, node rendering and hashing, with memory. Every figure is also given as a
 * ratio to a baseline measured in the same run: JSON.parse(JSON.stringify(...)) of the same raw
 * objects (one pass that touches every byte), and for per-event cost, a full rebuild.
 *   npx tsx bench/planner/planner-bench.ts [--services 10000] [--endpoints 10] [--nodes 100] [--events 2000]
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { DEFAULT_PROXY_CONFIG, readKubeObject, type KubeObject } from '../../libs/model/index.ts';
import { ClusterState, nodeStateHash, renderNodeState } from '../../libs/planner/index.ts';
import { generateCluster, makeSlice } from './generate-cluster.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '100' },
    events: { type: 'string', default: '2000' },
  },
});
const S = Number(values.services),
  E = Number(values.endpoints),
  N = Number(values.nodes),
  EVENTS = Number(values.events);

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const mb = (b: number) => (b / 1048576).toFixed(0);
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const read = (raw: unknown): KubeObject => {
  const r = readKubeObject(raw);
  if (!r.ok) throw new Error(r.rejection.reason);
  return r.object;
};

const gen = generateCluster({ services: S, endpointsPerService: E, nodes: N });
const raw = [...gen.nodes, ...gen.services, ...gen.slices];
global.gc?.();
const heap0 = process.memoryUsage().heapUsed;

let t = process.hrtime.bigint();
const copy = JSON.parse(JSON.stringify(raw)) as unknown[];
const baselineMs = ms(t);

t = process.hrtime.bigint();
const objects = copy.map(read);
const readMs = ms(t);
// The first build pays for JIT warm-up (a planner pays it once at start); later builds show
// the steady cost. Both are reported.
const builds: number[] = [];
let state!: ClusterState;
for (let i = 0; i < 3; i++) {
  t = process.hrtime.bigint();
  state = ClusterState.fromObjects(objects);
  builds.push(ms(t));
}
const coldBuildMs = builds[0]!;
const buildMs = [...builds.slice(1)].sort((a, b) => a - b)[0]!;
t = process.hrtime.bigint();
const hash = state.hash();
const hashMs = ms(t);
global.gc?.();
const heapState = process.memoryUsage().heapUsed - heap0;

t = process.hrtime.bigint();
const nodeState = renderNodeState(state.data, 'node-0', DEFAULT_PROXY_CONFIG);
const renderMs = ms(t);
t = process.hrtime.bigint();
nodeStateHash(nodeState);
const nodeHashMs = ms(t);

// One watch event = read the raw slice, apply it, commit the delta, compute the new root hash.
const perEvent: number[] = [];
for (let i = 0; i < EVENTS; i++) {
  const s = (i * 7919) % S;
  const rawSlice = makeSlice(`ns-${s % 50}`, s, E, N, i + 1, s % 4 === 0);
  const t1 = process.hrtime.bigint();
  state.apply({ op: 'upsert', object: read(rawSlice) });
  const delta = state.commit();
  state.hash();
  perEvent.push(ms(t1));
  if (!delta) throw new Error(`event ${i} (service ${s}) made no delta; every generated event changes an endpoint`);
}
const cpu0 = process.cpuUsage();
const t2 = process.hrtime.bigint();
for (let i = 0; i < 200; i++) {
  const s = (i * 104729) % S;
  state.apply({ op: 'upsert', object: read(makeSlice(`ns-${s % 50}`, s, E, N, EVENTS + i + 1, s % 4 === 0)) });
  state.commit();
  state.hash();
}
const cpu = process.cpuUsage(cpu0);
const cpuPerEventMs = (cpu.user + cpu.system) / 1000 / 200;
const wallPerEventMs = ms(t2) / 200;

const rows: [string, string, string][] = [
  ['baseline: JSON round trip of the raw objects', `${baselineMs.toFixed(0)} ms`, '1.00'],
  ['validate (readKubeObject) all objects', `${readMs.toFixed(0)} ms`, (readMs / baselineMs).toFixed(2)],
  ['full build, first (cold JIT)', `${coldBuildMs.toFixed(0)} ms`, (coldBuildMs / baselineMs).toFixed(2)],
  ['full build (ClusterState.fromObjects), warm', `${buildMs.toFixed(0)} ms`, (buildMs / baselineMs).toFixed(2)],
  ['content hash of the whole cluster (after build)', `${hashMs.toFixed(1)} ms`, (hashMs / baselineMs).toFixed(3)],
  ['render one node (renderNodeState)', `${renderMs.toFixed(0)} ms`, (renderMs / baselineMs).toFixed(2)],
  ['hash one node state', `${nodeHashMs.toFixed(0)} ms`, (nodeHashMs / baselineMs).toFixed(2)],
  [
    'one event → delta + new hash, p50',
    `${pct(perEvent, 0.5).toFixed(3)} ms`,
    (pct(perEvent, 0.5) / buildMs).toExponential(1) + ' of full build',
  ],
  [
    'one event → delta + new hash, p99',
    `${pct(perEvent, 0.99).toFixed(3)} ms`,
    (pct(perEvent, 0.99) / buildMs).toExponential(1) + ' of full build',
  ],
  ['one event, CPU time (mean of 200)', `${cpuPerEventMs.toFixed(3)} ms`, `wall ${wallPerEventMs.toFixed(3)} ms`],
];
console.log(
  `planner bench: ${S} services, ${S * E} endpoints, ${N} nodes, ${EVENTS} events; node ${process.version}; root ${hash.slice(0, 12)}`,
);
console.log(`| measure | value | ratio |\n| --- | --- | --- |`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log(
  `heap held by the cluster state: ${mb(heapState)} MiB (node state for one node: ${nodeState.virtualServers.length} virtual servers)`,
);
