/**
 * Child process for bench/ingest: runs the real planner (runPlanner: SQLite log, NATS bus,
 * ClusterInformer against --kubeconfig) so its memory is measured alone, and answers the
 * orchestrator over IPC. Started by ingest-bench.ts with `--import tsx --expose-gc`.
 *
 * argv[2]: JSON { kubeconfig, nats, db, debounceMs?, profileDir? }. Messages in: {op:'stats'} | {op:'stop'}.
 * profileDir (ingest-bench.ts --profile DIR): a V8 CPU profile of exactly start → synced (the
 * inspector's profiler, started before runPlanner and stopped when `synced` resolves; --cpu-prof
 * would run to the child's exit and include the churn phase), written as
 * DIR/planner-start-synced.cpuprofile, and every GC of that window (perf_hooks 'gc' entries) as
 * DIR/planner-start-synced.gc.json. Summarise both with bench/ingest/profile-summary.ts.
 * Messages out: {op:'ready', ...timings} | {op:'stats', ...} | {op:'stopped'} | {op:'error'}.
 */
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import { PerformanceObserver, constants as perfConstants, type PerformanceEntry } from 'node:perf_hooks';
import { DEFAULT_PROXY_CONFIG } from '../../libs/model/index.ts';
import { runPlanner, type RunningPlanner } from '../../services/planner/run-planner.ts';
// Loaded before the clock starts, as the bare informer's child does: libs/kube imports the
// client lazily (1d0e947), and the window measures work after module load, not module load.
await import('@kubernetes/client-node');

interface Args {
  kubeconfig: string;
  nats: string;
  db: string;
  debounceMs?: number;
  profileDir?: string;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
const now = (): number => performance.timeOrigin + performance.now();
const send = (m: unknown): void => {
  process.send?.(m);
};

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

function memory(): Record<string, number> {
  const before = process.memoryUsage();
  global.gc?.();
  const after = process.memoryUsage();
  return {
    rssMb: before.rss / 1048576,
    heapUsedMb: before.heapUsed / 1048576,
    rssAfterGcMb: after.rss / 1048576,
    heapUsedAfterGcMb: after.heapUsed / 1048576,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
  };
}

let running: RunningPlanner | undefined;

async function stats(): Promise<Record<string, unknown>> {
  const p = running!.planner;
  const versions = p.versions();
  const health = p.sourceHealth() as
    | {
        kinds: {
          kind: string;
          resourceVersion?: string;
          events: number;
          lists: number;
          relists: number;
          errors: number;
        }[];
      }
    | undefined;
  // A planner that lost its lease follows and has no source (seen at load ~16 on 2 cores: its
  // renewal starved past the 15 s TTL); say so instead of failing on the missing health.
  if (!health) throw new Error('the planner has no event source: it is not leading (it stepped down; see its log)');
  const metrics = await (await fetch(`${running!.url}/metrics`)).text();
  const metric = (name: string): number => Number(new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(metrics)?.[1] ?? NaN);
  return {
    op: 'stats',
    versions: versions.length,
    latestVersion: versions.at(-1)?.version ?? 0,
    latestSeqTo: versions.at(-1)?.seqTo ?? 0,
    eventsLogged: metric('switchboard_planner_events_total'),
    versionsPublished: metric('switchboard_planner_versions_published_total'),
    errors: p.lastError ?? null,
    kinds: health.kinds.map((k) => ({
      kind: k.kind,
      rv: k.resourceVersion,
      events: k.events,
      lists: k.lists,
      relists: k.relists,
      errors: k.errors,
    })),
    dbBytes: fileSize(args.db) + fileSize(`${args.db}-wal`) + fileSize(`${args.db}-shm`),
    dbMainBytes: fileSize(args.db),
    dbWalBytes: fileSize(`${args.db}-wal`),
    cpuUserMs: process.cpuUsage().user / 1000,
    cpuSystemMs: process.cpuUsage().system / 1000,
    ...memory(),
  };
}

async function stop(): Promise<void> {
  const r = running;
  running = undefined;
  await r?.stop().catch(() => {});
}

process.on('message', (m: { op?: string }) => {
  if (m.op === 'stats') stats().then(send, (e) => send({ op: 'error', message: String(e) }));
  else if (m.op === 'stop')
    void stop().then(() => {
      send({ op: 'stopped' });
      process.exit(0);
    });
});
// The orchestrator died or closed the channel: never outlive it.
process.on('disconnect', () => void stop().then(() => process.exit(0)));

/** Profiles start → synced when asked (see the header); `stop` writes the files. */
async function startProfile(dir: string): Promise<() => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  const gcs: { startMs: number; ms: number; kind: string }[] = [];
  const kinds: Record<number, string> = {
    [perfConstants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
    [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
    [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak-callbacks',
  };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[])
      gcs.push({ startMs: e.startTime, ms: e.duration, kind: kinds[e.detail?.kind ?? -1] ?? String(e.detail?.kind) });
  });
  observer.observe({ entryTypes: ['gc'] });
  await session.post('Profiler.start');
  const t0 = performance.now();
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    const windowMs = performance.now() - t0;
    observer.disconnect();
    session.disconnect();
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'planner-start-synced.cpuprofile'), JSON.stringify(profile));
    const inWindow = gcs.filter((g) => g.startMs >= t0);
    writeFileSync(
      path.join(dir, 'planner-start-synced.gc.json'),
      `${JSON.stringify({ windowMs, gcs: inWindow.map((g) => ({ ...g, startMs: g.startMs - t0 })) })}\n`,
    );
  };
}

/** Every GC of start → synced, counted always (perf_hooks entries; cheap): scavenges and their ms, the rest and theirs. */
function watchGc(): () => { scavenges: number; scavengeMs: number; otherGcs: number; otherGcMs: number } {
  const seen = { scavenges: 0, scavengeMs: 0, otherGcs: 0, otherGcMs: 0 };
  const count = (entries: PerformanceEntry[]) => {
    for (const e of entries as (PerformanceEntry & { detail?: { kind?: number } })[])
      if (e.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
        seen.scavenges += 1;
        seen.scavengeMs += e.duration;
      } else {
        seen.otherGcs += 1;
        seen.otherGcMs += e.duration;
      }
  };
  const observer = new PerformanceObserver((list) => count(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  // entries are delivered asynchronously: read them on the next turn after synced
  return () => {
    count(observer.takeRecords());
    observer.disconnect();
    return { ...seen };
  };
}

try {
  const stopProfile = args.profileDir ? await startProfile(args.profileDir) : undefined;
  const gcTill = watchGc();
  const cpu0 = process.cpuUsage();
  const tStart = now();
  running = await runPlanner({
    kubeconfig: args.kubeconfig,
    nats: args.nats,
    db: args.db,
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: args.debounceMs,
  });
  const tRunning = now();
  await running.planner.synced;
  const tSynced = now();
  const cpu = process.cpuUsage(cpu0);
  const gc = gcTill();
  await stopProfile?.(); // after the CPU reading: writing the profile is not the planner's work
  const first = running.planner.versions()[0];
  const st = await stats();
  send({
    ...st,
    op: 'ready',
    url: running.url,
    tStart,
    tRunning,
    tSynced,
    firstVersion: first ? { version: first.version, createdAt: Date.parse(first.createdAt), seqTo: first.seqTo } : null,
    startCpuMs: (cpu.user + cpu.system) / 1000,
    startGc: gc,
    // the planner child's node flags (--planner-flag), and whether it ran the bundle (--build)
    execArgv: process.execArgv,
  });
} catch (e) {
  send({ op: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  await stop();
  process.exit(1);
}
