// Prints the top self-time functions of a V8 .cpuprofile (node --cpu-prof), for reading a
// profile taken inside the VM where only stdout comes back:
//   node --import tsx bench/applier/cpu-profile-summary.ts FILE.cpuprofile [TOP]
import { readFileSync } from 'node:fs';
import { sampleMs } from '../cpu-profile.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, ...extra] = process.argv.slice(2);
// one file: a glob matching two (tsx's loader thread writes a profile too) would make the second TOP
if (!file || extra.length > 0 || (topArg !== undefined && !/^[1-9][0-9]*$/.test(topArg))) {
  console.error('usage: cpu-profile-summary.ts FILE.cpuprofile [TOP] (one file; TOP a positive integer)');
  process.exit(2);
}
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
const durations = sampleMs(p);
p.samples.forEach((id, i) => {
  const n = byId.get(id)!;
  const f = n.callFrame;
  const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(libs|bench|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + (durations[i] ?? 0));
});
const total = (p.endTime - p.startTime) / 1000;
console.log(`profile ${file}: ${Math.round(total)} ms`);
for (const [k, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 30))) {
  console.log(`${ms.toFixed(0).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%  ${k}`);
}
