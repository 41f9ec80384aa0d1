// Probe (ipvs mode): how long an endpoint change that arrives during a resync waits, with the
// resync giving way (ResyncOptions.yieldTo, as the applier's periodic resync does: in ipvs mode
// once its kernel read is done, before it plans and compares) and without, alternating in one
// run. Loads S services × E endpoints (bench-state.ts, glue off), then per round a resync starts,
// the change "arrives" `arriveMs` later, and the wait runs from that arrival until the change's
// apply returned. A resync that gave way runs again after the apply, as the applier's does.
// In the test VM, a netns of its own (the IPVS state lives there):
//   test/vm/harness/run-in-vm.sh --mem 6144 -- bash -c 'ip netns add gw && ip netns exec gw \
//     node --import tsx bench/applier/give-way-probe.ts 10000 10 3 1000; rc=$?; ip netns del gw; exit $rc'
// Arguments: services, endpoints, rounds, arrive-ms. Last stdout line: JSON.
import { execFileSync } from 'node:child_process';
import { IpvsDataplane, MemoryOwnershipStore, NetlinkKernel, ResyncYielded } from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';
import { ipvsBenchState } from './bench-state.ts';

const [S, E, ROUNDS, ARRIVE_MS] = [10000, 10, 3, 1000].map((d, i) => Number(process.argv[2 + i] ?? d));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
const waits: Record<'givesWay' | 'waits', number[]> = { givesWay: [], waits: [] };
const wholeResyncMs: number[] = [];
const retryMs: number[] = [];
const t0 = performance.now();
const loaded = await dp.apply(base);
if (!loaded.verified) throw new Error(`load: ${loaded.notes.join('; ')}`);
const loadMs = performance.now() - t0;
let step = 0;
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 === 0 ? (['givesWay', 'waits'] as const) : (['waits', 'givesWay'] as const)) {
      const giveWay = mode === 'givesWay' ? new AbortController() : undefined;
      const started = performance.now();
      const resync = dp.resync(giveWay ? { yieldTo: giveWay.signal } : undefined).then(
        (r) => {
          if (!r.verified || r.kernelWrites > 0) throw new Error(`resync: ${r.notes.join('; ')}`);
          return 'done' as const;
        },
        (e: unknown) => {
          if (e instanceof ResyncYielded) return 'yielded' as const;
          throw e;
        },
      );
      await Promise.race([sleep(ARRIVE_MS), resync]);
      const arrived = performance.now();
      giveWay?.abort();
      const outcome = await resync;
      if (outcome === 'done' && mode === 'givesWay')
        throw new Error(`the resync ended before the change arrived (${ARRIVE_MS} ms): lower arrive-ms`);
      if (outcome === 'done') wholeResyncMs.push(performance.now() - started);
      step++;
      const r = await dp.apply(step % 2 === 1 ? withEndpoint(S >> 1) : base);
      if (!r.verified) throw new Error(`apply: ${r.notes.join('; ')}`);
      waits[mode].push(performance.now() - arrived);
      console.log(`round ${round} ${mode}: waited ${waits[mode].at(-1)?.toFixed(0)} ms (${outcome})`);
      if (outcome === 'yielded') {
        const t1 = performance.now();
        await dp.resync(); // the retry, to its end, as the applier runs it
        retryMs.push(performance.now() - t1);
      }
    }
  }
} finally {
  await dp.cleanup().catch(() => undefined);
  await dp.close();
}
console.log(
  JSON.stringify({
    services: S,
    endpoints: E,
    arriveMs: ARRIVE_MS,
    loadMs: Math.round(loadMs),
    waitGivesWayMs: waits.givesWay.map(Math.round),
    waitWaitsMs: waits.waits.map(Math.round),
    medianGivesWayMs: Math.round(median(waits.givesWay)),
    medianWaitsMs: Math.round(median(waits.waits)),
    ratioGivesWayVsWaits: Number((median(waits.givesWay) / median(waits.waits)).toFixed(3)),
    wholeResyncMs: wholeResyncMs.map(Math.round),
    retryAfterGivingWayMs: retryMs.map(Math.round),
  }),
);
