// Applier (ipvs) benchmark. Run INSIDE a fresh network namespace of the VM (IPVS needed):
//   bash bench/applier/run-in-vm.sh [SERVICES] [ENDPOINTS]      (default 1000 10)
// Measures, in the same run: (a) baseline `ipvsadm -R` + `ipset restore` of the same rules from
// empty, (b) IpvsDataplane.apply of the same NodeState from empty (netlink, windowed), (c) one
// endpoint change (cold, then the median of 21) vs one `ipvsadm -a` process run (median of 22),
// (d) a no-op resync (must be 0 writes).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { NodeState, VirtualServer } from '../../libs/model/index.ts';
import { formatIpsetSave, formatIpvsadm } from '../../libs/planner/index.ts';
import { IpvsDataplane, MemoryOwnershipStore, NetlinkKernel } from '../../libs/dataplane/index.ts';
import { PhaseTimingKernel } from './phase-timing-kernel.ts';

const services = Number(process.argv[2] ?? 1000);
const endpoints = Number(process.argv[3] ?? 10);
const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();

// Real-server addresses need a unicast route in this netns.
sh(
  'ip link add sbbench0 type dummy 2>/dev/null || true; ip link set sbbench0 up; ip route replace 10.128.0.0/9 dev sbbench0',
);

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

const time = async <T>(fn: () => Promise<T> | T): Promise<[T, number]> => {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
};
const state = build();

// (a) baseline, same rules, from empty. Addresses are bound by `ip -batch` (what ipvsadm users do).
writeFileSync('/tmp/sb-bench.ipvsadm', formatIpvsadm(state));
writeFileSync('/tmp/sb-bench.ipset', formatIpsetSave(state));
writeFileSync('/tmp/sb-bench.ip', state.boundAddresses.map((a) => `addr add ${a}/32 dev kube-ipvs0`).join('\n') + '\n');
const [, baseMs] = await time(() =>
  sh(
    'ip link add kube-ipvs0 type dummy; ip -batch /tmp/sb-bench.ip; ipvsadm -R < /tmp/sb-bench.ipvsadm; ipset restore < /tmp/sb-bench.ipset',
  ),
);
sh('ipvsadm -C; ipset destroy KUBE-CLUSTER-IP; ipset destroy KUBE-IPVS-IPS; ip link del kube-ipvs0');

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
const [full, fullMs] = await time(() => dp.apply(state));
const fullPhases = kernel?.take();
// (c) one endpoint change, as the incremental renderer (NodeStateRenderer) produces it: the new
// version shares every unchanged object with the old one. The first change runs cold code (V8
// compiles the incremental path on first use, slowly under TCG); then CHANGES more, each on
// another service, give the steady-state median. Against one `ipvsadm -a` process run (spawned
// directly, no shell; median of as many runs, the matching `-d` outside the timing).
const CHANGES = 21;
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
for (let c = 0; c <= CHANGES; c++) {
  current = withEndpoint(current, Math.floor((c * services) / (CHANGES + 1)));
  const [one, ms] = await time(() => dp.apply(current));
  oneTimes.push(ms);
  oneWrites = Math.max(oneWrites, one.kernelWrites);
}
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
  fullApplyMs: r(fullMs),
  fullWrites: full.kernelWrites,
  fullVerified: full.verified,
  ratioFullVsBaseline: +(fullMs / baseMs).toFixed(2),
  // median of the warm changes, the first (cold) one, the most writes any change made
  oneEndpointMs: +oneMs.toFixed(1),
  oneEndpointColdMs: r(oneTimes[0]!),
  oneEndpointWrites: oneWrites,
  ipvsadmAddProcessMs: +ipvsadmOneMs.toFixed(1),
  ratioOneVsIpvsadmProcess: +(oneMs / ipvsadmOneMs).toFixed(3),
  ratioOneColdVsIpvsadmProcess: +(oneTimes[0]! / ipvsadmOneMs).toFixed(2),
  noopResyncMs: r(noopMs),
  noopResyncWrites: noop.kernelWrites,
  // Kernel calls by phase (ms); the rest of each step is the dataplane's own CPU (plan, verify, model).
  ...(kernel ? { phases: { full: fullPhases, one: onePhases, noop: noopPhases } } : {}),
};
console.log(JSON.stringify(out));
