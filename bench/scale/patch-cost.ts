/**
 * What a large service's patch costs (libs/model/service-patch.ts), against the content hash of
 * the same entry in the same run (what the planner computes for every changed entry anyway, and
 * what a node computes for an entry it is sent whole and unsigned). Usage:
 *   node --import tsx bench/scale/patch-cost.ts [--endpoints 5000] [--rounds 40]
 * Each round: one endpoint of the service made not ready; timed (median of the rounds):
 *  - hashMs: contentHash of the new entry (the baseline);
 *  - diffMs: diffServiceEntry (the planner: the patch and its check that it rebuilds the entry);
 *  - rebuildMs: decodePatchedDelta + expandPatchedDelta, vouched for (a node: its entry hash taken
 *    from the patch, signed or with its digest), and rebuildHashingMs, the same with nothing
 *    vouching (the node hashes the rebuilt entry);
 *  - parseDeltaMs: JSON.parse of the whole delta a node would otherwise be sent.
 * Last stdout line: JSON with the medians, their ratios to hashMs, and the bytes of both messages.
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { expandPatchedDelta } from '../../libs/applier/index.ts';
import { decodePatchedDelta, patchNotice } from '../../libs/bus/index.ts';
import { contentHash, diffServiceEntry, type ServiceEntry } from '../../libs/model/index.ts';
import { sortedLargeService, VersionMaker } from '../../test/libs/bus/fixtures.ts';

const { values } = benchArgs({
  options: {
    endpoints: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '40' },
  },
});
const N = Number(values.endpoints);
const ROUNDS = Number(values.rounds);

/** The service as the planner keeps it (endpoints in entry order), endpoint `down` not ready. */
function entry(down: number): ServiceEntry {
  const e = sortedLargeService('ns/big', N);
  const p = e.ports[0]!;
  const endpoints = p.endpoints.map((x, i) => (i === down ? { ...x, ready: false } : x));
  return JSON.parse(JSON.stringify({ ...e, ports: [{ ...p, endpoints }] })) as ServiceEntry; // as parsed from the wire
}

const time = (f: () => unknown): number => {
  const t = performance.now();
  f();
  return performance.now() - t;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const base = entry(-1);
const baseHash = contentHash(base);
const m = new VersionMaker();
m.next({ upsertServices: [base] });
const runs = {
  hashMs: [] as number[],
  diffMs: [] as number[],
  rebuildMs: [] as number[],
  rebuildHashingMs: [] as number[],
  parseDeltaMs: [] as number[],
};
let patchBytes = 0;
let deltaBytes = 0;
for (let r = 0; r < ROUNDS; r++) {
  const next = entry((r * 97) % N);
  let hash = '';
  runs.hashMs.push(time(() => (hash = contentHash(next))));
  let patch: ReturnType<typeof diffServiceEntry>;
  runs.diffMs.push(time(() => (patch = diffServiceEntry(base, next, baseHash, hash))));
  if (!patch) throw new Error('no patch made');
  const v = {
    ...m.history[0]!.delta,
    version: 2,
    parent: 1,
    hash: 'f'.repeat(64),
    delta: { ...m.history[0]!.delta.delta, upsertServices: [next] },
  };
  const payload = patchNotice(v, [patch])!.payload;
  const whole = JSON.stringify(v);
  patchBytes = Buffer.byteLength(payload);
  deltaBytes = Buffer.byteLength(whole);
  const held = () => ({ entry: base, hash: baseHash });
  for (const [k, vouched] of [
    ['rebuildMs', true],
    ['rebuildHashingMs', false],
  ] as const) {
    runs[k].push(
      time(() => {
        const d = decodePatchedDelta(payload);
        if (!d.ok) throw new Error(d.error);
        const x = expandPatchedDelta(d.value, held, vouched);
        if ('error' in x) throw new Error(x.error);
      }),
    );
  }
  runs.parseDeltaMs.push(time(() => JSON.parse(whole)));
}
const med = Object.fromEntries(Object.entries(runs).map(([k, xs]) => [k, median(xs)])) as Record<
  keyof typeof runs,
  number
>;
for (const [k, v] of Object.entries(med))
  console.log(`${k.padEnd(18)} ${v.toFixed(2)} ms  (${(v / med.hashMs).toFixed(3)}× the hash)`);
console.log(`patch ${patchBytes} B, whole delta ${deltaBytes} B`);
console.log(
  JSON.stringify({
    endpoints: N,
    rounds: ROUNDS,
    medians: med,
    ratiosToHash: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, v / med.hashMs])),
    patchBytes,
    deltaBytes,
  }),
);
