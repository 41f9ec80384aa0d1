// Summarises a V8 CPU profile (node --cpu-prof) of a planner in a bench run: where its thread
// was held, since a planner's lease and heartbeats wait on it (docs/scale.md).
//   node bench/scale/profile-summary.mjs PROFILE runs [N]
//     the N longest runs of samples under one top-level task (consecutive slices of the same task
//     merge, so a run is an upper bound of one step), with the functions under them (ms inclusive)
//   node bench/scale/profile-summary.mjs PROFILE timeline FROM_S TO_S BUCKET_MS [NAMES...]
//     per bucket, ms in each named function (inclusive; all names when none given)
import fs from 'node:fs';
const [file, mode = 'runs', a, b, c, ...names] = process.argv.slice(2);
const p = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of p.nodes) for (const ch of n.children ?? []) parent.set(ch, n.id);
const stackCache = new Map();
const stack = (id) => {
  if (stackCache.has(id)) return stackCache.get(id);
  const out = [];
  for (let x = id; x !== undefined; x = parent.get(x)) {
    const n = byId.get(x);
    if (n.callFrame.functionName !== '(root)')
      out.push(`${n.callFrame.functionName || '(anon)'}:${n.callFrame.lineNumber}`);
  }
  out.reverse();
  stackCache.set(id, out);
  return out;
};
let t = p.startTime;
const samples = p.samples.map((id, i) => {
  t += p.timeDeltas[i];
  return { id, t: (t - p.startTime) / 1000, dt: (p.timeDeltas[i + 1] ?? 0) / 1000 };
});
if (mode === 'runs') {
  const runs = [];
  let cur;
  for (const s of samples) {
    const st = stack(s.id);
    const top = st[0]?.split(':')[0];
    if (top === '(garbage collector)') {
      if (cur) {
        cur.ms += s.dt;
        cur.gc += s.dt;
      }
      continue;
    }
    if (top === '(idle)' || top === '(program)' || !top) {
      cur = undefined;
      continue;
    }
    const key = st.slice(0, 4).join(' > ');
    if (!cur || cur.key !== key) {
      cur = { key, at: s.t, ms: 0, gc: 0, deep: new Map() };
      runs.push(cur);
    }
    cur.ms += s.dt;
    for (const f of new Set(st.slice(4, 14))) cur.deep.set(f, (cur.deep.get(f) ?? 0) + s.dt);
  }
  runs.sort((x, y) => y.ms - x.ms);
  for (const r of runs.slice(0, Number(a ?? 12))) {
    const deep = [...r.deep]
      .sort((x, y) => y[1] - x[1])
      .slice(0, 8)
      .map(([f, ms]) => `${f}=${Math.round(ms)}`)
      .join(' ');
    console.log(
      `${Math.round(r.ms).toString().padStart(6)} ms at ${(r.at / 1000).toFixed(1)} s (gc ${Math.round(r.gc)}): ${r.key}\n         ${deep}`,
    );
  }
} else {
  const from = Number(a) * 1000,
    to = Number(b) * 1000,
    bucket = Number(c);
  const buckets = new Map();
  for (const s of samples) {
    if (s.t < from || s.t >= to) continue;
    const k = Math.floor((s.t - from) / bucket);
    const m = buckets.get(k) ?? new Map();
    buckets.set(k, m);
    for (const f of new Set(stack(s.id).map((x) => x.split(':')[0])))
      if (names.length === 0 || names.includes(f) || f.startsWith('(')) m.set(f, (m.get(f) ?? 0) + s.dt);
  }
  for (const [k, m] of [...buckets].sort((x, y) => x[0] - y[0])) {
    const top = [...m]
      .filter(([f]) => !['(root)'].includes(f))
      .sort((x, y) => y[1] - x[1])
      .slice(0, 9)
      .map(([f, ms]) => `${f}=${Math.round(ms)}`)
      .join(' ');
    console.log(`${((from + k * bucket) / 1000).toFixed(1).padStart(6)} s  ${top}`);
  }
}
