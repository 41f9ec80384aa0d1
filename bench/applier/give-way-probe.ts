// Probe (ipvs mode): how long an endpoint change that arrives during a resync waits, with the
// resync giving way (ResyncOptions.yieldTo, as the applier's periodic resync does: in ipvs mode
// between its kernel read's steps or once it is read, before it plans and compares) and without,
// alternating in one run (bench/give-way-rounds.ts). Loads S services × E endpoints
// (bench-state.ts, glue off); the change "arrives" `arriveMs` into each resync.
// In the test VM, a netns of its own (the IPVS state lives there):
//   test/vm/harness/run-in-vm.sh --mem 6144 -- bash -c 'ip netns add gw && ip netns exec gw \
//     node --import tsx bench/applier/give-way-probe.ts 10000 10 3 1000; rc=$?; ip netns del gw; exit $rc'
// Arguments: services, endpoints, rounds, arrive-ms. Last stdout line: JSON.
import { execFileSync } from 'node:child_process';
import { IpvsDataplane, MemoryOwnershipStore, NetlinkKernel } from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';
import { giveWayRounds } from '../give-way-rounds.ts';
import { ipvsBenchState } from './bench-state.ts';

const [S, E, ROUNDS, ARRIVE_MS] = [10000, 10, 3, 1000].map((d, i) => Number(process.argv[2 + i] ?? d));

tuneV8ForApplier(); // as the applier command does
// IPVS takes a real server only with a unicast route to it and a local routing table (`lo up`),
// as in ipvs-apply.bench.ts
execFileSync('sh', [
  '-c',
  'ip link set lo up; ip link add gw0 type dummy 2>/dev/null || true; ip link set gw0 up; ip route replace 10.128.0.0/9 dev gw0; ip route replace 10.200.0.0/16 dev gw0',
]);
const kernel = await NetlinkKernel.open();
const dp = new IpvsDataplane({ kernel, store: new MemoryOwnershipStore(), netfilter: false });
const base = ipvsBenchState(S, E);
/** `base` with one more endpoint on service i (or back to `base`). */
const withEndpoint = (i: number): NodeState => ({
  ...base,
  virtualServers: base.virtualServers.map((v, j) =>
    j !== i ? v : { ...v, realServers: [...v.realServers, { address: '10.200.0.1', port: 9000, weight: 1 }] },
  ),
});
const t0 = performance.now();
const loaded = await dp.apply(base);
if (!loaded.verified) throw new Error(`load: ${loaded.notes.join('; ')}`);
const loadMs = performance.now() - t0;
try {
  const rounds = await giveWayRounds({ dp, rounds: ROUNDS, arriveMs: ARRIVE_MS, states: [withEndpoint(S >> 1), base] });
  console.log(
    JSON.stringify({ services: S, endpoints: E, arriveMs: ARRIVE_MS, loadMs: Math.round(loadMs), ...rounds }),
  );
} finally {
  await dp.cleanup().catch(() => undefined);
  await dp.close();
}
