/**
 * One applier's render cost per event, without the bus: full renderNodeState + nodeStateHash
 * versus NodeStateRenderer.update + hash (+ state) for one service's endpoints changing. Usage:
 *   npx tsx bench/fanout/node-renderer-bench.ts [--services 10000] [--events 500]
 */
import { DEFAULT_PROXY_CONFIG, type DataDelta } from '../../libs/model/index.ts';
import { ClusterDataIndex, NodeStateRenderer, nodeStateHash, renderNodeState } from '../../libs/planner/index.ts';
import { node, service } from '../../test/libs/bus/fixtures.ts';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1]!);
const services = Number(args.get('services') ?? 10_000);
const events = Number(args.get('events') ?? 500);

const data = ClusterDataIndex.from({
  services: Array.from({ length: services }, (_, i) => service(i, 5)),
  nodes: [node('n1')],
});
const change = (e: number): DataDelta => ({
  upsertServices: [service(e % services, 5, e + 1)],
  removeServices: [],
  upsertNodes: [],
  removeNodes: [],
});
const time = (f: () => void) => {
  const t = performance.now();
  f();
  return performance.now() - t;
};

// best of 5 (the first call also pays for JIT warm-up)
const fullMs = Math.min(
  ...Array.from({ length: 5 }, () => time(() => nodeStateHash(renderNodeState(data, 'n1', DEFAULT_PROXY_CONFIG)))),
);
const r = new NodeStateRenderer('n1', DEFAULT_PROXY_CONFIG);
const resetMs = time(() => {
  r.reset(data);
  r.hash();
});
let e = 0;
const updateMs =
  time(() => {
    for (let i = 0; i < events; i++, e++) {
      const d = change(e);
      data.apply(d);
      r.update(data, d);
      r.hash();
    }
  }) / events;
const withStateMs =
  time(() => {
    for (let i = 0; i < events; i++, e++) {
      const d = change(e);
      data.apply(d);
      r.update(data, d);
      r.hash();
      r.state();
    }
  }) / events;
const agrees = r.hash() === nodeStateHash(renderNodeState(data, 'n1', DEFAULT_PROXY_CONFIG));
console.log(
  JSON.stringify({
    services,
    events,
    fullRenderAndHashMs: +fullMs.toFixed(1),
    resetAndHashMs: +resetMs.toFixed(1),
    perEventUpdateAndHashMs: +updateMs.toFixed(3),
    perEventWithStateMs: +withStateMs.toFixed(3),
    note: 'per-event figures include ClusterDataIndex.apply',
    agrees,
  }),
);
if (!agrees) process.exit(1);
