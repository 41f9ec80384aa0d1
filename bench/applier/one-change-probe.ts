// Where the time of one endpoint change goes in the VM: loads S services × 10 real servers with
// ipvsadm -R, then takes the median of 21 of each (each on another service, its undo outside the
// timing): (a) one `ipvsadm -a` process; (b) IpvsClient.addDestination + listDestinations sent in
// the same tick (one datagram out); (c) the same on a fresh event loop turn after a 5 ms pause;
// (d) NetlinkKernel.run of one op (what the dataplane sends for one endpoint added); (e) an empty setImmediate round and an
// empty 0 ms timer (the event loop's own cost). Run INSIDE a fresh netns of the VM:
//   test/vm/harness/run-in-vm.sh -- bash -c 'ip netns add p && ip netns exec p node --import tsx bench/applier/one-change-probe.ts 1000'
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { KernelTransaction, NetlinkKernel } from '../../libs/dataplane/index.ts';
import { openIpvs } from '../../libs/netlink/index.ts';

const S = Number(process.argv[2] ?? 1000);
const sh = (c: string) =>
  execFileSync('bash', ['-c', c], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 30 }).toString();
sh('ip link set lo up; ip link add d0 type dummy; ip link set d0 up; ip route replace 10.128.0.0/9 dev d0');
const vip = (s: number) => `10.96.${s >> 8}.${s & 255}`;
const lines: string[] = [];
for (let s = 0; s < S; s++) lines.push(`-A -t ${vip(s)}:80 -s rr`);
for (let s = 0; s < S; s++)
  for (let e = 0; e < 10; e++) lines.push(`-a -t ${vip(s)}:80 -r 10.${128 + e}.${s >> 8}.${s & 255}:8000 -m -w 1`);
writeFileSync('/tmp/sb-one.ipvsadm', lines.join('\n') + '\n');
sh('ipvsadm -R < /tmp/sb-one.ipvsadm');

const N = 21;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function med(name: string, fn: (i: number) => Promise<unknown> | unknown, undo?: (i: number) => unknown) {
  const ts: number[] = [];
  for (let i = 0; i <= N; i++) {
    const t = performance.now();
    await fn(i);
    ts.push(performance.now() - t);
    await undo?.(i);
  }
  console.log(`${name}: median ${median(ts.slice(1)).toFixed(2)} ms (first ${ts[0]!.toFixed(1)})`);
}
const svc = (i: number) => ({ protocol: 'TCP' as const, address: vip((i * 37) % S), port: 80 });
const dest = (i: number) => ({
  address: `10.200.0.${i + 1}`,
  port: 9000,
  weight: 1,
  forward: 'masq' as const,
  upperThreshold: 0,
  lowerThreshold: 0,
});

await med('(e) setImmediate round', () => new Promise((r) => setImmediate(r)));
await med('(e) setTimeout 0', () => new Promise((r) => setTimeout(r, 0)));
await med(
  '(a) ipvsadm -a process',
  (i) => execFileSync('ipvsadm', ['-a', '-t', `${svc(i).address}:80`, '-r', `10.200.0.${i + 1}:9000`, '-m', '-w', '1']),
  (i) => execFileSync('ipvsadm', ['-d', '-t', `${svc(i).address}:80`, '-r', `10.200.0.${i + 1}:9000`]),
);
const c = await openIpvs({ window: 256, batch: 128 });
await med(
  '(b) client add + list, one datagram',
  (i) => Promise.all([c.addDestination(svc(i), dest(i)), c.listDestinations(svc(i), { stats: false })]),
  (i) => c.deleteDestination(svc(i), dest(i)),
);
await med(
  '(c) same after a 5 ms pause',
  async (i) => {
    await Promise.all([c.addDestination(svc(i), dest(i)), c.listDestinations(svc(i), { stats: false })]);
  },
  async (i) => {
    await c.deleteDestination(svc(i), dest(i));
    await new Promise((r) => setTimeout(r, 5));
  },
);
await med(
  '(b2) client add alone',
  (i) => c.addDestination(svc(i), dest(i)),
  (i) => c.deleteDestination(svc(i), dest(i)),
);
await med('(b3) client list alone', (i) => c.listDestinations(svc(i), { stats: false }));
c.close();
const k = await NetlinkKernel.open();
await med(
  '(d) NetlinkKernel.run of one op',
  (i) =>
    k.run(
      new KernelTransaction().add({
        kind: 'real-server',
        verb: 'add',
        vs: svc(i),
        rs: { address: `10.200.0.${i + 1}`, port: 9000, weight: 1 },
      }),
    ),
  (i) =>
    k.run(
      new KernelTransaction().add({
        kind: 'real-server',
        verb: 'delete',
        vs: svc(i),
        rs: { address: `10.200.0.${i + 1}`, port: 9000 },
      }),
    ),
);
await k.close();
