/**
 * Where the shipped memory limits stop the planner and an applier (docs/install.md, "Memory"):
 * the compiled CLI (bin/switchboard running dist/, what the image runs), each process in a memory cgroup of its own with
 * the limit deploy/kubernetes/base gives it, as a container runtime would, so Node sizes its heap
 * from that limit as it does in a pod. Usage (root, for the cgroups):
 *
 *   npx tsx bench/scale/memory-limits.ts [--services 1000,2000,3000] [--endpoints 250]
 *        [--nodes 5000] [--planner-limit-mib 1024] [--applier-limit-mib 512] [--settle-s 20]
 *        [--planner-node-flag FLAG ...] [--failover] [--out FILE]
 *
 * Per size, a fresh test API server (test/support's) holds the generated cluster and a fresh
 * nats-server runs beside it. The planner (`planner --kubeconfig`) runs in its cgroup until
 * /readyz (version 1 recorded and published) or until it exits; then one applier (`applier
 * --mode dry-run --node node-0`, signed bus) in its own cgroup until the planner shows node-0
 * SYNCED or the applier exits. For each: the outcome (`synced`, or how it ended: V8's "heap out of
 * memory", killed by the cgroup), the largest of its heap readings after V8's full collections
 * over --settle-s seconds once synced, and the limit (planner: /status `memory`; applier: its heap
 * metrics), whether it said the heap warning first, and the
 * cgroup's peak memory. With --failover, a second planner of the group (its own log file, the same
 * signing key, the same limit) then starts and follows until its view shows node-0 SYNCED; the first
 * stops (SIGTERM) and the second must lead and show node-0 SYNCED: its follow and take-over times,
 * whether it stepped down meanwhile, its heap and its metrics as for the first.
 * Without a writable memory cgroup (v1 or v2) each process gets
 * --max-old-space-size of half the limit instead (what Node derives from the cgroup; the result
 * says `limitedBy`). The last stdout line is the JSON of every run.
 */
import { benchArgs, BenchUsageError } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeApiServer } from '../../test/support/kube-api-server/index.ts';
import { writeKubeconfig } from '../../test/support/kubeconfig.ts';
import { freePort, startNatsServer } from '../../test/support/nats-server.ts';
import { generateCluster, serveCluster } from '../planner/generate-cluster.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '1000,2000,3000' },
    endpoints: { type: 'string', default: '250' },
    nodes: { type: 'string', default: '5000' },
    'planner-limit-mib': { type: 'string', default: '1024' },
    'applier-limit-mib': { type: 'string', default: '512' },
    'timeout-s': { type: 'string', default: '1800' },
    'settle-s': { type: 'string', default: '20' },
    /** A node flag for the planners' processes (repeatable), e.g. --cpu-prof --cpu-prof-dir=DIR: written when it stops. */
    'planner-node-flag': { type: 'string', multiple: true },
    /** Then a second planner of the group follows, the first stops, and the second takes over (a failover at this size). */
    failover: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const SIZES = values.services.split(',').map((v) => {
  if (!/^\d+$/.test(v))
    throw new BenchUsageError(`--services ${JSON.stringify(values.services)}: expected whole numbers, comma-separated`);
  return Number(v);
});
const E = Number(values.endpoints);
const N = Number(values.nodes);
const PLANNER_MIB = Number(values['planner-limit-mib']);
const APPLIER_MIB = Number(values['applier-limit-mib']);
const TIMEOUT_MS = Number(values['timeout-s']) * 1000;
const SETTLE_S = Number(values['settle-s']);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(root, 'bin/switchboard'); // runs dist/ (fresh: built below), as the image does
const tmp = mkdtempSync(path.join(tmpdir(), 'sb-memlimits-'));
const log = (s: string) => process.stderr.write(`${s}\n`);
/** A request that gives up after 30 s (a planner whose event loop is blocked keeps its socket open). */
const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(30_000) });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const mb = (bytes: number | undefined) => (bytes === undefined ? undefined : Math.round(bytes / 1e5) / 10);

/** A memory cgroup of our own (v2 where the unified tree has the memory controller, else v1), or undefined. */
interface Cgroup {
  readonly dir: string;
  readonly version: 1 | 2;
}
function makeCgroup(name: string, limitMiB: number): Cgroup | undefined {
  const bytes = String(limitMiB * 1024 * 1024);
  const own = readFileSync('/proc/self/cgroup', 'utf8');
  const v2 = /^0::(.*)$/m.exec(own)?.[1];
  const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/m.exec(own)?.[1];
  const tries: [string, 1 | 2, string][] = [];
  for (const base of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'])
    if (v2 !== undefined && existsSync(path.join(base, 'cgroup.controllers')))
      if (
        readFileSync(path.join(base, v2, 'cgroup.controllers'), 'utf8')
          .split(/\s+/)
          .includes('memory')
      )
        tries.push([path.join(base, v2, name), 2, 'memory.max']);
  if (v1 !== undefined) tries.push([path.join('/sys/fs/cgroup/memory', v1, name), 1, 'memory.limit_in_bytes']);
  for (const [dir, version, file] of tries)
    try {
      mkdirSync(dir);
      writeFileSync(path.join(dir, file), bytes);
      if (version === 1) writeFileSync(path.join(dir, 'memory.memsw.limit_in_bytes'), bytes, { flag: 'w' });
      return { dir, version };
    } catch (e) {
      // memsw is absent without swap accounting: the memory limit alone stands
      if (version === 1 && existsSync(path.join(dir, file)) && (e as NodeJS.ErrnoException).code === 'ENOENT')
        return { dir, version };
      if (existsSync(dir)) rmdirSync(dir);
    }
  return undefined;
}
function cgroupFacts(c: Cgroup): { peakBytes?: number; oomKills?: number } {
  const read = (f: string) => readFileSync(path.join(c.dir, f), 'utf8');
  try {
    if (c.version === 2)
      return {
        peakBytes: existsSync(path.join(c.dir, 'memory.peak')) ? Number(read('memory.peak')) : undefined,
        oomKills: Number(/^oom_kill (\d+)/m.exec(read('memory.events'))?.[1] ?? 0),
      };
    return {
      peakBytes: Number(read('memory.max_usage_in_bytes')),
      oomKills: Number(/^oom_kill (\d+)/m.exec(read('memory.oom_control'))?.[1] ?? 0),
    };
  } catch {
    return {};
  }
}
function removeCgroup(c: Cgroup): void {
  for (let i = 0; i < 50; i++)
    try {
      rmdirSync(c.dir);
      return;
    } catch {
      spawnSync('sleep', ['0.1']);
    }
}

interface Run {
  readonly proc: ChildProcess;
  readonly cgroup?: Cgroup;
  readonly stderr: () => string;
  readonly exited: Promise<string>;
}
/** Every child's stdout and stderr, in files named by size and process (LOG_DIR: beside --out, else the temp dir). */
const LOG_DIR = values.out ? path.dirname(path.resolve(values.out)) : tmp;
const live = new Set<Run>();
/**
 * The CLI with `args` (node `nodeFlags` first), in a cgroup limited to `limitMiB` (or with half of
 * it as its heap limit), its output into `logFile`.
 */
function run(name: string, args: string[], limitMiB: number, logFile: string, nodeFlags: string[] = []): Run {
  const cgroup = makeCgroup(`sb-${name}-${process.pid}`, limitMiB);
  const node = [
    process.execPath,
    ...nodeFlags,
    ...(cgroup ? [] : [`--max-old-space-size=${Math.round(limitMiB / 2)}`]),
    MAIN,
    ...args,
  ];
  // the shell joins the cgroup, then execs node: the same PID, every byte of it counted
  const proc = cgroup
    ? spawn('bash', ['-c', `echo $$ > ${cgroup.dir}/cgroup.procs && exec "$@"`, 'bash', ...node], { cwd: root })
    : spawn(node[0]!, node.slice(1), { cwd: root });
  let err = '';
  const file = createWriteStream(logFile);
  const take = (d: Buffer) => {
    err = (err + d.toString()).slice(-20_000);
    file.write(d);
  };
  proc.stderr!.on('data', take);
  proc.stdout!.on('data', take); // the applier logs (pino) on stdout
  proc.once('exit', () => file.end());
  const exited = new Promise<string>((r) => proc.once('exit', (code, sig) => r(sig ?? `exit ${code}`)));
  const r = { proc, cgroup, stderr: () => err, exited };
  live.add(r);
  return r;
}
async function stop(r: Run): Promise<void> {
  live.delete(r);
  if (r.proc.exitCode === null && r.proc.signalCode === null) {
    r.proc.kill('SIGTERM');
    const t = setTimeout(() => r.proc.kill('SIGKILL'), 15_000);
    await r.exited;
    clearTimeout(t);
  }
  if (r.cgroup) removeCgroup(r.cgroup);
}

/** Polls `probe` until it gives a value, the process exits (undefined), or the timeout (throws). */
async function untilOrExit<T>(r: Run, probe: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + TIMEOUT_MS;
  let gone = false;
  void r.exited.then(() => (gone = true));
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (gone) return undefined;
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(500);
  }
}

/**
 * The largest heap reading `read` gives over SETTLE_S seconds (one a second), each taken after a
 * full collection; undefined if the process exits first or gives none.
 */
async function settledPeak(
  r: Run,
  read: () => Promise<{ liveBytes: number; limitBytes: number } | undefined>,
): Promise<{ liveBytes: number; limitBytes: number } | undefined> {
  let peak: { liveBytes: number; limitBytes: number } | undefined;
  for (let i = 0; i < SETTLE_S; i++) {
    await sleep(1000);
    if (!alive(r)) return undefined;
    const m = await read().catch(() => undefined);
    if (m && (!peak || m.liveBytes > peak.liveBytes)) peak = m;
  }
  return peak;
}

/** From the planner's metrics: its longest event-loop stall, its CPU, and its errors by place. */
async function plannerHealth(api: string): Promise<Record<string, unknown>> {
  const text = await (await get(`${api}/metrics`)).text();
  const one = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  const errors: Record<string, number> = {};
  for (const m of text.matchAll(/^switchboard_planner_errors_total\{where="([^"]+)"\} (\S+)$/gm))
    errors[m[1]!] = Number(m[2]);
  return {
    eventLoopLagMaxS: +one('nodejs_eventloop_lag_max_seconds').toFixed(2),
    cpuS: +one('process_cpu_seconds_total').toFixed(1),
    versionsPublished: one('switchboard_planner_versions_published_total'),
    errors,
  };
}

const alive = (r: Run) => r.proc.exitCode === null && r.proc.signalCode === null;

function outcome(r: Run, how: string, facts: { oomKills?: number }): string {
  const text = r.stderr();
  if (/JavaScript heap out of memory/.test(text)) return 'heap out of memory (V8)';
  if ((facts.oomKills ?? 0) > 0) return `killed by the cgroup's OOM killer (${how})`;
  return `exited (${how})`;
}
/**
 * What a run of one process shows: how it ended (`reached`: it synced; then whether it is still up),
 * its sync time, its largest heap reading, whether it warned, its cgroup's peak, and its last
 * lines (native stack frames left out) when it is gone.
 */
async function report(
  r: Run,
  limitMiB: number,
  reached: boolean,
  ms: number,
  memory: { liveBytes: number; limitBytes: number } | undefined,
): Promise<Record<string, unknown>> {
  const facts = r.cgroup ? cgroupFacts(r.cgroup) : {};
  const up = alive(r);
  return {
    limitMiB,
    limitedBy: r.cgroup ? `cgroup v${r.cgroup.version}` : '--max-old-space-size',
    outcome: reached && up ? 'synced' : `${reached ? 'synced, then ' : ''}${outcome(r, await r.exited, facts)}`,
    syncMs: reached ? Math.round(ms) : undefined,
    heapLiveMb: mb(memory?.liveBytes),
    heapLimitMb: mb(memory?.limitBytes),
    warned: warned(r),
    peakMb: mb(facts.peakBytes),
    stderrTail: up
      ? undefined
      : r
          .stderr()
          .split('\n')
          .filter((l) => l && !/^\s*\d+: 0x/.test(l))
          .slice(-8),
  };
}

const warned = (r: Run) => /heap \d+ MB in use after a full collection, \d+ % of its \d+ MB limit/.test(r.stderr());

async function measure(S: number): Promise<Record<string, unknown>> {
  const nats = await startNatsServer({ jetstream: true });
  const server = await KubeApiServer.start();
  const dir = mkdtempSync(path.join(tmp, `s${S}-`));
  const runs: Run[] = [];
  try {
    const gen = generateCluster({ services: S, endpointsPerService: E, nodes: N });
    serveCluster(server, gen);
    const kc = await writeKubeconfig({ server: server.url, dir });
    const port = await freePort();
    const db = path.join(dir, 'log.db');
    const api = `http://127.0.0.1:${port}`;
    const t0 = performance.now();
    const p = run(
      'planner',
      [
        'planner',
        '--kubeconfig',
        kc.path,
        '--nats',
        nats.url,
        '--db',
        db,
        '--http',
        `127.0.0.1:${port}`,
        '--id',
        'planner-a',
      ],
      PLANNER_MIB,
      path.join(LOG_DIR, `planner-${S}.log`),
      values['planner-node-flag'] ?? [],
    );
    runs.push(p);
    const ready = await untilOrExit(p, async () => ((await get(`${api}/readyz`)).ok ? true : undefined));
    const syncMs = performance.now() - t0;
    // its heap after each full collection, for SETTLE_S after ready: the node checks' first round
    // and the collection after the sync come then; the largest is what it had to hold
    const status = async () =>
      ((await (await get(`${api}/status`)).json()) as { memory?: { liveBytes: number; limitBytes: number } }).memory;
    const memory = ready ? await settledPeak(p, status) : undefined;
    const health = alive(p) ? await plannerHealth(api).catch(() => undefined) : undefined;
    const planner = { ...(await report(p, PLANNER_MIB, ready !== undefined, syncMs, memory)), ...health };
    log(`${S} × ${E} × ${N}: planner ${JSON.stringify(planner)}`);
    if (!ready || !alive(p)) return { services: S, endpoints: E, nodes: N, planner };

    const metricsPort = await freePort();
    const t1 = performance.now();
    const a = run(
      'applier',
      [
        'applier',
        '--node',
        'node-0',
        '--nats',
        nats.url,
        '--mode',
        'dry-run',
        '--heartbeat',
        '1000',
        '--http',
        `127.0.0.1:${metricsPort}`,
        '--planner-key',
        `${db}.signing-key.pem.pub`,
      ],
      APPLIER_MIB,
      path.join(LOG_DIR, `applier-${S}.log`),
    );
    runs.push(a);
    const synced = await untilOrExit(a, async () => {
      const s = (await (await get(`${api}/status`)).json()) as { nodes: { node: string; status: string }[] };
      return s.nodes.find((n) => n.node === 'node-0')?.status === 'SYNCED' ? true : undefined;
    });
    const appliedMs = performance.now() - t1;
    const gauge = async (name: string) =>
      Number(
        new RegExp(`^${name} (\\S+)$`, 'm').exec(
          await (await get(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
        )?.[1],
      );
    const heapOf = async () => {
      const liveBytes = await gauge('switchboard_applier_heap_live_bytes');
      return liveBytes > 0 ? { liveBytes, limitBytes: await gauge('switchboard_applier_heap_limit_bytes') } : undefined;
    };
    const aMemory = synced ? await settledPeak(a, heapOf) : undefined; // its collection after the big apply among them
    const applier = await report(a, APPLIER_MIB, synced !== undefined, appliedMs, aMemory);
    log(`${S} × ${E} × ${N}: applier ${JSON.stringify(applier)}`);
    if (!values.failover || !synced || !alive(a)) return { services: S, endpoints: E, nodes: N, planner, applier };
    const takeover = await failover(S, p, { kc: kc.path, nats: nats.url, db, dir }, runs);
    log(`${S} × ${E} × ${N}: failover ${JSON.stringify(takeover)}`);
    return { services: S, endpoints: E, nodes: N, planner, applier, failover: takeover };
  } finally {
    for (const r of runs.reverse()) await stop(r);
    await server.stop();
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A second planner (planner-b) follows `first`'s group until its view shows node-0 SYNCED; then
 * `first` stops and planner-b must lead with node-0 SYNCED. Its report, with the times of both
 * steps and the step-downs it said (a leader that loses its lease to its own work says one).
 */
async function failover(
  S: number,
  first: Run,
  at: { kc: string; nats: string; db: string; dir: string },
  runs: Run[],
): Promise<Record<string, unknown>> {
  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  const db = path.join(at.dir, 'log-b.db');
  const args = ['planner', '--kubeconfig', at.kc, '--nats', at.nats, '--db', db, '--http', `127.0.0.1:${port}`];
  args.push('--id', 'planner-b', '--signing-key', `${at.db}.signing-key.pem`);
  const t0 = performance.now();
  const b = run(
    'planner-b',
    args,
    PLANNER_MIB,
    path.join(LOG_DIR, `planner-b-${S}.log`),
    values['planner-node-flag'] ?? [],
  );
  runs.push(b);
  interface View {
    self: { id: string; leader: boolean; term: number };
    nodes: { node: string; status: string }[];
  }
  const view = async () => (await (await get(`${api}/status`)).json()) as View;
  const nodeSynced = (v: View) => v.nodes.find((n) => n.node === 'node-0')?.status === 'SYNCED';
  const following = await untilOrExit(b, async () => {
    const v = await view();
    return !v.self.leader && nodeSynced(v) ? true : undefined;
  });
  const followMs = performance.now() - t0;
  if (!following) return { ...(await report(b, PLANNER_MIB, false, followMs, undefined)), followMs: undefined };
  await stop(first);
  const t1 = performance.now();
  const leading = await untilOrExit(b, async () => {
    const v = await view();
    return v.self.leader && nodeSynced(v) ? v.self.term : undefined;
  });
  const takeoverMs = performance.now() - t1;
  const status = async () =>
    ((await (await get(`${api}/status`)).json()) as { memory?: { liveBytes: number; limitBytes: number } }).memory;
  const memory = leading !== undefined ? await settledPeak(b, status) : undefined;
  const health = alive(b) ? await plannerHealth(api).catch(() => undefined) : undefined;
  return {
    ...(await report(b, PLANNER_MIB, leading !== undefined, takeoverMs, memory)),
    followMs: Math.round(followMs),
    takeoverMs: leading !== undefined ? Math.round(takeoverMs) : undefined,
    term: leading,
    stepDowns: (b.stderr().match(/stepping down/g) ?? []).length,
    ...health,
  };
}

// interrupted: no child left running, no cgroup left behind (each removed once its process is gone)
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    for (const r of live) r.proc.kill('SIGKILL');
    spawnSync('sleep', ['0.5']);
    for (const r of live) if (r.cgroup) removeCgroup(r.cgroup);
    rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  });

async function main(): Promise<void> {
  const build = spawnSync(process.execPath, [path.join(root, 'scripts/build.mjs'), '--if-stale'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('build failed');
  const result: Record<string, unknown> = {
    command: `npx tsx bench/scale/memory-limits.ts ${process.argv.slice(2).join(' ')}`.trim(),
    node: process.version,
    loadavgAtStart: loadavg().map((x) => +x.toFixed(2)),
  };
  const rows = [];
  for (const S of SIZES) rows.push(await measure(S));
  result.runs = rows;
  result.loadavgAtEnd = loadavg().map((x) => +x.toFixed(2));
  if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
}

main()
  .catch((e: unknown) => {
    log(`memory-limits: ${(e as Error).message}`);
    process.exitCode = 1;
  })
  .finally(() => rmSync(tmp, { recursive: true, force: true }));
