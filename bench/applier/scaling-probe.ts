// Where does a real-server write get dearer as the table grows? Loads CHUNKS chunks of S services
// × E real servers each, one chunk after the other, and prints per chunk: wall time, this
// process's user and system CPU (system = the kernel handling our netlink writes, which runs
// inside sendmsg), the garbage collector's time, and the CPU of IPVS's estimator kthreads
// (ipvs-e:*, kernels >= 6.2) — once through `ipvsadm -R` (CPU of the child from bash `times`),
// once through NetlinkKernel, each with net.ipv4.vs.run_estimation 1 and 0. Run INSIDE a fresh
// netns of the VM:
//   test/vm/harness/run-in-vm.sh -- bash -c 'ip netns add p && ip netns exec p node --import tsx bench/applier/scaling-probe.ts 1000 10 10'
// PROBE_PASSES=ipvsadm:1,netlink:1,ipvsadm:0,netlink:0 chooses the passes (tool:run_estimation).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { KernelTransaction, NetlinkKernel, type KernelOp } from '../../libs/dataplane/index.ts';

const S = Number(process.argv[2] ?? 1000);
const E = Number(process.argv[3] ?? 10);
const CHUNKS = Number(process.argv[4] ?? 10);
const passes = (process.env.PROBE_PASSES ?? 'ipvsadm:1,netlink:1,ipvsadm:0,netlink:0').split(',');
const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();
// lo up creates the local routing table: without it every address reads as broadcast to IPVS
// (inet_addr_type) and real servers are refused with EINVAL.
sh(
  'ip link set lo up; ip link add sbprobe0 type dummy 2>/dev/null || true; ip link set sbprobe0 up; ip route replace 10.128.0.0/9 dev sbprobe0',
);

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

const TICK = 100; // USER_HZ
/** CPU ms of IPVS's estimator kthreads (all netns), from /proc/PID/stat utime+stime. */
function estimatorMs(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (!readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('ipvs-e')) continue;
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return (ticks * 1000) / TICK;
}

/** Guest-wide CPU ms by kind from /proc/stat (softirq holds the 6.1 estimator timer's walks). */
function guestCpu(): Record<string, number> {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const ms = (t: number) => (t * 1000) / TICK;
  return { user: ms(f[0]! + f[1]!), sys: ms(f[2]!), idle: ms(f[3]! + f[4]!), irq: ms(f[5]!), softirq: ms(f[6]!) };
}
const delta = (a: Record<string, number>, b: Record<string, number>) =>
  Object.fromEntries(Object.keys(a).map((k) => [k, Math.round(b[k]! - a[k]!)]));

const vip = (c: number, s: number) => {
  const n = c * S + s;
  return `10.96.${n >> 8}.${n & 255}`;
};
const rip = (c: number, s: number, e: number) => {
  const n = c * S + s;
  return `10.${128 + (e >> 4)}.${n >> 8}.${n & 255}`;
};

function ipvsadmChunk(c: number): string {
  const lines: string[] = [];
  for (let s = 0; s < S; s++) lines.push(`-A -t ${vip(c, s)}:80 -s rr`);
  for (let s = 0; s < S; s++)
    for (let e = 0; e < E; e++) lines.push(`-a -t ${vip(c, s)}:80 -r ${rip(c, s, e)}:${8000 + (e & 15)} -m -w 1`);
  return lines.join('\n') + '\n';
}

function netlinkChunk(c: number): KernelOp[] {
  const ops: KernelOp[] = [];
  const vs = (s: number) => ({ protocol: 'TCP' as const, address: vip(c, s), port: 80 });
  for (let s = 0; s < S; s++)
    ops.push({
      verb: 'add',
      kind: 'virtual-server',
      vs: { ...vs(s), scheduler: 'rr', schedulerFlags: [], persistenceTimeout: 0 },
    });
  for (let s = 0; s < S; s++)
    for (let e = 0; e < E; e++)
      ops.push({
        verb: 'add',
        kind: 'real-server',
        vs: vs(s),
        rs: { address: rip(c, s, e), port: 8000 + (e & 15), weight: 1 },
      });
  return ops;
}

console.log(`kernel ${sh('uname -r').trim()}; vs sysctls: ${sh('ls /proc/sys/net/ipv4/vs | tr "\\n" " "')}`);
for (const k of ['run_estimation', 'est_cpulist', 'est_nice']) {
  try {
    console.log(`  ${k} = ${readFileSync(`/proc/sys/net/ipv4/vs/${k}`, 'utf8').trim()}`);
  } catch {
    console.log(`  ${k}: absent`);
  }
}

const netlink = await NetlinkKernel.open();
const summary: Record<string, unknown>[] = [];
for (const pass of passes) {
  const [tool, est] = pass.split(':') as [string, string];
  writeFileSync('/proc/sys/net/ipv4/vs/run_estimation', `${est}\n`);
  const rows: string[] = [];
  for (let c = 0; c < CHUNKS; c++) {
    const e0 = estimatorMs();
    const k0 = guestCpu();
    const g0 = gcMs;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let childUser = 0;
    let childSys = 0;
    if (tool === 'ipvsadm') {
      writeFileSync('/tmp/sb-probe.ipvsadm', ipvsadmChunk(c));
      // bash `times`, second line: children's user and system time.
      const out = sh('ipvsadm -R < /tmp/sb-probe.ipvsadm || exit 1; times').trim().split('\n');
      const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s/.exec(out[out.length - 1]!)!;
      childUser = (Number(m[1]) * 60 + Number(m[2])) * 1000;
      childSys = (Number(m[3]) * 60 + Number(m[4])) * 1000;
    } else {
      await netlink.run(new KernelTransaction().addAll(netlinkChunk(c)));
    }
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const row = {
      chunk: c + 1,
      wallMs: Math.round(wall),
      userMs: Math.round(tool === 'ipvsadm' ? childUser : cpu.user / 1000),
      sysMs: Math.round(tool === 'ipvsadm' ? childSys : cpu.system / 1000),
      gcMs: Math.round(gcMs - g0),
      estMs: Math.round(estimatorMs() - e0),
      heapMb: Math.round(process.memoryUsage().heapUsed / 2 ** 20),
      guest: delta(k0, guestCpu()),
    };
    rows.push(JSON.stringify(row));
    console.log(`${tool} est=${est} ${JSON.stringify(row)}`);
  }
  summary.push({ pass, rows: rows.map((r) => JSON.parse(r)) });
  sh('ipvsadm -C');
  // Let the flushed services' estimators go before the next pass.
  await new Promise((r) => setTimeout(r, 3000));
}
await netlink.close();
console.log(JSON.stringify({ S, E, CHUNKS, summary }));
