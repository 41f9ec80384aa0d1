// Summarises a fleet-soak.ts run: per process (samples/<tag>.jsonl) heap after GC, RSS, open fds
// and active resources at its first, middle and last sample, and any process warning; then the
// driver's nats-server figures (connections, subscriptions per planner connection, consumers per
// stream) at the first, middle and last sample.
//
//   node --import tsx bench/soak/summary.ts /tmp/sb-soak-XXXX
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: summary.ts SOAK_DIR\n');
  process.exit(2);
}
const lines = (f: string) =>
  readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);
const ends = <T>(xs: T[]): T[] => [xs[0]!, xs[Math.floor(xs.length / 2)]!, xs[xs.length - 1]!];

for (const f of readdirSync(path.join(dir, 'samples'))
  .filter((x) => x.endsWith('.jsonl'))
  .sort()) {
  const all = lines(path.join(dir, 'samples', f));
  const rows = all.filter((r) => 'heapUsedMiB' in r);
  if (rows.length < 3) continue;
  const cells = ends(rows).map(
    (r) =>
      `t=${r.t}s heap ${r.heapUsedMiB} rss ${r.rssMiB} fds ${r.fds} res ${Object.values(r.res as Record<string, number>).reduce((a, b) => a + b, 0)}`,
  );
  const warnings = all.filter((r) => 'warning' in r).map((r) => r.warning as string);
  console.log(
    `${f.replace(/\.jsonl$/, '').padEnd(20)} ${cells.join(' | ')}${warnings.length ? ` WARN ${warnings[0]}` : ''}`,
  );
}
const driver = lines(path.join(dir, 'driver.jsonl')).filter((d) => 'subsByName' in d);
if (driver.length >= 3)
  for (const d of ends(driver)) {
    const consumers = Object.fromEntries(
      Object.entries(d.streams as Record<string, { consumers: number }>).map(([k, v]) => [k, v.consumers]),
    );
    console.log(
      `t=${d.t}s conns ${d.conns} subs ${d.subsTotal} planner subs ${d.subsByName['switchboard-planner'] ?? 0} consumers ${JSON.stringify(consumers)}`,
    );
  }
