// What a full read of IPVS costs, by source: loads S services × 10 real servers with ipvsadm -R,
// then times (wall, this process's user/system CPU, GC) `cat /proc/net/ip_vs`, `ipvsadm -Ln`,
// reading the listing from node, and NetlinkKernel.read() with one netlink dump per service
// (ipvsListing: false) and with the text listing (the default). PROBE_CPU_PROF=1 adds the top
// self-time functions of the dump-based read. Run INSIDE a fresh netns of the VM:
//   test/vm/harness/run-in-vm.sh --mem 6144 -- bash -c 'ip netns add p && ip netns exec p node --import tsx bench/applier/read-probe.ts 10000'
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { NetlinkKernel } from '../../libs/dataplane/index.ts';

const S = Number(process.argv[2] ?? 10000);
const E = 10;
const sh = (c: string) =>
  execFileSync('bash', ['-c', c], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 30 }).toString();
sh('ip link set lo up; ip link add d0 type dummy; ip link set d0 up; ip route replace 10.128.0.0/9 dev d0');
let gcMs = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

const lines: string[] = [];
const vip = (s: number) => `10.96.${s >> 8}.${s & 255}`;
for (let s = 0; s < S; s++) lines.push(`-A -t ${vip(s)}:80 -s rr`);
for (let s = 0; s < S; s++)
  for (let e = 0; e < E; e++)
    lines.push(`-a -t ${vip(s)}:80 -r 10.${128 + (e >> 4)}.${s >> 8}.${s & 255}:${8000 + e} -m -w 1`);
writeFileSync('/tmp/sb-read-probe.ipvsadm', lines.join('\n') + '\n');
const t = performance.now();
sh('ipvsadm -R < /tmp/sb-read-probe.ipvsadm');
console.log(`load (ipvsadm -R) ${Math.round(performance.now() - t)} ms`);

async function measure<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
  const c0 = process.cpuUsage();
  const g0 = gcMs;
  const t0 = performance.now();
  const r = await fn();
  const c = process.cpuUsage(c0);
  console.log(
    `${name}: wall ${Math.round(performance.now() - t0)} ms, user ${Math.round(c.user / 1000)}, sys ${Math.round(c.system / 1000)}, gc ${Math.round(gcMs - g0)}`,
  );
  return r;
}

await measure('cat /proc/net/ip_vs (child)', () => sh('cat /proc/net/ip_vs > /dev/null'));
await measure('ipvsadm -Ln (child)', () => sh('ipvsadm -Ln > /dev/null'));
await measure('readFileSync /proc/self/net/ip_vs', () => readFileSync('/proc/self/net/ip_vs', 'latin1').length);
const opts = { ipsets: [], device: 'kube-ipvs0', sysctls: [], netfilterChains: {} };
for (const ipvsListing of [false, undefined] as const) {
  const k = await NetlinkKernel.open({ ...(ipvsListing === false ? { ipvsListing } : {}) });
  const name = ipvsListing === false ? 'NetlinkKernel.read, a dump per service' : 'NetlinkKernel.read, listing';
  const profile = process.env.PROBE_CPU_PROF === '1' && ipvsListing === false;
  const session = profile ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const r = await measure(name, () => k.read(opts));
  console.log(
    `  services ${r.virtualServers.length}, real servers ${r.virtualServers.reduce((n, v) => n + v.realServers.length, 0)}`,
  );
  if (session) {
    const { profile: p } = await session.post('Profiler.stop');
    writeFileSync('/tmp/sb-read.cpuprofile', JSON.stringify(p));
    console.log(sh('node --import tsx bench/applier/cpu-profile-summary.ts /tmp/sb-read.cpuprofile 25'));
  }
  await k.close();
}
