// Probe: how long an endpoint change that arrives during a whole-table resync waits, with the
// resync giving way (ResyncOptions.yieldTo, as the applier's periodic resync does) and without
// (every resync before 2026-12-05), alternating in one run on one table (bench/give-way-rounds.ts).
// Loads S services × E endpoints with an NftablesDataplane (notifications off, so every resync
// after a commit reads the whole table); per round a commit to another table moves the generation
// and a resync starts; the change "arrives" `--arrive-ms` into it.
// Run inside a netns of its own (the netlink sockets live there):
//   ip netns add gw && ip netns exec gw node --import tsx bench/nftables/give-way-probe.ts \
//     --services 10000 --endpoints 10 --rounds 3; ip netns del gw
// Last stdout line: JSON (waits in ms per way, their medians and ratio, the load average).
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { NftablesDataplane, NftNetlinkRunner } from '../../libs/dataplane/index.ts';
import type { NodeState } from '../../libs/model/index.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';
import { giveWayRounds } from '../give-way-rounds.ts';
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
const foreignCommit = () => {
  nft('add', 'table', 'inet', `${TABLE}-other`);
  nft('delete', 'table', 'inet', `${TABLE}-other`);
};
try {
  await dp.apply(before);
  // a first whole read starts the dump thread, as an applier's first large read does
  foreignCommit();
  await dp.resync();
  // each resync after a foreign commit reads the whole table (notifications off)
  const rounds = await giveWayRounds({
    dp,
    rounds: ROUNDS,
    arriveMs: ARRIVE_MS,
    states: [after, before],
    beforeResync: foreignCommit,
  });
  console.log(
    JSON.stringify({ services: S, endpoints: E, arriveMs: ARRIVE_MS, ...rounds, loadAverage1m: [load0, loadavg()[0]] }),
  );
} finally {
  await dp.cleanup().catch(() => undefined);
  await dp.close();
}
