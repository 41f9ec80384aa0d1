/**
 * What the planner's /status pays for its VIP-claim conflicts (vipConflicts) once per published
 * content, on its own thread. Baseline, same run and same cluster: the claims as vipConflicts read
 * them before, through renderServiceForNode for every service (every endpoint selected, sorted and
 * made a real server; the old check's own grouping not counted); then the whole vipConflicts now
 * (serviceClaims: no endpoint read; test/libs/planner/node-state-renderer.test.ts holds the claims
 * equal to the rendering's). Last stdout line: JSON.
 *   node --max-old-space-size=6000 --import tsx bench/planner/vip-conflicts-bench.ts \
 *     [--services 10000] [--endpoints 250] [--nodes 5000] [--runs 5]
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { DEFAULT_PROXY_CONFIG, readKubeObject, type KubeObject } from '../../libs/model/index.ts';
import { ClusterState, neutralContext, renderServiceForNode, vipConflicts } from '../../libs/planner/index.ts';
import { generateCluster } from './generate-cluster.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '250' },
    nodes: { type: 'string', default: '5000' },
    runs: { type: 'string', default: '5' },
  },
});
const [S, E, N, RUNS] = [values.services, values.endpoints, values.nodes, values.runs].map(Number) as [
  number,
  number,
  number,
  number,
];

const read = (raw: unknown): KubeObject => {
  const r = readKubeObject(raw);
  if (!r.ok) throw new Error(r.rejection.reason);
  return r.object;
};
const gen = generateCluster({ services: S, endpointsPerService: E, nodes: N });
const data = ClusterState.fromObjects([...gen.nodes, ...gen.services, ...gen.slices].map(read)).data;

/** The claims as vipConflicts took them before: every service rendered, endpoints and all. */
function renderedClaimCount(): number {
  const ctx = neutralContext(DEFAULT_PROXY_CONFIG, data.nodeAddressOwners());
  let n = 0;
  for (const svc of data.services()) n += renderServiceForNode(svc, ctx).virtualServers.length;
  return n;
}

const ms = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;
const rendered: number[] = [];
const now: number[] = [];
let conflicts = 0;
for (let r = 0; r < RUNS; r++) {
  let t = process.hrtime.bigint();
  renderedClaimCount();
  rendered.push(ms(t));
  t = process.hrtime.bigint();
  conflicts = vipConflicts(data, DEFAULT_PROXY_CONFIG).length;
  now.push(ms(t));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const out = {
  services: S,
  endpointsPerService: E,
  nodes: N,
  conflicts,
  renderedMs: rendered.map((x) => +x.toFixed(1)),
  vipConflictsMs: now.map((x) => +x.toFixed(1)),
  ratioMedian: +(median(now) / median(rendered)).toFixed(3),
};
console.log(`rendering every service (before): ${out.renderedMs.join(', ')} ms`);
console.log(`vipConflicts (claims only, the whole check): ${out.vipConflictsMs.join(', ')} ms`);
console.log(JSON.stringify(out));
