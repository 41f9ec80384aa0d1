// Applier (ipvs) benchmark. Run INSIDE a fresh network namespace of the VM (IPVS needed):
//   bash bench/applier/run-in-vm.sh [SERVICES] [ENDPOINTS]      (default 1000 10)
// Measures, in the same run: (a) baseline `ipvsadm -R` + `ipset restore` of the same rules from
// empty, (b) IpvsDataplane.apply of the same NodeState from empty (netlink, windowed), (c) one
// endpoint change (cold, then the median of 21; again after 300 more changes) vs one `ipvsadm -a`
// process run (median of 22),
// (d) a no-op resync (must be 0 writes).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { NodeState } from '../../libs/model/index.ts';
import { formatIpsetSave, formatIpvsadm } from '../../libs/planner/index.ts';
import {
  type ApplyResult,
  DEFAULT_IPVS_RECEIVE_BUFFER,
  IpvsDataplane,
  MemoryOwnershipStore,
  NetlinkKernel,
} from '../../libs/dataplane/index.ts';
import { openIpvs } from '../../libs/netlink/index.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';
import { GcAfterBigApply } from '../../services/applier/gc-after-big-apply.ts';
import { fullGc } from '../../services/cli/full-gc.ts';
import { startCpuProfile } from '../cpu-profile.ts';
import { PhaseTimingKernel } from './phase-timing-kernel.ts';
import { ipvsBenchState } from './bench-state.ts';
import {
  cpuDelta,
  endChange,
  installSocketTrace,
  kernelCpu,
  startChange,
  summarize,
  type ChangeTrace,
} from './socket-trace.ts';

// The V8 flags the applier command sets in its process (services/applier/v8-tiering.ts), set here
// the same way, first; BENCH_V8_DEFAULTS=1 leaves V8's defaults (every run before the seventh round).
const V8_TUNED = process.env.BENCH_V8_DEFAULTS !== '1';
if (V8_TUNED) tuneV8ForApplier();
// BENCH_V8_FLAGS="--a --b": more V8 flags set the same way, to screen a candidate for the applier.
const V8_EXTRA = (process.env.BENCH_V8_FLAGS ?? '').split(/\s+/).filter(Boolean);
for (const flag of V8_EXTRA) v8.setFlagsFromString(flag);
// The applier's full GC after a big apply (services/applier/gc-after-big-apply.ts; the tenth round
// measured that the changes right after the load paid for V8's concurrent marking of the load's
// heap, whose worker threads share the emulator's one host thread with the main thread). The
// applier asks for it after each ACK and it runs at the next turn of the event loop; the bench asks
// after the load and after each change, and awaits it outside every timing, since an applier's
// next change comes a round trip to the planner later, not in the same turn of the loop. Its own
// time after the load is reported (gcAfterLoadMs), the count during the changes too. Made here,
// before the state is built, as the applier makes it at its start, before any data came.
// BENCH_GC_AFTER_LOAD=0 leaves it out (every run before the tenth round).
const GC_AFTER_LOAD = process.env.BENCH_GC_AFTER_LOAD !== '0';
// Since the eleventh round the hook's collection sweeps before it returns (fullGc's
// finishSweeping); BENCH_GC_FINISH_SWEEPING=0 leaves the sweeping to V8's threads, as before.
const GC_FINISH_SWEEPING = process.env.BENCH_GC_FINISH_SWEEPING !== '0';
const gcHook = GC_AFTER_LOAD ? new GcAfterBigApply(GC_FINISH_SWEEPING ? {} : { collect: () => fullGc() }) : undefined;
const services = Number(process.argv[2] ?? 1000);
const endpoints = Number(process.argv[3] ?? 10);
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();

// Real-server addresses need a unicast route, and IPVS needs the local routing table to call
// them unicast (inet_addr_type: with no local table every address reads as broadcast and the
// kernel refuses the real server with EINVAL); `lo up` creates that table.
const NETNS_SETUP =
  'ip link set lo up; ip link add sbbench0 type dummy 2>/dev/null || true; ip link set sbbench0 up; ip route replace 10.128.0.0/9 dev sbbench0';
sh(NETNS_SETUP);

// BENCH_IPVS_RUN_ESTIMATION=0|1 sets net.ipv4.vs.run_estimation in this netns and in the
// baseline's before either loads (unset: the kernel's default, 1, as in every run before the ninth
// round). Kernel 6.1 (the VM's) keeps a rate estimator per service and per real server and walks
// them all every 2 s in a timer (softirq) under the netns' est_lock, which every service or real
// server add also takes; with 0 the timer skips the walk. The sysctl is per netns and exists once
// ip_vs is loaded (the guest loads it at boot; modprobe again in case).
const RUN_ESTIMATION = process.env.BENCH_IPVS_RUN_ESTIMATION || undefined;
const RUN_ESTIMATION_SYSCTL = '/proc/sys/net/ipv4/vs/run_estimation';
if (RUN_ESTIMATION !== undefined && !/^[01]$/.test(RUN_ESTIMATION))
  throw new Error(`BENCH_IPVS_RUN_ESTIMATION must be 0 or 1, not ${RUN_ESTIMATION}`);
sh('modprobe ip_vs 2>/dev/null || true');
if (RUN_ESTIMATION !== undefined) writeFileSync(RUN_ESTIMATION_SYSCTL, `${RUN_ESTIMATION}\n`);
const runEstimation = Number(readFileSync(RUN_ESTIMATION_SYSCTL, 'utf8').trim());

const build = (extra = 0): NodeState => ipvsBenchState(services, endpoints, extra);

/**
 * Waits until the guest's CPUs were at least 90 % idle over one second (at most 120 s); returns
 * how long that took. /proc/stat's first line: user nice system idle iowait irq softirq ...
 */
async function waitQuiet(): Promise<number> {
  const t0 = performance.now();
  const cpu = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + f[4]!;
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  while (performance.now() - t0 < 120_000) {
    const a = cpu();
    await new Promise((r) => setTimeout(r, 1000));
    const b = cpu();
    if (b.total > a.total && (b.idle - a.idle) / (b.total - a.total) >= 0.9) break;
  }
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const time = async <T>(fn: () => Promise<T> | T): Promise<[T, number]> => {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
};
const state = build();

// The garbage collector's pauses (main thread), to say how much of each step is GC. The observer
// gets its entries later than the pause (a callback on a later turn): a pause is placed in a step
// by its startTime, not by when the observer heard of it (until the tenth round's run 36 the
// changes' GC was summed as heard, and the hook's own collection just before them, heard during
// them, was counted as theirs).
let gcMs = 0;
/** Every GC pause heard of: its start on performance.now()'s timeline, duration and kind. */
const gcPauses: { start: number; ms: number; kind: string }[] = [];
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration;
    const kind = GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other';
    gcPauses.push({ start: e.startTime, ms: e.duration, kind });
  }
}).observe({ entryTypes: ['gc'] });

// (a) baseline, same rules, from empty. Addresses are bound by `ip -batch` (what ipvsadm users do).
// It runs in a netns of its own, deleted before our load, so both loads start from a fresh
// kernel. Loaded one after the other in one netns, ours paid for the baseline's teardown: IPVS
// keeps deleted real servers in a per-netns trash list for 2-3 minutes and every real-server add
// walks that whole list (ip_vs_trash_get_dest), so after a 10k x 10 flush each of our 100k adds
// walked up to 100k entries (bench/applier/scaling-probe.ts: the first two 11k-op chunks after
// a flush took ~80-100 s each against ~2.5 s on a fresh table, through ipvsadm as well as ours).
// The time is taken inside the netns, so `ip netns exec` itself is not counted.
writeFileSync('/tmp/sb-bench.ipvsadm', formatIpvsadm(state));
writeFileSync('/tmp/sb-bench.ipset', formatIpsetSave(state));
writeFileSync('/tmp/sb-bench.ip', state.boundAddresses.map((a) => `addr add ${a}/32 dev kube-ipvs0`).join('\n') + '\n');
const BASE_NS = `sbbase${process.pid}`;
sh(
  `ip netns add ${BASE_NS}; ip netns exec ${BASE_NS} sh -c '${NETNS_SETUP}${RUN_ESTIMATION !== undefined ? `; echo ${RUN_ESTIMATION} > ${RUN_ESTIMATION_SYSCTL}` : ''}'`,
);
const baselineRunEstimation = Number(sh(`ip netns exec ${BASE_NS} cat ${RUN_ESTIMATION_SYSCTL}`).trim());
/**
 * A line on stderr, which streams to the host as it is written: run-in-vm.sh reads the emulator's
 * CPU time at each (bench/applier/emulator-cpu.sh), so the from-empty ratio can be told apart from
 * the share of a host core the VM got in each window (the tenth round: it moved with the host's load).
 */
const phaseMark = (what: string) => process.stderr.write(`bench-phase: ${what}\n`);
phaseMark('baseline begin');
const baseMs =
  Number(
    sh(
      `ip netns exec ${BASE_NS} sh -c 't=$(date +%s%N); ip link add kube-ipvs0 type dummy; ip -batch /tmp/sb-bench.ip; ipvsadm -R < /tmp/sb-bench.ipvsadm; ipset restore < /tmp/sb-bench.ipset; echo $(( $(date +%s%N) - t ))'`,
    ).trim(),
  ) / 1e6;
phaseMark('baseline end');
// Deleting the netns frees its objects in a kernel worker; wait until the guest is idle again so
// that work does not land inside our load.
sh(`ip netns del ${BASE_NS}`);
const quietMs = await waitQuiet();

// (b) ours from empty (glue off: the baseline has no iptables part).
// BENCH_PHASES=1 times kernel calls by phase (it re-queues each run of ops, so it costs a little).
// BENCH_WINDOW / BENCH_BATCH / BENCH_DUMP_SOCKETS override the netlink window, requests per
// datagram and destination-dump sockets (NetlinkKernelOptions) to compare settings.
// BENCH_TRACE=1 (with BENCH_PHASES=1): each change's datagrams and where its time went around
// them (socket-trace.ts); installed before the sockets open (they bind their receive handler then).
const TRACE = process.env.BENCH_TRACE === '1';
if (TRACE) installSocketTrace();
const env = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
// BENCH_IPVS_RECV_BUFFER=N: the IPVS sockets' fixed receive buffer (0: peek each datagram's size,
// as before the eighth round); unset: NetlinkKernel's default.
const recvBuffer = env('BENCH_IPVS_RECV_BUFFER');
const netlink = await NetlinkKernel.open({
  ...(recvBuffer !== undefined ? { ipvsReceiveBuffer: recvBuffer === 0 ? false : recvBuffer } : {}),
  ...(env('BENCH_WINDOW') ? { window: env('BENCH_WINDOW') } : {}),
  ...(env('BENCH_BATCH') ? { batch: env('BENCH_BATCH') } : {}),
  ...(env('BENCH_DUMP_SOCKETS') ? { dumpSockets: env('BENCH_DUMP_SOCKETS') } : {}),
});
const kernel = process.env.BENCH_PHASES === '1' ? new PhaseTimingKernel(netlink) : undefined;
const dp = new IpvsDataplane({ kernel: kernel ?? netlink, store: new MemoryOwnershipStore(), netfilter: false });
const gc0 = gcMs;
phaseMark('load begin');
const [full, fullMs] = await time(() => dp.apply(state));
phaseMark('load end');
const fullGcMs = gcMs - gc0;
const fullPhases = kernel?.take();
const gcAfterLoad = await gcHook?.afterApply();
/** Collections the hook made after a change (outside the timings), by set of changes. */
const gcAfterChanges: Record<string, number> = {};
/**
 * CPU ms so far of this process's threads by name (main thread "main"; V8's "V8 DefaultWorke",
 * libuv's "libuv-worker", ...) and of the whole guest (busy, all CPUs). /proc ticks are 10 ms, and
 * in the emulated VM the per-thread and the guest-wide accounting do not add up (different clocks):
 * compare threads with each other, not with wall time.
 */
function cpuSample(): { threads: Record<string, number>; guestBusy: number } {
  const threads: Record<string, number> = {};
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const name = Number(tid) === process.pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      threads[name] = (threads[name] ?? 0) + (Number(f[11]) + Number(f[12])) * 10; // utime + stime (fields 14, 15)
    } catch {
      /* the thread ended meanwhile */
    }
  }
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { threads, guestBusy: (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) * 10 };
}
// (c) one endpoint change, as the incremental renderer (NodeStateRenderer) produces it: the new
// version shares every unchanged object with the old one. The first change runs cold code (V8
// compiles the incremental path on first use, slowly under TCG); then CHANGES more, each on
// another service, give the steady-state median. Against one `ipvsadm -a` process run (spawned
// directly, no shell; median of as many runs, the matching `-d` outside the timing).
const CHANGES = 21;
// BENCH_SETTLE_MS=N waits before the changes (an experiment: does the change get cheaper once the
// process has settled after the load? An applier's changes come long after its initial load).
if (process.env.BENCH_SETTLE_MS) await new Promise((r) => setTimeout(r, Number(process.env.BENCH_SETTLE_MS)));
const withEndpoint = (s: NodeState, i: number, port = 9000): NodeState => ({
  ...s,
  virtualServers: s.virtualServers.map((v, j) =>
    j !== i
      ? v
      : {
          ...v,
          realServers: [...v.realServers, { address: `10.200.${i >> 8}.${i & 255}`, port, weight: 1 }],
        },
  ),
});
// What the applier session hands to apply with each state (NodeStateRenderer.changeOf: the
// services replaced since the previous state), so the dataplane need not walk the 10k services
// to find the one that changed. BENCH_NO_HINT=1 applies without it (every run before the sixth
// round did): the dataplane then finds the change by its pointer walk.
const HINT = process.env.BENCH_NO_HINT !== '1';
let current = state;
/**
 * Moves `current` to the next state, service i with one more endpoint (outside any timing), and
 * returns the apply of it to run (and time).
 */
function nextChange(i: number, port: number): () => Promise<ApplyResult> {
  const previous = current;
  const next = withEndpoint(previous, i, port);
  current = next;
  const change = { previous, virtualServers: [next.virtualServers[i]!], removedVirtualServers: [] };
  return () => dp.apply(next, HINT ? change : undefined);
}
/**
 * CHANGES + 1 changes (`port` tells their real servers from other rounds'), each on another
 * service: the first one's time apart, then the median of the others and where their time went.
 * Where it goes (sampled outside the timing): the CPU of this process's threads by name (V8's
 * background GC and compiler threads compete with the main thread for the emulated CPUs), the
 * guest's busy CPU, the GC pauses, and with BENCH_PHASES=1 the kernel calls.
 */
async function measureChanges(port: number) {
  const times: number[] = [];
  let writes = 0;
  const windows: [number, number][] = [];
  const parts = { kernelCallMs: 0, guestBusyCpuMs: 0 };
  const threadCpuMs: Record<string, number> = {};
  const kernelCallMs: number[] = [];
  const phaseTotals: Record<string, number> = {};
  const traces: ChangeTrace[] = [];
  let kcpu0: Record<string, number> = {};
  kernel?.take();
  // Markers on stdout, to find the changes among the lines of BENCH_NODE_FLAGS=--trace-gc.
  console.log(`bench: changes (port ${port}) begin`);
  for (let c = 0; c <= CHANGES; c++) {
    const apply = nextChange(Math.floor((c * services) / (CHANGES + 1)), port);
    const before = cpuSample();
    if (TRACE && c === 1) kcpu0 = kernelCpu();
    if (TRACE) startChange();
    const t0 = performance.now();
    const [one, ms] = await time(apply);
    if (TRACE && c > 0) traces.push(endChange(t0, performance.now()));
    const after = cpuSample();
    if (await gcHook?.afterApply()) gcAfterChanges[port] = (gcAfterChanges[port] ?? 0) + 1;
    if (c > 0) {
      windows.push([t0, t0 + ms]);
      for (const [name, v] of Object.entries(after.threads))
        threadCpuMs[name] = (threadCpuMs[name] ?? 0) + v - (before.threads[name] ?? 0);
      parts.guestBusyCpuMs += after.guestBusy - before.guestBusy;
      const taken = kernel?.take() ?? {};
      for (const [phase, v] of Object.entries(taken)) phaseTotals[phase] = (phaseTotals[phase] ?? 0) + v;
      const k = Object.values(taken).reduce((a, b) => a + b, 0);
      parts.kernelCallMs += k;
      kernelCallMs.push(k);
    } else kernel?.take();
    times.push(ms);
    writes = Math.max(writes, one.kernelWrites);
  }
  await new Promise((r) => setTimeout(r, 50)); // the observer hears of the last pauses
  const byKind: Record<string, number> = {};
  let gc = 0;
  for (const p of gcPauses)
    if (windows.some(([a, b]) => p.start >= a && p.start < b)) {
      gc += p.ms;
      byKind[p.kind] = (byKind[p.kind] ?? 0) + p.ms;
    }
  const kernelCpuMs = TRACE ? cpuDelta(kcpu0, kernelCpu()) : undefined;
  console.log(`bench: changes (port ${port}) end`);
  return {
    times,
    writes,
    gc,
    byKind,
    parts: {
      wallMs: Math.round(times.slice(1).reduce((a, b) => a + b, 0)),
      ...Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Math.round(v)])),
      gcMs: Math.round(gc),
      threadCpuMs: Object.fromEntries(Object.entries(threadCpuMs).filter(([, v]) => v > 0)),
      ...(TRACE ? { trace: summarize(traces), kernelCpuMs } : {}),
    },
    // the warm changes' kernel calls by phase (the first change left out), and their median per change
    phases: kernel ? { ...phaseTotals, perChangeMedian: median(kernelCallMs) } : undefined,
  };
}
// Right after the load (what every earlier run measured), then again after WARMUP more changes:
// an applier runs the incremental path all day, and under TCG V8 keeps tiering it up on
// background threads (and scavenging at 0.2-0.4 s a time) for the first tens of changes.
// BENCH_FIRST_PROF=1: a V8 CPU profile of exactly these first changes (a diagnostic: the
// profiler's cost is then inside their figures, so such a run is not one to record).
const firstProf = process.env.BENCH_FIRST_PROF === '1' ? await startProfile() : undefined;
const first = await measureChanges(9000);
if (firstProf) await firstProf('first-changes');
// The baseline in the same conditions as the changes right after the load: CHANGES + 1 `ipvsadm
// -a` processes right after them (the load ended ~0.5 s before), against the same processes at the
// end of the run (ipvsadmAddProcessMs, the budget's baseline since the first round).
const ipvsadmRightAfterTimes = await measureIpvsadm();
const ipvsadmShellRightAfterTimes = measureIpvsadmFromShell();
/** CHANGES + 1 `ipvsadm -a` process runs (spawned directly, no shell), each undone outside the timing. */
async function measureIpvsadm(): Promise<number[]> {
  const ipvsadm = (...args: string[]) => execFileSync('ipvsadm', args, { stdio: 'ignore' });
  const times: number[] = [];
  for (let c = 0; c <= CHANGES; c++) {
    const rs = `10.201.0.${c + 1}:80`;
    times.push((await time(() => ipvsadm('-a', '-t', '10.96.0.1:80', '-r', rs, '-m', '-w', '1')))[1]);
    ipvsadm('-d', '-t', '10.96.0.1:80', '-r', rs);
  }
  return times;
}
/**
 * The same `ipvsadm -a` runs started from a small parent: one bash process times each with
 * $EPOCHREALTIME (no extra process per timestamp). Spawned from this bench, each run also pays
 * the fork of a node process holding a 10k-service heap (page tables to copy); from a shell it
 * pays a small bash's fork, as an operator's or a script's ipvsadm does.
 */
function measureIpvsadmFromShell(): number[] {
  const script = `for i in $(seq 1 ${CHANGES + 1}); do s=$EPOCHREALTIME; ipvsadm -a -t 10.96.0.1:80 -r 10.203.0.$i:80 -m -w 1; e=$EPOCHREALTIME; echo "$s $e"; ipvsadm -d -t 10.96.0.1:80 -r 10.203.0.$i:80; done`;
  return sh(`bash -c '${script}'`)
    .trim()
    .split('\n')
    .map((l) => {
      const [a, b] = l.split(' ').map(Number);
      return (b! - a!) * 1000;
    });
}
// (run-in-vm.sh passes BENCH_WARMUP through even when unset: an empty value means the default)
const WARMUP = process.env.BENCH_WARMUP ? Number(process.env.BENCH_WARMUP) : 300;
const STEADY_PROF_CHANGES = 300;
for (let c = 0; c < WARMUP; c++) {
  await nextChange((c * 7919 + 1) % services, 9100 + (c % 800))();
  if (await gcHook?.afterApply()) gcAfterChanges.warmup = (gcAfterChanges.warmup ?? 0) + 1;
}
const steady = WARMUP > 0 ? await measureChanges(9001) : undefined;
// BENCH_STEADY_PROF=1: a V8 CPU profile of STEADY_PROF_CHANGES more changes of the same kind, after
// the measured ones (so the profiler's cost is in none of the figures): where a steady change's
// time goes outside its kernel call. Written to /tmp/sb-prof/, summarised by run-in-vm.sh.
if (process.env.BENCH_STEADY_PROF === '1') {
  const stop = await startProfile();
  for (let c = 0; c < STEADY_PROF_CHANGES; c++) {
    await nextChange((c * 7919 + 5) % services, 9100 + (c % 800))();
  }
  await stop('steady-changes');
  kernel?.take(); // (their kernel time is not the no-op resync's, which takes the phases next)
}
/** Starts a V8 CPU profile (250 µs sampling); the function returned writes it to /tmp/sb-prof/NAME.cpuprofile. */
async function startProfile(): Promise<(name: string) => Promise<void>> {
  const stop = await startCpuProfile();
  return async (name) => {
    const profile = await stop();
    mkdirSync('/tmp/sb-prof', { recursive: true });
    writeFileSync(`/tmp/sb-prof/${name}.cpuprofile`, JSON.stringify(profile));
  };
}
const oneTimes = first.times;
const oneWrites = Math.max(first.writes, steady?.writes ?? 0);
const oneGcMs = first.gc;
const oneGcByKind = first.byKind;
const onePhases = first.phases;
// The same round trip as our change's kernel call (one add; until 2026-12-06 also its service's
// destination dump in the same datagram, the read-back since left out) through a bare IPVS client
// of this process: whether a round trip is slow in this (large) process, whatever the dataplane
// does around it. bench/applier/one-change-probe.ts measures the same in a small process on the
// same table size.
const bare = await openIpvs({ window: 256, batch: 128 });
const bareTimes: number[] = [];
for (let c = 0; c <= CHANGES; c++) {
  const s = state.virtualServers[Math.floor((c * services) / (CHANGES + 1)) + 1]!;
  const key = { protocol: 'TCP' as const, address: s.address, port: 80 };
  const d = {
    address: `10.202.0.${c + 1}`,
    port: 9000,
    weight: 1,
    forward: 'masq' as const,
    upperThreshold: 0,
    lowerThreshold: 0,
  };
  bareTimes.push((await time(() => bare.addDestination(key, d)))[1]);
  await bare.deleteDestination(key, d);
}
bare.close();
const ipvsadmTimes = await measureIpvsadm();
const ipvsadmShellTimes = measureIpvsadmFromShell();
const oneMs = median(oneTimes.slice(1));
const ipvsadmOneMs = median(ipvsadmTimes);
// (d) no-op resync.
const [noop, noopMs] = await time(() => dp.resync());
const noopPhases = kernel?.take();
await dp.cleanup();
await dp.close();

const r = (x: number) => Math.round(x);
/** The guest's clocksource (under TCG a clock read may be an emulated device access, not a vDSO read). */
function clocksource(): string {
  try {
    return readFileSync('/sys/devices/system/clocksource/clocksource0/current_clocksource', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}
/** µs per performance.now() here (median of 5 rounds of 2 000): what one clock read costs in this guest. */
function clockReadUs(): number {
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    for (let i = 0; i < 2000; i++) performance.now();
    rounds.push(((performance.now() - t) / 2000) * 1000);
  }
  return +median(rounds).toFixed(2);
}
const out = {
  services,
  endpoints,
  clocksource: clocksource(),
  clockReadUs: clockReadUs(),
  baselineMs: r(baseMs),
  // waited after deleting the baseline's netns for the guest to be idle again (not counted)
  baselineTeardownMs: r(quietMs),
  fullApplyMs: r(fullMs),
  fullWrites: full.kernelWrites,
  fullVerified: full.verified,
  // GC pauses inside the from-empty apply, and inside the warm changes (all of them, summed)
  fullGcMs: r(fullGcMs),
  ratioFullVsBaseline: +(fullMs / baseMs).toFixed(2),
  // median of the warm changes, the first (cold) one, the most writes any change made
  oneEndpointMs: +oneMs.toFixed(1),
  oneEndpointColdMs: r(oneTimes[0]!),
  oneEndpointWrites: oneWrites,
  oneEndpointGcMsTotal: +oneGcMs.toFixed(1),
  oneEndpointGcMsByKind: Object.fromEntries(Object.entries(oneGcByKind).map(([k, v]) => [k, +v.toFixed(1)])),
  // the warm changes' wall time summed, and its parts (see measureChanges)
  oneEndpointParts: first.parts,
  // the same after WARMUP more changes (BENCH_WARMUP, default 300; 0 leaves it out)
  warmupChanges: WARMUP,
  // whether each change came with its NodeStateChange (BENCH_NO_HINT=1: without, as before round six)
  changeHint: HINT,
  // whether the applier's V8 flags were set (BENCH_V8_DEFAULTS=1: V8's defaults, as before round seven)
  v8Tuned: V8_TUNED,
  // BENCH_V8_FLAGS, set in this process after the applier's own
  v8ExtraFlags: V8_EXTRA.join(' '),
  // the IPVS sockets' fixed receive buffer in bytes (0: each datagram's size peeked first)
  ipvsReceiveBuffer: recvBuffer ?? (DEFAULT_IPVS_RECEIVE_BUFFER || 0),
  // the applier's GC after a big apply (BENCH_GC_AFTER_LOAD=0: off): whether it ran, its own time
  // and the heap before and after it, between the load and the changes (in no other figure), and
  // how many times it ran after a change (keyed by set: 9000 right after the load, warmup, 9001)
  gcAfterBigApply: GC_AFTER_LOAD,
  gcFinishSweeping: GC_AFTER_LOAD && GC_FINISH_SWEEPING,
  ...(gcAfterLoad
    ? {
        gcAfterLoadMs: r(gcAfterLoad.ms),
        gcAfterLoadHeapMB: [gcAfterLoad.beforeBytes, gcAfterLoad.afterBytes].map((b) => r(b / 2 ** 20)),
      }
    : {}),
  gcAfterChanges,
  // net.ipv4.vs.run_estimation in our netns and the baseline's while each loaded (BENCH_IPVS_RUN_ESTIMATION)
  ipvsRunEstimation: runEstimation,
  baselineIpvsRunEstimation: baselineRunEstimation,
  // BENCH_NODE_FLAGS, as given
  nodeFlags: process.execArgv.filter((a) => a.startsWith('--') && !a.startsWith('--import')).join(' '),
  ...(steady
    ? {
        oneEndpointSteadyMs: +median(steady.times.slice(1)).toFixed(1),
        ratioOneSteadyVsIpvsadmProcess: +(median(steady.times.slice(1)) / ipvsadmOneMs).toFixed(3),
        oneEndpointSteadyParts: steady.parts,
      }
    : {}),
  // median of the bare client's one-add round trips in this process (after the changes; add + dump before 2026-12-06)
  bareClientRoundTripMs: +median(bareTimes.slice(1)).toFixed(1),
  ipvsadmAddProcessMs: +ipvsadmOneMs.toFixed(1),
  ratioOneVsIpvsadmProcess: +(oneMs / ipvsadmOneMs).toFixed(3),
  // the same baseline measured right after the changes that follow the load (same conditions)
  ipvsadmAddRightAfterLoadMs: +median(ipvsadmRightAfterTimes).toFixed(1),
  ratioOneVsIpvsadmRightAfterLoad: +(oneMs / median(ipvsadmRightAfterTimes)).toFixed(3),
  // `ipvsadm -a` started from a small bash instead of this process (measureIpvsadmFromShell), at the end and right after the load
  ipvsadmAddFromShellMs: +median(ipvsadmShellTimes).toFixed(1),
  ipvsadmAddFromShellRightAfterLoadMs: +median(ipvsadmShellRightAfterTimes).toFixed(1),
  ratioOneVsIpvsadmFromShell: +(oneMs / median(ipvsadmShellTimes)).toFixed(3),
  ratioOneColdVsIpvsadmProcess: +(oneTimes[0]! / ipvsadmOneMs).toFixed(2),
  noopResyncMs: r(noopMs),
  noopResyncWrites: noop.kernelWrites,
  // Kernel calls by phase (ms); the rest of each step is the dataplane's own CPU (plan, verify, model).
  ...(kernel
    ? { phases: { full: fullPhases, one: onePhases, ...(steady ? { steady: steady.phases } : {}), noop: noopPhases } }
    : {}),
};
console.log(JSON.stringify(out));
