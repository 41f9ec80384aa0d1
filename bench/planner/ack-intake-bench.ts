/**
 * ACK intake bench (issue 15 item 5, planner CPU per event): what a version's ACKs from N nodes
 * cost a real Planner (real SQLite log, the manifests source; the bus is an in-memory stand-in,
 * so NATS's own delivery is not in it) on its thread: each ACK parsed as the collector parses it
 * (parseAckOrNack on the encoded bytes an applier sends), handed to the planner (status row, the
 * log gate, the group-committed log row), then the node-state hash checks the ACKs start.
 * Baseline, same run, same bytes: decode + JSON.parse alone.
 *   node --expose-gc --import tsx bench/planner/ack-intake-bench.ts [--nodes 5000] [--services 20] [--rounds 5] [--rollout 0|1] [--out FILE]
 * Each round: a new version (one more Service), every node ACKs it with the hash the planner
 * expects (computed before the window), measured until the log holds every row and no check is
 * pending. Prints a table; the last stdout line is JSON (medians over rounds).
 * `--rollout 1`: after the warm-up round a config rollout runs through every measured round
 * (waves `--waves`, default `1,100%`; no node ACKs the new revision, so it stays in its first
 * wave), so every ACK steps a running rollout, as during a staged change; `--waves 100%` puts
 * every node in that wave.
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAckOrNack } from '../../libs/bus/index.ts';
import { EventLog } from '../../libs/eventlog/index.ts';
import { parseWaves } from '../../libs/control/index.ts';
import { type Ack } from '../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../libs/planner/index.ts';
import { manifestsPlanner, memoryPlannerBus, until } from './bench-planner.ts';

const { values } = benchArgs({
  options: {
    nodes: { type: 'string', default: '5000' },
    services: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '5' },
    rollout: { type: 'string', default: '0' },
    waves: { type: 'string', default: '1,100%' },
    out: { type: 'string' },
  },
});
const N = Number(values.nodes);
const S = Number(values.services);
const ROUNDS = Number(values.rounds);
const ROLLOUT = values.rollout === '1';

const dir = mkdtempSync(join(tmpdir(), 'ack-intake-bench-'));
const manifests = join(dir, 'manifests');
const doc = (o: unknown) => JSON.stringify(o);
const nodeName = (i: number) => `node-${String(i).padStart(5, '0')}`;
const nodeDoc = (i: number) =>
  doc({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: nodeName(i) },
    status: { addresses: [{ type: 'InternalIP', address: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` }] },
  });
const svcDoc = (i: number) =>
  doc({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: `s${i}`, namespace: 'default' },
    spec: {
      clusterIP: `10.96.${i >> 8}.${i & 255}`,
      clusterIPs: [`10.96.${i >> 8}.${i & 255}`],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    },
  });

const { bus, hear } = memoryPlannerBus();

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const enc = new TextEncoder();
const utf8 = new TextDecoder('utf-8', { fatal: true });

async function main() {
  mkdirSync(manifests);
  writeFileSync(join(manifests, 'nodes.yaml'), Array.from({ length: N }, (_, i) => nodeDoc(i)).join('\n---\n'));
  writeFileSync(join(manifests, 'svcs.yaml'), Array.from({ length: S }, (_, i) => svcDoc(i)).join('\n---\n'));
  const log = await EventLog.open({ file: join(dir, 'log.db') });
  const p = manifestsPlanner({ log, bus, manifests });
  const rows: { baselineUs: number; intakeUs: number; intakeWallMs: number; checksUs: number; synced: number }[] = [];
  try {
    await p.start();
    await p.synced;
    const cfg = p.config.revision(1)!.config;
    for (let round = 0; round < ROUNDS + 1; round++) {
      const before = p.data.latest()!.version;
      writeFileSync(join(manifests, `more-${round}.yaml`), svcDoc(S + round));
      await until(() => p.data.latest()!.version > before, `version after ${before}`, 300_000);
      const v = p.data.latest()!;
      const data = p.data.publishedData();
      const bytes = Array.from({ length: N }, (_, i) => {
        const a: Ack = {
          type: 'ACK',
          node: nodeName(i),
          version: v.version,
          configRevision: 1,
          dataHash: v.hash,
          nodeStateHash: nodeStateHash(renderNodeState(data, nodeName(i), cfg)),
          mode: 'ipvs',
          kernelWrites: 2,
          timings: { fetchMs: 0.2, renderMs: 0.1, applyMs: 0.3 },
          instance: (i * 2654435761).toString(16).padStart(16, '0').slice(-16),
          at: new Date().toISOString(),
        };
        return enc.encode(JSON.stringify(a));
      });
      const acksBefore = log.position();
      (globalThis as { gc?: () => void }).gc?.();

      let c = cpuMs();
      let sink = 0;
      for (const b of bytes) sink += (JSON.parse(utf8.decode(b)) as Ack).version;
      const baselineMs = cpuMs() - c;

      c = cpuMs();
      const t = performance.now();
      const handled: unknown[] = [];
      for (const b of bytes) {
        const r = parseAckOrNack(b);
        if ('error' in r) throw new Error(r.error);
        handled.push(hear(r.value));
      }
      await Promise.all(handled);
      await until(() => log.position().chains.acks.id >= acksBefore.chains.acks.id + N, 'every ACK a row', 300_000);
      const intakeWallMs = performance.now() - t;
      const intakeMs = cpuMs() - c;
      c = cpuMs();
      await until(() => p.hashChecks.pending === 0, 'checks done', 300_000);
      const checksMs = cpuMs() - c;
      const synced = p.status().filter((r) => r.status === 'SYNCED').length;
      if (sink !== v.version * N) throw new Error('baseline parsed something else');
      if (round === 0) {
        // warm-up: the JIT's first pass over every path; every node now ACKed, so a canary can be chosen
        if (ROLLOUT)
          await p.configChange({ scheduler: 'wrr' }, { actor: 'bench', reason: 'bench' }, 'config', {
            waves: parseWaves(values.waves),
            pauseOnError: false,
          });
        continue;
      }
      if (ROLLOUT && p.config.state.rollout?.status !== 'running') throw new Error('the rollout is not running');
      rows.push({
        baselineUs: (baselineMs * 1000) / N,
        intakeUs: (intakeMs * 1000) / N,
        intakeWallMs,
        checksUs: (checksMs * 1000) / N,
        synced,
      });
    }
  } finally {
    await p.stop();
    log.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const m = (k: keyof (typeof rows)[number]) => median(rows.map((r) => r[k]));
  const out = {
    nodes: N,
    services: S,
    rounds: ROUNDS,
    rollout: ROLLOUT
      ? { waves: p.config.state.rollout?.waves.map((w) => w.length), status: p.config.state.rollout?.status }
      : undefined,
    load: loadavg().map((x) => +x.toFixed(1)),
    node: process.version,
    baselineUsPerAck: +m('baselineUs').toFixed(2),
    intakeUsPerAck: +m('intakeUs').toFixed(2),
    intakeOverBaseline: +(m('intakeUs') / m('baselineUs')).toFixed(2),
    intakeWallMs: +m('intakeWallMs').toFixed(1),
    checksUsPerAck: +m('checksUs').toFixed(2),
    intakePlusChecksMsPerEvent: +(((m('intakeUs') + m('checksUs')) * N) / 1000).toFixed(1),
    syncedAfterChecks: Math.min(...rows.map((r) => r.synced)),
    perRound: rows,
  };
  console.log(
    '| nodes | baseline µs/ACK | intake µs/ACK | intake / baseline | checks µs/ACK | intake + checks ms/event | SYNCED |',
  );
  console.log('|---|---|---|---|---|---|---|');
  console.log(
    `| ${N} | ${out.baselineUsPerAck} | ${out.intakeUsPerAck} | ${out.intakeOverBaseline} | ${out.checksUsPerAck} | ${out.intakePlusChecksMsPerEvent} | ${out.syncedAfterChecks} |`,
  );
  const json = JSON.stringify(out);
  if (values.out) writeFileSync(values.out, `${json}\n`);
  console.log(json);
}

await main();
