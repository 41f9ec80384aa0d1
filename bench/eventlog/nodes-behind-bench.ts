// nodesBehind (audit behind; the planner's seed at every start and takeover) against the query it
// replaced (review4 G3), on the same log in the same run: the old one read every ACK row of every
// node (a GROUP BY node scan, then max(version) per node through an index without the version);
// the new one probes each node's last ACK/NACK in the indexes. Not a test.
// Run: npx tsx bench/eventlog/nodes-behind-bench.ts [--acks 100000] [--nodes 100] [--rounds 3]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventLog, nodesBehind } from '../../libs/eventlog/index.ts';
import { databaseOf } from '../../libs/eventlog/database-handle.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ACKS = arg('acks', 100_000);
const NODES = arg('nodes', 100);
const ROUNDS = arg('rounds', 3);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swb-bench-acks-'));
try {
  const log = await EventLog.open({ file: path.join(dir, 'log.db'), sync: 'normal' });
  const t0 = performance.now();
  for (let i = 0; i < ACKS; i++) {
    const node = `node-${String(i % NODES).padStart(4, '0')}`;
    const version = Math.floor(i / NODES) + 1;
    log.recordAck({
      type: 'ACK',
      node,
      version,
      configRevision: 1,
      dataHash: 'd'.repeat(64),
      nodeStateHash: 'n'.repeat(64),
      mode: 'ipvs',
      kernelWrites: 10,
      timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
      at: new Date().toISOString(),
    });
  }
  const fillMs = performance.now() - t0;
  const db = databaseOf(log);
  /** The query as it was before review4 G3 (commit a467cb8), kept here as the baseline. */
  const old = () => {
    const rows = db
      .prepare(
        `SELECT a.body, a.received_at AS receivedAt FROM acks a JOIN (SELECT node, max(id) AS id FROM acks GROUP BY node) l ON a.id = l.id ORDER BY a.node`,
      )
      .all() as { body: string }[];
    const acked = db.prepare(`SELECT max(version) AS v FROM acks WHERE node = ? AND type = 'ACK'`);
    return rows.map((r) => (acked.get((JSON.parse(r.body) as { node: string }).node) as { v: number }).v);
  };
  const time = (f: () => unknown) => {
    const s = performance.now();
    f();
    return performance.now() - s;
  };
  const oldMs: number[] = [];
  const newMs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    oldMs.push(time(old));
    newMs.push(time(() => nodesBehind(log, { all: true })));
  }
  if (nodesBehind(log, { all: true }).length !== NODES) throw new Error('nodesBehind: wrong node count');
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const fileMB = fs.statSync(path.join(dir, 'log.db')).size / 2 ** 20;
  log.close();
  console.log(
    JSON.stringify({
      acks: ACKS,
      nodes: NODES,
      fileMB: Math.round(fileMB * 10) / 10,
      fillMs: Math.round(fillMs),
      oldMs: oldMs.map(Math.round),
      newMs: newMs.map((x) => Math.round(x * 100) / 100),
      ratioOldOverNew: Math.round(med(oldMs) / med(newMs)),
    }),
  );
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
