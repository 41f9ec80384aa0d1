// Console first paint with 1,000 nodes in the grid, in headless Chromium (Debian's chromium).
//   npx tsx bench/console/first-paint.bench.ts [nodes=1000] [runs=7]
// For each run a fresh page loads /ui with a viewer token against a real planner (SQLite,
// nats-server) whose 1,000 simulated nodes ACKed; measured in the page: first contentful paint,
// and the time the frame after the grid got every node's row ran (the data painted; a mark the
// console sets). Baseline, same browser
// and run: a static page holding an equivalent 1,000-row table, served by a bare node:http server.
// Prints medians and one JSON line with the ratios.
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { CHROMIUM, TOKENS, consoleEnv } from '../../test/services/console/console-harness.ts';

const nodes = Number(process.argv[2] ?? 1000);
const runs = Number(process.argv[3] ?? 7);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const env = await consoleEnv(nodes);
await env.ackAll();
const p = env.planner.planner;
while (p.status().filter((n) => n.status === 'SYNCED').length < nodes) await new Promise((r) => setTimeout(r, 100));

const rows = p
  .status()
  .map(
    (n) =>
      `<tr><td>${n.node}</td><td><span>SYNCED</span></td><td>${n.targetVersion}</td><td>${n.appliedVersion}</td><td>1/1</td><td>${n.mode}</td><td>0</td><td></td></tr>`,
  )
  .join('');
const staticPage = `<!doctype html><html><head><meta charset="utf-8"><title>baseline</title></head><body><table><tbody>${rows}</tbody></table></body></html>`;
const baseline = createServer((_q, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(staticPage);
});
await new Promise<void>((r) => baseline.listen(0, '127.0.0.1', r));
const baseUrl = `http://127.0.0.1:${(baseline.address() as { port: number }).port}/`;

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const fcp = `performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1`;
const out = {
  consoleFcp: [] as number[],
  consoleGrid: [] as number[],
  firstSnapshot: [] as number[],
  gridPainted: [] as number[],
  baselineFcp: [] as number[],
  baselineLoad: [] as number[],
};
for (let i = 0; i < runs; i++) {
  const page = await browser.newPage();
  await page.goto(`${env.planner.url}/ui/#token=${TOKENS.viewer}`);
  await page.waitForFunction(`document.querySelectorAll('#nodes tbody tr').length === ${nodes}`, undefined, {
    timeout: 60_000,
  });
  out.consoleGrid.push((await page.evaluate('performance.now()')) as number);
  out.firstSnapshot.push(
    (await page.evaluate(`performance.getEntriesByName('sb-first-snapshot')[0].startTime`)) as number,
  );
  await page.waitForFunction(`performance.getEntriesByName('sb-grid-painted').length > 0`);
  out.gridPainted.push((await page.evaluate(`performance.getEntriesByName('sb-grid-painted')[0].startTime`)) as number);
  // FCP is reported shortly after the paint; wait for the entry.
  await page.waitForFunction(`${fcp} >= 0`, undefined, { timeout: 90_000 });
  out.consoleFcp.push((await page.evaluate(fcp)) as number);
  await page.close();

  const b = await browser.newPage();
  await b.goto(baseUrl);
  await b.waitForFunction(`${fcp} >= 0`, undefined, { timeout: 90_000 });
  out.baselineFcp.push((await b.evaluate(fcp)) as number);
  out.baselineLoad.push((await b.evaluate(`performance.getEntriesByType('navigation')[0].loadEventEnd`)) as number);
  await b.close();
}
await browser.close();
baseline.close();
await env.close();

const m = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Math.round(median(v))])) as Record<
  keyof typeof out,
  number
>;
console.log(
  `nodes ${nodes}, runs ${runs} (medians, ms): console first contentful paint ${m.consoleFcp}, grid of every node painted ${m.gridPainted} (first snapshot at ${m.firstSnapshot}; seen by the polling driver at ${m.consoleGrid}); baseline static table FCP ${m.baselineFcp}, load ${m.baselineLoad}`,
);
console.log(
  JSON.stringify({
    nodes,
    runs,
    ...m,
    ratioFcp: +(m.consoleFcp / m.baselineFcp).toFixed(2),
    ratioGridVsBaselineLoad: +(m.gridPainted / m.baselineLoad).toFixed(2),
    gridUnder1s: m.gridPainted < 1000,
  }),
);
process.exit(0);
