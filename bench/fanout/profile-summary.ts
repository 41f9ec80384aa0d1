/**
 * Summarizes the fan-out bench's worker profiles (`run-fanout.ts --cpu-prof DIR`, events window
 * only) per applier per event: self time by area, and inclusive time of the functions that the
 * per-node work is made of. Usage:
 *   npx tsx bench/fanout/profile-summary.ts DIR NODE_EVENTS [TOP] [PREFIX]
 * PREFIX: which profiles, by file name (default `fanout-worker-`, the appliers; `planner-` for the
 * bench's own process: publisher, target store, ACK collector).
 * NODE_EVENTS: appliers × events of the run (e.g. 100 × 30 = 3000), to express times per node-event.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sampleMs } from '../cpu-profile.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [dir, nodeEventsArg, topArg, prefix = 'fanout-worker-'] = process.argv.slice(2);
if (!dir || !nodeEventsArg) {
  console.error('usage: profile-summary.ts DIR NODE_EVENTS [TOP] [PREFIX]');
  process.exit(2);
}
const nodeEvents = Number(nodeEventsArg);

/** Where a frame's self time goes. First match wins. */
const AREAS: [string, (f: ProfileNode['callFrame']) => boolean][] = [
  ['idle', (f) => f.functionName === '(idle)'],
  ['GC', (f) => f.functionName === '(garbage collector)'],
  ['program (VM, natives)', (f) => f.functionName === '(program)'],
  ['zod', (f) => /node_modules\/zod\//.test(f.url)],
  ['NATS client', (f) => /node_modules\/@nats-io\//.test(f.url)],
  ['libs/planner', (f) => /libs\/planner\//.test(f.url)],
  ['libs/model', (f) => /libs\/model\//.test(f.url)],
  ['libs/applier', (f) => /libs\/applier\//.test(f.url)],
  ['libs/bus', (f) => /libs\/bus\//.test(f.url)],
  ['node internals', (f) => f.url.startsWith('node:')],
  ['natives (crypto, JSON, strings)', (f) => f.url === ''],
  ['other', () => true],
];
/** Inclusive time of these functions (by name), the per-node work's parts. */
const PARTS = [
  'takeNoticeDelta',
  'genuine',
  'signedTargetFault',
  'parseWire',
  'decodeDelta',
  'applyDeltaChain',
  'contentHash',
  'root',
  'render',
  'reconcile',
  'publish',
  'verify',
];

const area = new Map<string, number>();
const parts = new Map<string, number>();
const selfFn = new Map<string, number>();
let total = 0;
const files = readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.cpuprofile'));
for (const file of files) {
  const p = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const durations = sampleMs(p);
  p.samples.forEach((id, i) => {
    const ms = durations[i] ?? 0;
    const n = byId.get(id)!;
    const f = n.callFrame;
    total += ms;
    const a = AREAS.find(([, m]) => m(f))![0];
    area.set(a, (area.get(a) ?? 0) + ms);
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(libs|bench|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
    selfFn.set(key, (selfFn.get(key) ?? 0) + ms);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = byId.get(at)!.callFrame.functionName;
      if (PARTS.includes(name) && !seen.has(name)) {
        seen.add(name);
        parts.set(name, (parts.get(name) ?? 0) + ms);
      }
    }
  });
}
const busy = total - (area.get('idle') ?? 0);
const us = (ms: number) => `${((1000 * ms) / nodeEvents).toFixed(1).padStart(7)} µs`;
const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1).padStart(5)}%`;
console.log(`${files.length} profile(s), busy ${busy.toFixed(0)} ms = ${us(busy)} per node-event`);
console.log('\nself time by area (share of busy):');
for (const [k, ms] of [...area].sort((a, b) => b[1] - a[1]))
  if (k !== 'idle') console.log(`  ${us(ms)} ${pct(ms)}  ${k}`);
console.log('\ninclusive, by function name:');
for (const k of PARTS) console.log(`  ${us(parts.get(k) ?? 0)} ${pct(parts.get(k) ?? 0)}  ${k}`);
console.log('\ntop self time:');
for (const [k, ms] of [...selfFn].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 25)))
  if (!k.startsWith('(idle)')) console.log(`  ${us(ms)} ${pct(ms)}  ${k}`);
