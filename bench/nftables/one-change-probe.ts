// Dev probe (not the bench): the whole NftablesDataplane.apply of a one-endpoint change (render,
// diff, batch, and the read-back of what it touched unless --no-verify), S services × E endpoints
// loaded first, the change handed over as the applier's incremental renderer does (unchanged
// services the same objects). Applies the changed state and the loaded one alternately, N times
// each way after N untimed, and prints p50/p90; with --profile FILE, a CPU profile of N more.
// Run INSIDE a network namespace of its own:
//   ip netns add p && ip netns exec p node --import tsx bench/nftables/one-change-probe.ts \
//     [--services 10000] [--endpoints 10] [--changes 20] [--no-verify] [--adopt] [--profile FILE]; ip netns del p
import { BenchUsageError, benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { writeFileSync } from 'node:fs';
import { NftablesDataplane, NftNetlinkRunner } from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';
import { startCpuProfile } from '../cpu-profile.ts';
import { benchState } from './bench-state.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    changes: { type: 'string', default: '20' },
    'no-verify': { type: 'boolean', default: false },
    adopt: { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const S = Number(values.services),
  E = Number(values.endpoints),
  N = Number(values.changes);
if (!(S > 1 && E > 0 && N > 0)) throw new BenchUsageError('--services over 1, --endpoints and --changes over 0');
tuneV8ForApplier();
const before = benchState(S, E);
const changedVs = benchState(S, E, true).virtualServers;
const mid = Math.floor(S / 2);
const after: NodeState = {
  ...before,
  virtualServers: before.virtualServers.map((v, i) =>
    v.servicePort === changedVs[i]!.servicePort && v.realServers[0]!.address === changedVs[i]!.realServers[0]!.address
      ? v
      : changedVs[i]!,
  ),
};
const changed = after.virtualServers.filter((v, i) => v !== before.virtualServers[i]).length;
if (changed !== 1) throw new Error(`expected one changed service (the middle one, ${mid}), got ${changed}`);
const runner = new NftNetlinkRunner();
const loader = new NftablesDataplane({ runner, verifyAfterApply: !values['no-verify'] });
const load = await loader.apply(before);
if (!load.verified) throw new Error(`load not verified: ${load.notes.join('; ')}`);
// --adopt: the changes go through another dataplane that adopted the loaded table (one whole
// read, as a restarted applier; the bench's verified changes run so)
const dp = values.adopt ? new NftablesDataplane({ runner, verifyAfterApply: !values['no-verify'] }) : loader;
if (dp !== loader && (await dp.apply(before)).kernelWrites !== 0) throw new Error('the adoption wrote');

async function round(): Promise<number[]> {
  const times: number[] = [];
  for (let c = 0; c < N; c++)
    for (const s of [after, before]) {
      const t = performance.now();
      const r = await dp.apply(s);
      times.push(performance.now() - t);
      if (!r.verified || r.kernelWrites === 0)
        throw new Error(`change not verified or wrote nothing: ${r.notes.join('; ')}`);
    }
  return times.sort((a, b) => a - b);
}
await round(); // warm-up
const times = await round();
const pct = (p: number) => +times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(2);
if (values.profile) {
  const stop = await startCpuProfile();
  await round();
  writeFileSync(values.profile, JSON.stringify(await stop()));
}
await dp.close?.();
console.log(
  JSON.stringify({
    services: S,
    endpoints: E,
    verify: !values['no-verify'],
    applyMs: { p50: pct(0.5), p90: pct(0.9) },
  }),
);
