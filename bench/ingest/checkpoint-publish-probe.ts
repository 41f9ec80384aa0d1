/**
 * Probe: version 1's checkpoint onto JetStream, chunks one at a time versus pipelined, in one
 * process against one real nats-server, alternating (issue 15 item 4, sixth round).
 *
 *   npx tsx bench/ingest/checkpoint-publish-probe.ts [--services 10000] [--endpoints 10] [--rounds 5]
 *        [--widths 1,8] [--out file.json]
 *
 * Each round publishes the same version 1 (checkpoint + marker, signed, with the entries' texts
 * as the planner hands them) once per width into a fresh versions stream, and times
 * `publishNext` (wall, this process's CPU, the server's CPU from /proc). The bench
 * (ingest-bench.ts) measures the same step inside the planner as "recorded → on NATS".
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectBus, signerFromKey, VersionPublisher, VERSIONS_STREAM } from '../../libs/bus/index.ts';
import { ClusterDataIndex } from '../../libs/planner/index.ts';
import { startNatsServer } from '../../test/support/nats-server.ts';
import { node, service } from '../../test/libs/bus/fixtures.ts';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    widths: { type: 'string', default: '1,8' },
    out: { type: 'string' },
  },
});
const S = Number(values.services);
const E = Number(values.endpoints);
const ROUNDS = Number(values.rounds);
const WIDTHS = values.widths.split(',').map(Number);

/** CPU ms of a process (user + system) from /proc/PID/stat. */
function procCpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const after = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const tick = 100; // USER_HZ on Linux
  return ((Number(after[11]) + Number(after[12])) * 1000) / tick;
}

/** The nats-server started with this config file (its pid is not on the test handle). */
function serverPid(conf: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(conf)) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return Number.NaN;
}

const texts = new WeakMap<object, string>();
const index = new ClusterDataIndex();
index.keepTextsIn(texts);
/**
 * Keys in code-unit order at every level, as the planner builds entries: only then is an entry's
 * canonical text its JSON.stringify text, which the index keeps and the checkpoint writes as is
 * (the test fixtures' key order is not, so without this every entry is serialised twice more).
 */
function sortedKeys<T>(v: T): T {
  if (Array.isArray(v)) return v.map(sortedKeys) as T;
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, sortedKeys(o[k])]),
  ) as T;
}

const services = Array.from({ length: S }, (_, i) => sortedKeys(service(i, E)));
const nodes = Array.from({ length: 100 }, (_, i) => sortedKeys(node(`n${i}`)));
index.apply({ upsertServices: services, removeServices: [], upsertNodes: nodes, removeNodes: [] });
const hash = index.hash();
const data = index.toClusterData();
const kept = data.services.filter((e) => texts.has(e)).length;
if (kept !== S) throw new Error(`the index kept the texts of ${kept} of ${S} entries (key order)`);
const header = { version: 1, parent: 0, hash, reason: 'probe', createdAt: '2026-01-01T00:00:00.000Z' };
const delta = { upsertServices: services, removeServices: [], upsertNodes: nodes, removeNodes: [] };

const server = await startNatsServer({ jetstream: true });
const pid = serverPid(path.join(path.dirname(server.storeDir), 'server.conf'));
const signer = signerFromKey(generateKeyPairSync('ed25519').privateKey);
const nc = await connectBus({ servers: server.url, name: 'probe' });
const jsm = await jetstreamManager(nc);
const runs: {
  round: number;
  width: number;
  ms: number;
  cpuMs: number;
  serverCpuMs: number;
  messages: number;
  bytes: number;
}[] = [];
const load0 = loadavg();
try {
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? WIDTHS : [...WIDTHS].reverse();
    for (const width of order) {
      await jsm.streams.delete(VERSIONS_STREAM).catch(() => undefined);
      const p = await VersionPublisher.open({ nc, signer, pipeline: width });
      global.gc?.();
      const c0 = process.cpuUsage();
      const s0 = Number.isFinite(pid) ? procCpuMs(pid) : NaN;
      const t0 = performance.now();
      const [cp] = await p.publishNext({ header, delta, data: () => data, texts });
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      const s1 = Number.isFinite(pid) ? procCpuMs(pid) : NaN;
      runs.push({
        round: r,
        width,
        ms: Math.round(ms),
        cpuMs: Math.round((c.user + c.system) / 1000),
        serverCpuMs: Math.round(s1 - s0),
        messages: cp!.messages,
        bytes: cp!.bytes,
      });
      console.log(JSON.stringify(runs.at(-1)));
    }
  }
} finally {
  await nc.close();
  await server.stop();
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = Object.fromEntries(
  WIDTHS.map((w) => {
    const rs = runs.filter((x) => x.width === w);
    return [
      `width${w}`,
      {
        medianMs: med(rs.map((x) => x.ms)),
        medianCpuMs: med(rs.map((x) => x.cpuMs)),
        medianServerCpuMs: med(rs.map((x) => x.serverCpuMs)),
      },
    ];
  }),
);
const result = {
  command: `npx tsx bench/ingest/checkpoint-publish-probe.ts ${process.argv.slice(2).join(' ')}`.trim(),
  node: process.version,
  loadavgAtStart: load0,
  loadavgAtEnd: loadavg(),
  size: { services: S, endpointsPerService: E, nodes: 100 },
  runs,
  summary,
};
console.log(JSON.stringify(summary));
if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
