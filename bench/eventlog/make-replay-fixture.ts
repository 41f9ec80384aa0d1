// Writes the checked-in replay fixture: a small random history (seeded) as JSON lines, plus the
// version hashes the planner recorded while driving it. Run once when the fixture is (re)made:
//   npx tsx bench/eventlog/make-replay-fixture.ts test/fixtures/eventlog/history-v2
// Never regenerate to make a failing replay test pass: a changed hash means replay changed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog } from '../../libs/eventlog/index.ts';
import { driveDataAxis, randomHistory, type HistoryStep } from '../../test/libs/eventlog/support/random-history.ts';

const base = process.argv[2];
if (!base) throw new Error('usage: make-replay-fixture.ts OUT-BASE (writes OUT-BASE.jsonl and OUT-BASE.expected.json)');
const steps: HistoryStep[] = [...randomHistory({ seed: 20250101, steps: 80, pinRate: 0.08 })];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swb-fixture-'));
let t = Date.parse('2025-01-01T00:00:00Z');
const log = await EventLog.open({ file: path.join(dir, 'log.db'), now: () => new Date((t += 1000)), sync: 'normal' });
const versions = driveDataAxis(log, steps);
log.close();
fs.rmSync(dir, { recursive: true, force: true });
fs.writeFileSync(`${base}.jsonl`, steps.map((s) => JSON.stringify(s)).join('\n') + '\n');
fs.writeFileSync(`${base}.expected.json`, JSON.stringify({ versions }, null, 1) + '\n');
console.log(`${steps.length} steps, ${versions.length} versions → ${base}.jsonl, ${base}.expected.json`);
