// The give-way probes' measurement (bench/nftables/give-way-probe.ts, bench/applier/give-way-probe.ts):
// how long an apply that arrives during a resync waits, with the resync giving way
// (ResyncOptions.yieldTo, as the applier's periodic resync does) and without, alternating in one
// run on one dataplane. Per round and way: `beforeResync` (what makes the resync read), a resync,
// the apply arriving `arriveMs` into it, the wait from that arrival until the apply returned; a
// resync that gave way runs again after the apply, to its end, as the applier's does.
import { ResyncYielded, type Dataplane } from '../libs/dataplane/index.ts';
import type { NodeState } from '../libs/model/index.ts';

export interface GiveWayRounds {
  readonly waitGivesWayMs: number[];
  readonly waitWaitsMs: number[];
  readonly medianGivesWayMs: number;
  readonly medianWaitsMs: number;
  readonly ratioGivesWayVsWaits: number;
  /** Resyncs that ran to their end (the waiting way), start to end. */
  readonly wholeResyncMs: number[];
  /** The resyncs after giving way. */
  readonly retryAfterGivingWayMs: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `states`: what the arriving applies alternate between (the first differs from what `dp` holds). */
export async function giveWayRounds(o: {
  readonly dp: Dataplane;
  readonly rounds: number;
  readonly arriveMs: number;
  readonly states: readonly [NodeState, NodeState];
  readonly beforeResync?: () => void;
}): Promise<GiveWayRounds> {
  const waits: Record<'givesWay' | 'waits', number[]> = { givesWay: [], waits: [] };
  const wholeResyncMs: number[] = [];
  const retryMs: number[] = [];
  let step = 0;
  for (let round = 0; round < o.rounds; round++) {
    for (const way of round % 2 === 0 ? (['givesWay', 'waits'] as const) : (['waits', 'givesWay'] as const)) {
      o.beforeResync?.();
      const giveWay = way === 'givesWay' ? new AbortController() : undefined;
      const started = performance.now();
      const resync = o.dp.resync(giveWay ? { yieldTo: giveWay.signal } : undefined).then(
        (r) => {
          if (!r.verified || r.kernelWrites > 0) throw new Error(`resync: ${r.notes.join('; ')}`);
          return 'done' as const;
        },
        (e: unknown) => {
          if (e instanceof ResyncYielded) return 'yielded' as const;
          throw e;
        },
      );
      await Promise.race([sleep(o.arriveMs), resync]);
      const arrived = performance.now();
      giveWay?.abort();
      const outcome = await resync;
      if (outcome === 'done' && way === 'givesWay')
        throw new Error(`the resync ended before the change arrived (${o.arriveMs} ms): arrive sooner`);
      if (outcome === 'done') wholeResyncMs.push(performance.now() - started);
      const r = await o.dp.apply(step++ % 2 === 0 ? o.states[0] : o.states[1]);
      if (!r.verified) throw new Error(`apply: ${r.notes.join('; ')}`);
      waits[way].push(performance.now() - arrived);
      console.log(`round ${round} ${way}: waited ${waits[way].at(-1)?.toFixed(0)} ms (${outcome})`);
      if (outcome === 'yielded') {
        const t1 = performance.now();
        await o.dp.resync(); // the retry, to its end, as the applier runs it
        retryMs.push(performance.now() - t1);
      }
    }
  }
  return {
    waitGivesWayMs: waits.givesWay.map(Math.round),
    waitWaitsMs: waits.waits.map(Math.round),
    medianGivesWayMs: Math.round(median(waits.givesWay)),
    medianWaitsMs: Math.round(median(waits.waits)),
    ratioGivesWayVsWaits: Number((median(waits.givesWay) / median(waits.waits)).toFixed(3)),
    wholeResyncMs: wholeResyncMs.map(Math.round),
    retryAfterGivingWayMs: retryMs.map(Math.round),
  };
}
