// One endpoint change to a service of thousands of real servers, in the VM against the real
// kernel, with the dataplane as the applier runs it (NetlinkKernel, the change handed over as the
// applier session hands it). Loads S services × 10 real servers plus one service of L real
// servers, then, each the median of 21 after a first (cold) one reported apart:
//   largeAddMs     one endpoint added to the large service
//   largeRemoveMs  one endpoint removed from it (no connections; since 2026-12-06 it drains at weight 0,
//                  the counters not read, until a full cycle: one write either way)
//   smallAddMs     one endpoint added to a 10-endpoint service (the same run's reference)
//   ipvsadmAddProcessMs  one `ipvsadm -a` process adding a real server to the large service
//                  (spawned directly; the matching `-d` outside the timing)
// and the ratios against the last one. The last stdout line is the JSON result. Run INSIDE a
// fresh netns of the VM (the repo is read-only there; .cache/wt-before may hold a worktree of an
// older commit with this file copied in, to run the same probe on the code before):
//   test/vm/harness/run-in-vm.sh --mem 4096 -- bash -c 'ip netns add p && ip netns exec p node --import tsx bench/applier/large-service-change.ts 1000 5000'
// BENCH_IPVS_RECV_BUFFER=N: the IPVS sockets' fixed receive buffer (0: peek each datagram's size),
// as in ipvs-apply.bench.ts; unset: NetlinkKernel's default. The result says which (ipvsReceiveBuffer).
import { execFileSync } from 'node:child_process';
import {
  DEFAULT_IPVS_RECEIVE_BUFFER,
  IpvsDataplane,
  MemoryOwnershipStore,
  NetlinkKernel,
  type ApplyResult,
  type NodeStateChange,
} from '../../libs/dataplane/index.ts';
import type { NodeState, RealServer, VirtualServer } from '../../libs/model/index.ts';
import { GcAfterBigApply } from '../../services/applier/gc-after-big-apply.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';
import { ipvsBenchState } from './bench-state.ts';

tuneV8ForApplier();
const gcHook = new GcAfterBigApply({});
const S = Number(process.argv[2] ?? 1000);
const L = Number(process.argv[3] ?? 5000);
const N = 21;
if (!(S > 0 && L > 0 && L <= 60_000)) {
  process.stderr.write('usage: large-service-change.ts SERVICES LARGE_ENDPOINTS (1..60000)\n');
  process.exit(2);
}
const sh = (c: string) => execFileSync('sh', ['-c', c], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();
// a unicast route for the real servers and a local table (see ipvs-apply.bench.ts)
sh(
  'ip link set lo up; ip link add sbbench0 type dummy 2>/dev/null || true; ip link set sbbench0 up; ip route replace 10.128.0.0/9 dev sbbench0',
);
sh('modprobe ip_vs 2>/dev/null || true');

const order = (a: RealServer, b: RealServer) =>
  a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port;
const LARGE_VIP = '10.97.0.1';
const small = ipvsBenchState(S, 10);
const largeVs: VirtualServer = {
  ...small.virtualServers[0]!,
  address: LARGE_VIP,
  servicePort: 'default/large:http',
  realServers: Array.from({ length: L }, (_, e) => ({
    address: `10.240.${e >> 8}.${e & 255}`,
    port: 8080,
    weight: 1,
  })).sort(order),
};
let current: NodeState = {
  ...small,
  virtualServers: [...small.virtualServers, largeVs],
  boundAddresses: [...small.boundAddresses, LARGE_VIP].sort(),
  ipsets: small.ipsets.map((s) =>
    s.name === 'KUBE-CLUSTER-IP' ? { ...s, entries: [...s.entries, `${LARGE_VIP},tcp:80`].sort() } : s,
  ),
};

const recvEnv = process.env.BENCH_IPVS_RECV_BUFFER;
const recvBuffer = recvEnv ? Number(recvEnv) : undefined;
if (recvBuffer !== undefined && !(Number.isInteger(recvBuffer) && recvBuffer >= 0)) {
  process.stderr.write(`BENCH_IPVS_RECV_BUFFER must be a byte count, got ${recvEnv}\n`);
  process.exit(2);
}
const kernel = await NetlinkKernel.open(
  recvBuffer === undefined ? {} : { ipvsReceiveBuffer: recvBuffer === 0 ? false : recvBuffer },
);
const dp = new IpvsDataplane({ kernel, store: new MemoryOwnershipStore(), netfilter: false });
const t0 = performance.now();
const load = await dp.apply(current);
const loadMs = performance.now() - t0;
await gcHook.afterApply();
if (!load.verified) throw new Error(`load not verified: ${load.notes.join('; ')}`);

/** Replaces service i's real servers; applies with the change as the applier session hands it. */
async function change(i: number, realServers: RealServer[]): Promise<[ApplyResult, number]> {
  const previous = current;
  const next = {
    ...previous,
    virtualServers: previous.virtualServers.map((v, j) => (j === i ? { ...v, realServers } : v)),
  };
  current = next;
  const hint: NodeStateChange = { previous, virtualServers: [next.virtualServers[i]!], removedVirtualServers: [] };
  const t = performance.now();
  const r = await dp.apply(next, hint);
  const ms = performance.now() - t;
  await gcHook.afterApply();
  return [r, ms];
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
let unverified = 0;
async function measure(fn: (c: number) => Promise<[ApplyResult, number]>) {
  const times: number[] = [];
  for (let c = 0; c <= N; c++) {
    const [r, ms] = await fn(c);
    if (!r.verified || r.kernelWrites !== 1) unverified++;
    times.push(ms);
  }
  return { first: +times[0]!.toFixed(1), median: +median(times.slice(1)).toFixed(2) };
}
const largeIndex = current.virtualServers.length - 1;
const added = (c: number) => ({ address: `10.250.0.${c + 1}`, port: 8080, weight: 1 });
const largeAdd = await measure((c) =>
  change(largeIndex, [...current.virtualServers[largeIndex]!.realServers, added(c)].sort(order)),
);
const largeRemove = await measure((c) =>
  change(
    largeIndex,
    current.virtualServers[largeIndex]!.realServers.filter((r) => r.address !== added(c).address),
  ),
);
const smallAdd = await measure((c) => {
  const i = Math.floor((c * S) / (N + 1));
  return change(
    i,
    [...current.virtualServers[i]!.realServers, { address: `10.200.${i >> 8}.${i & 255}`, port: 9000, weight: 1 }].sort(
      order,
    ),
  );
});
const ipvsadmTimes: number[] = [];
for (let c = 0; c <= N; c++) {
  const rs = `10.251.0.${c + 1}:8080`;
  const t = performance.now();
  execFileSync('ipvsadm', ['-a', '-t', `${LARGE_VIP}:80`, '-r', rs, '-m', '-w', '1']);
  ipvsadmTimes.push(performance.now() - t);
  execFileSync('ipvsadm', ['-d', '-t', `${LARGE_VIP}:80`, '-r', rs]);
}
const ipvsadmMs = median(ipvsadmTimes.slice(1));
await dp.close();
const ratio = (x: number) => +(x / ipvsadmMs).toFixed(3);
console.log(
  JSON.stringify({
    services: S,
    largeEndpoints: L,
    ipvsReceiveBuffer: recvBuffer ?? DEFAULT_IPVS_RECEIVE_BUFFER,
    loadMs: Math.round(loadMs),
    largeAddMs: largeAdd.median,
    largeAddColdMs: largeAdd.first,
    largeRemoveMs: largeRemove.median,
    largeRemoveColdMs: largeRemove.first,
    smallAddMs: smallAdd.median,
    ipvsadmAddProcessMs: +ipvsadmMs.toFixed(2),
    ratioLargeAddVsIpvsadmProcess: ratio(largeAdd.median),
    ratioLargeRemoveVsIpvsadmProcess: ratio(largeRemove.median),
    ratioSmallAddVsIpvsadmProcess: ratio(smallAdd.median),
    changesNotVerifiedOrNotOneWrite: unverified,
  }),
);
