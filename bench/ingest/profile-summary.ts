/**
 * Summarises a planner start → synced profile written by `ingest-bench.ts --profile DIR`
 * (DIR/planner-start-synced.cpuprofile and .gc.json): self time by function, time by phase, a
 * timeline of phases, and the GC entries.
 *
 *   npx tsx bench/ingest/profile-summary.ts DIR [--top 30] [--bin-ms 500] [--json out.json]
 *        [--from-ms A] [--to-ms B]
 *
 * --from-ms / --to-ms: only the samples between A and B ms after the profile's start (say, the
 * window after version 1 is recorded: the run's JSON has startToFirstVersionRecordedMs); the GC
 * entries are not cut.
 *
 * A sample's phase is that of the nearest frame (leaf → root) that names one; samples under none
 * are "other". GC, idle and (program) are V8's own pseudo-frames. The GC entries come from
 * perf_hooks (pauses on the main thread; parallel scavenger threads not counted twice).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sampleMs } from '../cpu-profile.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Phases in the planner's start → synced path, each named by the frames that start it. */
const PHASES: { phase: string; file?: RegExp; fn?: RegExp; fallback?: true }[] = [
  { phase: 'GC', fn: /^\(garbage collector\)$/ },
  { phase: 'idle', fn: /^\(idle\)$/ },
  { phase: 'V8 (program)', fn: /^\(program\)$/ },
  // version 1: checkpoint encoding, publish, replicated log (what shares the NATS connection)
  { phase: 'checkpoint serialise', file: /artifact-codec\.ts$/ },
  { phase: 'publish (version publisher)', file: /(version-publisher|chained-append|nats-planner-bus)\.ts$/ },
  { phase: 'replicated log', file: /(replication|replication-codec|replication-mark)\.ts$/ },
  { phase: 'NATS client writes', fn: /^(flushPending|drain|pack)$/, file: /@nats-io\// },
  // the data axis
  { phase: 'render/hash entries', fn: /^(hashOf|canonicalJsonOf|serviceHash|inCanonicalOrder)$/ },
  { phase: 'state build (entries)', fn: /^(buildReady|buildEntry|buildServiceEntry|setService|record|sync)$/ },
  { phase: 'event append (SQLite)', fn: /^(appendEvents|chainHash|writePending)$/ },
  { phase: 'event append (SQLite)', file: /(event-log|log-rows|row-chain|recent-rows)\.ts$/ },
  { phase: 'parse/validate → state', fn: /^(watchEventChange|readKubeObject|apply|upsert|toWatchEvent)$/ },
  { phase: 'parse/validate → state', file: /(kube-readers|cluster-state|watch-event-change)\.ts$/ },
  // the informer and its HTTP reads (what the bare informer does too)
  {
    phase: 'list pages (HTTP, JSON.parse, informer)',
    file: /(kube-http|kind-informer|relist-diff|cluster-informer)\.ts$/,
  },
  { phase: 'list pages (HTTP, JSON.parse, informer)', file: /^node:(_http_client|_http_common|http)$/ },
  {
    phase: 'planner start (open log, NATS, lease)',
    file: /(run-planner|open-database|planner-lease|bus-connection)\.ts$/,
  },
  { phase: 'profiler', file: /planner-child\.ts$/ },
  // only when no frame above names a phase
  { phase: 'SQLite (other)', file: /better-sqlite3\//, fallback: true },
  { phase: 'NATS client (other)', file: /@nats-io\//, fallback: true },
];

function phaseOf(frame: CallFrame, fallback: boolean): string | undefined {
  for (const p of PHASES) {
    if (Boolean(p.fallback) !== fallback) continue;
    if (p.fn && !p.fn.test(frame.functionName)) continue;
    if (p.file && !p.file.test(frame.url)) continue;
    return p.phase;
  }
  return undefined;
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '30' },
      'bin-ms': { type: 'string', default: '500' },
      json: { type: 'string' },
      'from-ms': { type: 'string', default: '0' },
      'to-ms': { type: 'string', default: 'Infinity' },
    },
  });
  const dir = positionals[0];
  if (!dir) throw new Error('usage: profile-summary.ts DIR');
  const profile = JSON.parse(readFileSync(path.join(dir, 'planner-start-synced.cpuprofile'), 'utf8')) as Profile;
  const gc = JSON.parse(readFileSync(path.join(dir, 'planner-start-synced.gc.json'), 'utf8')) as {
    windowMs: number;
    gcs: { startMs: number; ms: number; kind: string }[];
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const phaseCache = new Map<number, string>();
  const nodePhase = (id: number): string => {
    const cached = phaseCache.get(id);
    if (cached) return cached;
    let p: string | undefined;
    for (const fallback of [false, true])
      for (let at: number | undefined = id; at !== undefined && !p; at = parent.get(at))
        p = phaseOf(byId.get(at)!.callFrame, fallback);
    phaseCache.set(id, p ?? 'other');
    return p ?? 'other';
  };
  const self = new Map<string, number>();
  const phases = new Map<string, number>();
  const binMs = Number(values['bin-ms']);
  const timeline: Map<string, number>[] = [];
  const fromMs = Number(values['from-ms']);
  const toMs = Number(values['to-ms']);
  const inWindow: boolean[] = [];
  let t = 0;
  let at = 0;
  const durations = sampleMs(profile);
  profile.samples.forEach((id, i) => {
    const d = durations[i]!;
    at += profile.timeDeltas[i]! / 1000; // the sample's place in time counts the start-up gap
    inWindow[i] = at >= fromMs && at < toMs;
    if (!inWindow[i]) return;
    t += d;
    const f = byId.get(id)!.callFrame;
    const name =
      `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.replace(/^.*\/(node_modules\/)?/, '')}:${f.lineNumber + 1}` : ''}`.trim();
    self.set(name, (self.get(name) ?? 0) + d);
    const p = nodePhase(id);
    phases.set(p, (phases.get(p) ?? 0) + d);
    const bin = (timeline[Math.floor((at - Math.max(0, fromMs)) / binMs)] ??= new Map());
    bin.set(p, (bin.get(p) ?? 0) + d);
  });
  const total = t;
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  const ms = (x: number) => x.toFixed(0).padStart(6);
  console.log(`profile: ${ms(total)} ms sampled (window ${gc.windowMs.toFixed(0)} ms)\n\nby phase:`);
  for (const [p, v] of sorted(phases)) console.log(`${ms(v)} ms ${((100 * v) / total).toFixed(1).padStart(5)} %  ${p}`);
  const other = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    if (!inWindow[i] || nodePhase(id) !== 'other') return;
    const f = byId.get(id)!.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\//, '')}`;
    other.set(name, (other.get(name) ?? 0) + durations[i]!);
  });
  console.log(
    `\n"other" by self time: ${sorted(other)
      .slice(0, 8)
      .map(([n, v]) => `${n} ${v.toFixed(0)}`)
      .join('; ')}`,
  );
  console.log(`\nby self time (top ${values.top}):`);
  for (const [n, v] of sorted(self).slice(0, Number(values.top))) console.log(`${ms(v)} ms  ${n}`);
  const gcKinds = new Map<string, { n: number; ms: number; max: number }>();
  for (const g of gc.gcs) {
    const k = gcKinds.get(g.kind) ?? { n: 0, ms: 0, max: 0 };
    gcKinds.set(g.kind, { n: k.n + 1, ms: k.ms + g.ms, max: Math.max(k.max, g.ms) });
  }
  console.log('\nGC pauses (perf_hooks):');
  for (const [k, v] of gcKinds) console.log(`${ms(v.ms)} ms  ${k}: ${v.n}, longest ${v.max.toFixed(1)} ms`);
  const shown = sorted(phases)
    .map(([p]) => p)
    .slice(0, 9);
  console.log(`\ntimeline (${binMs} ms bins; ms per phase): ${shown.map((p, i) => `${i}=${p}`).join(', ')}`);
  timeline.forEach((bin, i) => {
    const cells = shown.map((p) => (bin.get(p) ?? 0).toFixed(0).padStart(4));
    console.log(`${String(Math.max(0, fromMs) + i * binMs).padStart(6)} ${cells.join(' ')}`);
  });
  if (values.json)
    writeFileSync(
      values.json,
      `${JSON.stringify(
        {
          sampledMs: +total.toFixed(1),
          windowMs: +gc.windowMs.toFixed(1),
          phasesMs: Object.fromEntries(sorted(phases).map(([p, v]) => [p, +v.toFixed(1)])),
          selfMs: Object.fromEntries(
            sorted(self)
              .slice(0, Number(values.top))
              .map(([n, v]) => [n, +v.toFixed(1)]),
          ),
          gc: Object.fromEntries(
            [...gcKinds].map(([k, v]) => [k, { n: v.n, ms: +v.ms.toFixed(1), maxMs: +v.max.toFixed(1) }]),
          ),
        },
        null,
        2,
      )}\n`,
    );
}

main();
