// Applier (ipvs) benchmark. Run INSIDE a fresh network namespace of the VM (IPVS needed):
//   bash bench/applier/run-in-vm.sh [SERVICES] [ENDPOINTS]      (default 1000 10)
// Measures, in the same run: (a) baseline `ipvsadm -R` + `ipset restore` of the same rules from
// empty, (b) IpvsDataplane.apply of the same NodeState from empty (netlink, windowed), (c) one
// endpoint change (cold, then the median of 21) vs one `ipvsadm -a` process run (median of 22),
// (d) a no-op resync (must be 0 writes).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import type { NodeState, VirtualServer } from '../../libs/model/index.ts';
import { formatIpsetSave, formatIpvsadm } from '../../libs/planner/index.ts';
import { IpvsDataplane, MemoryOwnershipStore, NetlinkKernel } from '../../libs/dataplane/index.ts';
import { PhaseTimingKernel } from './phase-timing-kernel.ts';

const services = Number(process.argv[2] ?? 1000);
const endpoints = Number(process.argv[3] ?? 10);
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();

// Real-server addresses need a unicast route, and IPVS needs the local routing table to call
// them unicast (inet_addr_type: with no local table every address reads as broadcast and the
// kernel refuses the real server with EINVAL); `lo up` creates that table.
const NETNS_SETUP =
  'ip link set lo up; ip link add sbbench0 type dummy 2>/dev/null || true; ip link set sbbench0 up; ip route replace 10.128.0.0/9 dev sbbench0';
sh(NETNS_SETUP);

function build(extra = 0): NodeState {
  const vss: VirtualServer[] = [];
  for (let s = 0; s < services; s++) {
    const address = `10.96.${s >> 8}.${s & 255}`;
    const n = endpoints + (s === 0 ? extra : 0);
    vss.push({
      protocol: 'TCP',
      address,
      port: 80,
      scheduler: 'rr',
      schedulerFlags: [],
      persistenceTimeout: 0,
      role: 'cluster-ip',
      servicePort: `default/s${s}:http`,
      localOnly: false,
      sourceRanges: [],
      realServers: Array.from({ length: n }, (_, e) => ({
        address: `10.${128 + (e >> 4)}.${s >> 8}.${s & 255}`,
        port: 8000 + (e & 15),
        weight: 1,
      })).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port)),
    });
  }
  vss.sort((a, b) => (`${a.address}` < `${b.address}` ? -1 : 1));
  const vips = vss.map((v) => v.address).sort();
  return {
    node: 'bench',
    virtualServers: vss,
    boundAddresses: vips,
    ipsets: [
      {
        name: 'KUBE-CLUSTER-IP',
        type: 'hash:ip,port',
        family: 'inet',
        entries: vss.map((v) => `${v.address},tcp:80`).sort(),
      },
      { name: 'KUBE-IPVS-IPS', type: 'hash:ip', family: 'inet', entries: vips },
    ],
    settings: {
      strictARP: false,
      masqueradeAll: false,
      clusterCIDR: '',
      tcpTimeout: 0,
      tcpFinTimeout: 0,
      udpTimeout: 0,
      excludeCIDRs: [],
    },
  };
}

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

const time = async <T>(fn: () => Promise<T> | T): Promise<[T, number]> => {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
};
const state = build();

// The garbage collector's pauses (main thread), to say how much of each step is GC.
let gcMs = 0;
/** GC pauses by kind (minor = scavenge, major = mark-compact, incremental = marking steps), while `gcByKind` is set. */
let gcByKind: Record<string, number> | undefined;
const GC_KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration;
    if (gcByKind) {
      const kind = GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other';
      gcByKind[kind] = (gcByKind[kind] ?? 0) + e.duration;
    }
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
sh(`ip netns add ${BASE_NS}; ip netns exec ${BASE_NS} sh -c '${NETNS_SETUP}'`);
const baseMs =
  Number(
    sh(
      `ip netns exec ${BASE_NS} sh -c 't=$(date +%s%N); ip link add kube-ipvs0 type dummy; ip -batch /tmp/sb-bench.ip; ipvsadm -R < /tmp/sb-bench.ipvsadm; ipset restore < /tmp/sb-bench.ipset; echo $(( $(date +%s%N) - t ))'`,
    ).trim(),
  ) / 1e6;
// Deleting the netns frees its objects in a kernel worker; wait until the guest is idle again so
// that work does not land inside our load.
sh(`ip netns del ${BASE_NS}`);
const quietMs = await waitQuiet();

// (b) ours from empty (glue off: the baseline has no iptables part).
// BENCH_PHASES=1 times kernel calls by phase (it re-queues each run of ops, so it costs a little).
// BENCH_WINDOW / BENCH_BATCH / BENCH_DUMP_SOCKETS override the netlink window, requests per
// datagram and destination-dump sockets (NetlinkKernelOptions) to compare settings.
const env = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
const netlink = await NetlinkKernel.open({
  ...(env('BENCH_WINDOW') ? { window: env('BENCH_WINDOW') } : {}),
  ...(env('BENCH_BATCH') ? { batch: env('BENCH_BATCH') } : {}),
  ...(env('BENCH_DUMP_SOCKETS') ? { dumpSockets: env('BENCH_DUMP_SOCKETS') } : {}),
});
const kernel = process.env.BENCH_PHASES === '1' ? new PhaseTimingKernel(netlink) : undefined;
const dp = new IpvsDataplane({ kernel: kernel ?? netlink, store: new MemoryOwnershipStore(), netfilter: false });
let gc0 = gcMs;
const [full, fullMs] = await time(() => dp.apply(state));
const fullGcMs = gcMs - gc0;
const fullPhases = kernel?.take();
// (c) one endpoint change, as the incremental renderer (NodeStateRenderer) produces it: the new
// version shares every unchanged object with the old one. The first change runs cold code (V8
// compiles the incremental path on first use, slowly under TCG); then CHANGES more, each on
// another service, give the steady-state median. Against one `ipvsadm -a` process run (spawned
// directly, no shell; median of as many runs, the matching `-d` outside the timing).
const CHANGES = 21;
// BENCH_SETTLE_MS=N waits before the changes (an experiment: does the change get cheaper once the
// process has settled after the load? An applier's changes come long after its initial load).
if (process.env.BENCH_SETTLE_MS) await new Promise((r) => setTimeout(r, Number(process.env.BENCH_SETTLE_MS)));
const withEndpoint = (s: NodeState, i: number): NodeState => ({
  ...s,
  virtualServers: s.virtualServers.map((v, j) =>
    j !== i
      ? v
      : {
          ...v,
          realServers: [...v.realServers, { address: `10.200.${i >> 8}.${i & 255}`, port: 9000, weight: 1 }],
        },
  ),
});
let current = state;
const oneTimes: number[] = [];
let oneWrites = 0;
let oneGcMs = 0;
let oneGcByKind: Record<string, number> = {};
for (let c = 0; c <= CHANGES; c++) {
  if (c === 1) gcByKind = oneGcByKind = {};
  current = withEndpoint(current, Math.floor((c * services) / (CHANGES + 1)));
  gc0 = gcMs;
  const [one, ms] = await time(() => dp.apply(current));
  if (c > 0) oneGcMs += gcMs - gc0;
  oneTimes.push(ms);
  oneWrites = Math.max(oneWrites, one.kernelWrites);
}
gcByKind = undefined;
const onePhases = kernel?.take();
const ipvsadm = (...args: string[]) => execFileSync('ipvsadm', args, { stdio: 'ignore' });
const ipvsadmTimes: number[] = [];
for (let c = 0; c <= CHANGES; c++) {
  const rs = `10.201.0.${c + 1}:80`;
  ipvsadmTimes.push((await time(() => ipvsadm('-a', '-t', '10.96.0.1:80', '-r', rs, '-m', '-w', '1')))[1]);
  ipvsadm('-d', '-t', '10.96.0.1:80', '-r', rs);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const oneMs = median(oneTimes.slice(1));
const ipvsadmOneMs = median(ipvsadmTimes);
// (d) no-op resync.
const [noop, noopMs] = await time(() => dp.resync());
const noopPhases = kernel?.take();
await dp.cleanup();
await dp.close();

const r = (x: number) => Math.round(x);
const out = {
  services,
  endpoints,
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
  ipvsadmAddProcessMs: +ipvsadmOneMs.toFixed(1),
  ratioOneVsIpvsadmProcess: +(oneMs / ipvsadmOneMs).toFixed(3),
  ratioOneColdVsIpvsadmProcess: +(oneTimes[0]! / ipvsadmOneMs).toFixed(2),
  noopResyncMs: r(noopMs),
  noopResyncWrites: noop.kernelWrites,
  // Kernel calls by phase (ms); the rest of each step is the dataplane's own CPU (plan, verify, model).
  ...(kernel ? { phases: { full: fullPhases, one: onePhases, noop: noopPhases } } : {}),
};
console.log(JSON.stringify(out));
