/**
 * ACK parse bench (issue 15, planner CPU per event): what reading one node's ACK costs the
 * planner's thread, which reads one per node per event (5,000 per event at 5,000 nodes).
 * Same run, interleaved rounds, the same encoded ACKs (as an applier sends them, with and without
 * a health verdict and probe report):
 *   baseline   decode + JSON.parse alone (no check: the least any parse costs)
 *   zod        decode + JSON.parse + AckOrNackSchema.safeParse (what parseAckOrNack did before)
 *   now        parseAckOrNack (the hand-written check, zod only for what it does not show as is)
 *   node --import tsx bench/planner/ack-parse-bench.ts [--acks 5000] [--rounds 15] [--out FILE]
 * Prints a table; the last stdout line is JSON (µs per ACK, medians over rounds, and ratios).
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { writeFileSync } from 'node:fs';
import { parseAckOrNack } from '../../libs/bus/index.ts';
import { AckOrNackSchema, type Ack } from '../../libs/model/index.ts';

const { values } = benchArgs({
  options: {
    acks: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '15' },
    out: { type: 'string' },
  },
});
const N = Number(values.acks);
const ROUNDS = Number(values.rounds);

const hex = (i: number, salt: string) => (salt + i.toString(16)).padStart(64, '0').slice(-64);
function ackOf(i: number, withHealth: boolean): Ack {
  const at = new Date(1_764_000_000_000 + i).toISOString();
  return {
    type: 'ACK',
    node: `node-${String(i).padStart(4, '0')}`,
    version: 1000 + (i % 7),
    configRevision: 3,
    dataHash: hex(i, 'd'),
    nodeStateHash: hex(i, 'e'),
    mode: 'ipvs',
    kernelWrites: i % 5,
    timings: { fetchMs: 0.21, renderMs: 0.08, applyMs: 0.31, ...(withHealth ? { probeMs: 1.7 } : {}) },
    ...(withHealth
      ? {
          health: {
            verdict: 'healthy' as const,
            stateVerified: true,
            reason: 'state read back equal; probe 8/8 ok',
            probe: {
              attempted: 8,
              succeeded: 8,
              failed: 0,
              unreachable: 0,
              latencyMs: { p50: 0.41, max: 0.93 },
              failures: [],
              at,
            },
            at,
          },
        }
      : {}),
    instance: hex(i, 'f').slice(0, 16),
    at,
  };
}
const enc = new TextEncoder();
const sets = {
  'with health': Array.from({ length: N }, (_, i) => enc.encode(JSON.stringify(ackOf(i, true)))),
  'without health': Array.from({ length: N }, (_, i) => enc.encode(JSON.stringify(ackOf(i, false)))),
};
const utf8 = new TextDecoder('utf-8', { fatal: true });

let sink = 0; // keeps every result alive, so no parse is optimized away
const ways: Record<string, (b: Uint8Array) => void> = {
  baseline: (b) => {
    sink += (JSON.parse(utf8.decode(b)) as Ack).version;
  },
  zod: (b) => {
    const r = AckOrNackSchema.safeParse(JSON.parse(utf8.decode(b)));
    if (!r.success) throw new Error(r.error.issues[0]!.message);
    sink += r.data.version;
  },
  now: (b) => {
    const r = parseAckOrNack(b);
    if ('error' in r) throw new Error(r.error);
    sink += r.value.version;
  },
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const result: Record<string, Record<string, number>> = {};
for (const [set, acks] of Object.entries(sets)) {
  const perRound: Record<string, number[]> = { baseline: [], zod: [], now: [] };
  for (let r = 0; r < ROUNDS + 2; r++) {
    for (const [way, f] of Object.entries(ways)) {
      const t0 = performance.now();
      for (const b of acks) f(b);
      const us = ((performance.now() - t0) * 1000) / acks.length;
      if (r >= 2) perRound[way]!.push(us); // two warm-up rounds: the JIT's, not the parse's
    }
  }
  const m = Object.fromEntries(Object.entries(perRound).map(([w, xs]) => [w, median(xs)]));
  result[set] = {
    bytes: acks[0]!.length,
    baselineUs: m.baseline!,
    zodUs: m.zod!,
    nowUs: m.now!,
    zodOverBaseline: m.zod! / m.baseline!,
    nowOverBaseline: m.now! / m.baseline!,
    nowOverZod: m.now! / m.zod!,
  };
}

console.log('| ACK | bytes | baseline µs | zod µs | now µs | zod / baseline | now / baseline | now / zod |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [set, r] of Object.entries(result))
  console.log(
    `| ${set} | ${r.bytes} | ${r.baselineUs!.toFixed(2)} | ${r.zodUs!.toFixed(2)} | ${r.nowUs!.toFixed(2)} | ${r.zodOverBaseline!.toFixed(2)} | ${r.nowOverBaseline!.toFixed(2)} | ${r.nowOverZod!.toFixed(2)} |`,
  );
const json = JSON.stringify({ acks: N, rounds: ROUNDS, node: process.version, sink: sink > 0, ...result });
if (values.out) writeFileSync(values.out, `${json}\n`);
console.log(json);
