/**
 * Summarises a V8 CPU profile (node --cpu-prof) of a planner in a bench run: where its thread was
 * held, since a planner's lease and heartbeats wait on it (docs/scale.md).
 *
 *   npx tsx bench/scale/profile-summary.ts PROFILE [--runs N]
 *     the N longest runs of samples under one top-level task (consecutive slices of the same task
 *     merge, so a run is an upper bound of one step), with the functions under them (ms inclusive)
 *   npx tsx bench/scale/profile-summary.ts PROFILE --from S --to S [--bucket MS] [NAME...]
 *     per bucket, ms in each named function (inclusive; every function when no name is given)
 */
import fs from 'node:fs';
import { BenchUsageError, benchArgs } from '../bench-cli.ts';

const { values, positionals } = benchArgs({
  options: {
    runs: { type: 'string', default: '12' },
    from: { type: 'string' },
    to: { type: 'string' },
    bucket: { type: 'string', default: '1000' },
  },
  allowPositionals: true,
});
const [file, ...names] = positionals;
if (!file) throw new BenchUsageError('a .cpuprofile file is required');
const seconds = (flag: string, v: string) => {
  if (!/^\d+(\.\d+)?$/.test(v)) throw new BenchUsageError(`--${flag} ${JSON.stringify(v)}: expected seconds`);
  return Number(v) * 1000;
};
const timeline = values.from !== undefined || values.to !== undefined;
const from = seconds('from', values.from ?? '0');
const to = values.to === undefined ? Number.POSITIVE_INFINITY : seconds('to', values.to);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}
const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id);

/** A sample's stack, outermost first, as "function:line" (the root left out). */
const stacks = new Map<number, string[]>();
function stackOf(id: number): string[] {
  let out = stacks.get(id);
  if (out) return out;
  out = [];
  for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
    const f = byId.get(x)!.callFrame;
    if (f.functionName !== '(root)') out.push(`${f.functionName || '(anon)'}:${f.lineNumber}`);
  }
  out.reverse();
  stacks.set(id, out);
  return out;
}

// each sample's time (ms from the start) and how long it stands for (the delta to the next one)
let t = 0;
const samples = profile.samples.map((id, i) => {
  t += profile.timeDeltas[i]! / 1000;
  return { id, t, ms: (profile.timeDeltas[i + 1] ?? 0) / 1000 };
});
const ms = (x: number) => Math.round(x);

if (!timeline) {
  interface Run {
    key: string;
    at: number;
    ms: number;
    gc: number;
    under: Map<string, number>;
  }
  const runs: Run[] = [];
  let run: Run | undefined;
  for (const s of samples) {
    const stack = stackOf(s.id);
    const top = stack[0]?.split(':')[0];
    if (top === '(garbage collector)') {
      if (run) (run.ms += s.ms), (run.gc += s.ms);
      continue;
    }
    if (top === undefined || top === '(idle)' || top === '(program)') {
      run = undefined;
      continue;
    }
    const key = stack.slice(0, 4).join(' > ');
    if (run?.key !== key) runs.push((run = { key, at: s.t, ms: 0, gc: 0, under: new Map() }));
    run.ms += s.ms;
    for (const f of new Set(stack.slice(4, 14))) run.under.set(f, (run.under.get(f) ?? 0) + s.ms);
  }
  runs.sort((a, b) => b.ms - a.ms);
  for (const r of runs.slice(0, Number(values.runs))) {
    const under = [...r.under]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([f, x]) => `${f}=${ms(x)}`);
    console.log(`${String(ms(r.ms)).padStart(6)} ms at ${(r.at / 1000).toFixed(1)} s (gc ${ms(r.gc)}): ${r.key}`);
    console.log(`         ${under.join(' ')}`);
  }
} else {
  const bucket = Number(values.bucket);
  const buckets = new Map<number, Map<string, number>>();
  for (const s of samples) {
    if (s.t < from || s.t >= to) continue;
    const k = Math.floor((s.t - from) / bucket);
    const m = buckets.get(k) ?? new Map<string, number>();
    buckets.set(k, m);
    for (const f of new Set(stackOf(s.id).map((x) => x.split(':')[0]!)))
      if (names.length === 0 || names.includes(f) || f.startsWith('(')) m.set(f, (m.get(f) ?? 0) + s.ms);
  }
  for (const [k, m] of [...buckets].sort((a, b) => a[0] - b[0])) {
    const top = [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 9)
      .map(([f, x]) => `${f}=${ms(x)}`);
    console.log(`${((from + k * bucket) / 1000).toFixed(1).padStart(6)} s  ${top.join(' ')}`);
  }
}
