// Probe: how long an endpoint change that arrives during a whole-table resync waits, with the
// resync giving way (ResyncOptions.yieldTo, as the applier's periodic resync does) and without
// (every resync before 2026-12-05), alternating in one run on one table. Loads S services × E
// endpoints with an NftablesDataplane (notifications off, so every resync after a commit reads
// the whole table), then per round: a commit to another table moves the generation, a resync
// starts, the change "arrives" `--arrive-ms` later, and the wait runs from that arrival until the
// change's apply returned (the resync's end or its giving way, then the apply). A resync that gave
// way runs again after the apply, as the applier's does (its time reported apart).
// Run inside a netns of its own (the netlink sockets live there):
//   ip netns add gw && ip netns exec gw node --import tsx bench/nftables/give-way-probe.ts \
//     --services 10000 --endpoints 10 --rounds 3; ip netns del gw
// Last stdout line: JSON (waits in ms per mode, their medians and ratio, the load average).
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { NftablesDataplane, NftNetlinkRunner, ResyncYielded } from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';
import { benchState } from './bench-state.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    'arrive-ms': { type: 'string', default: '1000' },
  },
});
const S = Number(values.services);
const E = Number(values.endpoints);
const ROUNDS = Number(values.rounds);
const ARRIVE_MS = Number(values['arrive-ms']);
const TABLE = 'giveway';
const nft = (...args: string[]) => execFileSync('nft', args, { encoding: 'utf8' });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

tuneV8ForApplier(); // as the applier command does
const before = benchState(S, E, false);
const changedVs = benchState(S, E, true).virtualServers;
// as the applier's incremental renderer hands it over: unchanged services are the same objects
const after: NodeState = {
  ...before,
  virtualServers: before.virtualServers.map((v, i) => {
    const c = changedVs[i] ?? v;
    return JSON.stringify(v) === JSON.stringify(c) ? v : c;
  }),
};
const load0 = loadavg()[0];
const runner = new NftNetlinkRunner();
const dp = new NftablesDataplane({ runner, table: TABLE, changeNotifications: false });
const waits: Record<'givesWay' | 'waits', number[]> = { givesWay: [], waits: [] };
const wholeResyncMs: number[] = [];
const retryMs: number[] = [];
let next = after;
try {
  await dp.apply(before);
  // a first whole read starts the dump thread, as an applier's first large read does
  nft('add', 'table', 'inet', `${TABLE}-other`);
  nft('delete', 'table', 'inet', `${TABLE}-other`);
  await dp.resync();
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 === 0 ? (['givesWay', 'waits'] as const) : (['waits', 'givesWay'] as const)) {
      nft('add', 'table', 'inet', `${TABLE}-other`);
      nft('delete', 'table', 'inet', `${TABLE}-other`);
      const giveWay = mode === 'givesWay' ? new AbortController() : undefined;
      const t0 = performance.now();
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
        throw new Error(`the resync ended before the change arrived (${ARRIVE_MS} ms): lower --arrive-ms`);
      if (outcome === 'done') wholeResyncMs.push(performance.now() - t0);
      const r = await dp.apply(next);
      if (!r.verified) throw new Error(`apply: ${r.notes.join('; ')}`);
      waits[mode].push(performance.now() - arrived);
      next = next === after ? before : after;
      if (outcome === 'yielded') {
        const t1 = performance.now();
        await dp.resync(); // the retry, to its end, as the applier runs it
        retryMs.push(performance.now() - t1);
      }
      console.log(`round ${round} ${mode}: waited ${waits[mode].at(-1)?.toFixed(0)} ms (${outcome})`);
    }
  }
} finally {
  await dp.cleanup().catch(() => undefined);
  await dp.close();
}
const out = {
  services: S,
  endpoints: E,
  arriveMs: ARRIVE_MS,
  waitGivesWayMs: waits.givesWay.map(Math.round),
  waitWaitsMs: waits.waits.map(Math.round),
  medianGivesWayMs: Math.round(median(waits.givesWay)),
  medianWaitsMs: Math.round(median(waits.waits)),
  ratioGivesWayVsWaits: Number((median(waits.givesWay) / median(waits.waits)).toFixed(3)),
  wholeResyncMs: wholeResyncMs.map(Math.round),
  retryAfterGivingWayMs: retryMs.map(Math.round),
  loadAverage1m: [load0, loadavg()[0]],
};
console.log(JSON.stringify(out));
