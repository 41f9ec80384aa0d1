/**
 * Startup and process-memory benchmark of the compiled CLI (dist/, what the image runs).
 *
 *   npx tsx bench/startup/startup-bench.ts [--runs 15] [--applier-services 1000]
 *        [--planner-services 10000] [--endpoints 10] [--nodes 100] [--out file.json]
 *
 * One run, every figure against a baseline measured in the same run:
 * 1. Start time (wall, median of --runs, interleaved): `bin/switchboard --help` and
 *    `bin/switchboard ctl --server URL status` (against the live planner of step 2) vs `node -e 0`.
 * 2. Applier RSS: a real planner (bin/switchboard planner --kubeconfig, at test/support's
 *    KubeApiServer holding --applier-services services × --endpoints endpoints over --nodes
 *    nodes) and a real nats-server; one applier (bin/switchboard applier --mode dry-run, signed
 *    bus) for node-0, RSS (/proc/PID/status VmRSS) 3 s after its node is SYNCED, vs a bare node
 *    process holding one NATS connection to the same server (same wait).
 * 3. Planner RSS at --planner-services services (× --endpoints endpoints) 5 s after /readyz
 *    turns 200 (version 1 recorded and published); budget 400 MB.
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/support/kube-api-server/index.ts';
import { writeKubeconfig } from '../../test/support/kubeconfig.ts';
import { freePort, startNatsServer, type NatsServerHandle } from '../../test/support/nats-server.ts';
import { generateCluster, serveCluster } from '../planner/generate-cluster.ts';

const { values } = benchArgs({
  options: {
    runs: { type: 'string', default: '15' },
    'applier-services': { type: 'string', default: '1000' },
    'planner-services': { type: 'string', default: '10000' },
    endpoints: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '100' },
    out: { type: 'string' },
  },
});
const RUNS = Number(values.runs),
  E = Number(values.endpoints),
  N = Number(values.nodes);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(root, 'bin/switchboard');
const tmp = mkdtempSync(path.join(tmpdir(), 'sb-startup-'));
const children = new Set<ChildProcess>();
const result: Record<string, unknown> = {
  command: `npx tsx bench/startup/startup-bench.ts ${process.argv.slice(2).join(' ')}`.trim(),
  node: process.version,
  loadavgAtStart: loadavg().map((x) => +x.toFixed(2)),
};
const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (kb: number) => Math.round(kb / 102.4) / 10;

/** VmRSS and VmHWM of a live process, in kB. */
function rss(pid: number): { rssKb: number; peakKb: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1]);
  return { rssKb: kb('VmRSS'), peakKb: kb('VmHWM') };
}

function start(args: string[], name: string, env: Record<string, string> = {}): ChildProcess {
  const p = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  p.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-3000);
  });
  p.stdout!.resume();
  p.once('exit', (code, sig) => {
    if (children.has(p)) log(`${name} exited early (${code ?? sig}): ${err}`);
  });
  children.add(p);
  return p;
}
async function stop(p: ChildProcess): Promise<void> {
  children.delete(p);
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(t);
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** A planner (compiled CLI) reading a test API server with a generated cluster. */
async function startPlanner(nats: NatsServerHandle, services: number, tag: string) {
  const server = await KubeApiServer.start();
  const gen = generateCluster({ services, endpointsPerService: E, nodes: N });
  serveCluster(server, gen);
  const dir = mkdtempSync(path.join(tmp, `${tag}-`));
  const kc = await writeKubeconfig({ server: server.url, dir });
  const port = await freePort();
  const db = path.join(dir, 'log.db');
  const t0 = performance.now();
  const planner = start(
    [BIN, 'planner', '--kubeconfig', kc.path, '--nats', nats.url, '--db', db, '--http', `127.0.0.1:${port}`],
    `planner (${tag})`,
  );
  const api = `http://127.0.0.1:${port}`;
  await until(`planner ${tag} ready`, 30 * 60_000, async () => ((await fetch(`${api}/readyz`)).ok ? true : undefined));
  return { server, planner, api, db, syncMs: performance.now() - t0 };
}

async function main(): Promise<void> {
  const build = spawnSync(process.execPath, [path.join(root, 'scripts/build.mjs'), '--if-stale'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('build failed');
  const nats = await startNatsServer({ jetstream: true });
  try {
    // -- 2 (first: its planner serves step 1's ctl status) -----------------------------------
    const S1 = Number(values['applier-services']);
    const small = await startPlanner(nats, S1, 'applier-cluster');
    log(`planner with ${S1} services ready in ${(small.syncMs / 1000).toFixed(1)} s`);
    const applier = start(
      [
        BIN,
        'applier',
        '--node',
        'node-0',
        '--nats',
        nats.url,
        '--mode',
        'dry-run',
        '--heartbeat',
        '1000',
        '--planner-key',
        `${small.db}.signing-key.pem.pub`,
      ],
      'applier',
    );
    await until('node-0 SYNCED', 10 * 60_000, async () => {
      const s = (await (await fetch(`${small.api}/status`)).json()) as { nodes: { node: string; status: string }[] };
      return s.nodes.find((n) => n.node === 'node-0')?.status === 'SYNCED' ? true : undefined;
    });
    await sleep(3000);
    const applierMem = rss(applier.pid!);
    const bare = start(
      [
        '--input-type=module',
        '-e',
        `import { connect } from '@nats-io/transport-node'; const nc = await connect({ servers: ${JSON.stringify(nats.url)} }); await nc.flush(); console.log('ready'); setInterval(() => {}, 1 << 30);`,
      ],
      'bare NATS client',
    );
    await new Promise<void>((r) => bare.stdout!.once('data', () => r()));
    await sleep(3000);
    const bareMem = rss(bare.pid!);
    await stop(bare);
    result.applier = {
      services: S1,
      endpointsPerService: E,
      nodes: N,
      mode: 'dry-run',
      applierRssMb: mb(applierMem.rssKb),
      applierPeakMb: mb(applierMem.peakKb),
      bareNatsClientRssMb: mb(bareMem.rssKb),
      ratio: +(applierMem.rssKb / bareMem.rssKb).toFixed(2),
      budget: 2.5,
    };
    log(
      `applier RSS ${mb(applierMem.rssKb)} MB (peak ${mb(applierMem.peakKb)}) vs bare NATS client ${mb(bareMem.rssKb)} MB: ${(applierMem.rssKb / bareMem.rssKb).toFixed(2)}x`,
    );

    // -- 1 ------------------------------------------------------------------------------------
    const cases: [string, string[]][] = [
      ['node -e 0', ['-e', '0']],
      ['switchboard --help', [BIN, '--help']],
      ['switchboard ctl status', [BIN, 'ctl', '--server', small.api, 'status']],
    ];
    const times = new Map<string, number[]>(cases.map(([n]) => [n, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const [name, args] of cases) {
        const t = performance.now();
        const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
        const ms = performance.now() - t;
        if (r.status !== 0 || r.stderr) throw new Error(`${name}: exit ${r.status}: ${r.stderr}`);
        times.get(name)!.push(ms);
      }
    }
    const base = median(times.get('node -e 0')!);
    result.startup = Object.fromEntries(
      cases.map(([n]) => {
        const m = median(times.get(n)!);
        return [
          n,
          { medianMs: +m.toFixed(1), minMs: +Math.min(...times.get(n)!).toFixed(1), ratio: +(m / base).toFixed(2) },
        ];
      }),
    );
    for (const [n] of cases)
      log(`${n}: median ${median(times.get(n)!).toFixed(1)} ms (${(median(times.get(n)!) / base).toFixed(2)}x)`);
    await stop(applier);
    await stop(small.planner);
    await small.server.stop();

    // -- 3 ------------------------------------------------------------------------------------
    const S2 = Number(values['planner-services']);
    if (S2 > 0) {
      const big = await startPlanner(nats, S2, 'planner-cluster');
      await sleep(5000);
      const m = rss(big.planner.pid!);
      result.planner = {
        services: S2,
        endpoints: S2 * E,
        nodes: N,
        syncS: +(big.syncMs / 1000).toFixed(1),
        rssMb: mb(m.rssKb),
        peakMb: mb(m.peakKb),
        budgetMb: 400,
      };
      log(
        `planner ${S2} services / ${S2 * E} endpoints: ready in ${(big.syncMs / 1000).toFixed(1)} s, RSS ${mb(m.rssKb)} MB (peak ${mb(m.peakKb)} MB)`,
      );
      await stop(big.planner);
      await big.server.stop();
    }
  } finally {
    for (const c of [...children]) await stop(c);
    await nats.stop();
  }
  result.loadavgAtEnd = loadavg().map((x) => +x.toFixed(2));
  const text = JSON.stringify(result, null, 2);
  if (values.out) writeFileSync(values.out, text + '\n');
  process.stdout.write(text + '\n');
}

main()
  .catch((e) => {
    log(`startup-bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => rmSync(tmp, { recursive: true, force: true }));
