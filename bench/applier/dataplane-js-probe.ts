// The ipvs dataplane's own JS per one-endpoint change, on the host, against the test double of
// the kernel (test/support/fake-ipvs-kernel.ts: its cost is inside the figures, the real kernel's
// is not): S services × 10 real servers, and with --large L one more service of L real servers
// that every change goes to. Each change adds one real server (sorted in, as the renderer sorts)
// and is applied with the change handed over, as the applier session does. Prints p50/p90 of N
// changes after N warm-up ones, then writes a CPU profile of N more to --profile FILE if given.
// With --draining D, D other services each have one real server draining (removed while it held a
// connection) before the changes start, as during a rollout of many services. With --remove each
// change removes a real server instead (one holding a connection, so it drains: the ownership
// record's draining map changes, and the record is saved). With --state-dir DIR the ownership
// record goes to a file there, as the applier keeps it (FileOwnershipStore), not to memory. With
// --new-services each change adds a service of one real server on an address of its own instead
// (the record's service and address lists change; the probe's sets do not).
//   node --import tsx bench/applier/dataplane-js-probe.ts [--services 10000] [--large 5000] [--changes 500] [--draining 0] [--remove | --new-services] [--state-dir DIR] [--profile FILE]
import { BenchUsageError, benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FileOwnershipStore, IpvsDataplane, MemoryOwnershipStore } from '../../libs/dataplane/index.ts';
import type { NodeState, RealServer } from '../../libs/model/index.ts';
import { FakeIpvsKernel } from '../../test/support/fake-ipvs-kernel.ts';
import { startCpuProfile } from '../cpu-profile.ts';
import { ipvsBenchState } from './bench-state.ts';

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '10000' },
    large: { type: 'string', default: '0' },
    changes: { type: 'string', default: '500' },
    draining: { type: 'string', default: '0' },
    remove: { type: 'boolean', default: false },
    'new-services': { type: 'boolean', default: false },
    'state-dir': { type: 'string' },
    profile: { type: 'string' },
  },
});
const S = Number(values.services),
  L = Number(values.large),
  N = Number(values.changes),
  D = Number(values.draining);
if (!(S > 0 && L <= 32_000 && N > 0 && D >= 0 && D < S / 2))
  throw new BenchUsageError(
    '--services and --changes must be over 0, --large at most 32000, --draining under half the services',
  );
if (values.remove && values['new-services']) throw new BenchUsageError('--remove and --new-services: one or the other');
if (values.remove && (L > 0 ? L : 10) * (L > 0 ? 1 : S - D) < 3 * N)
  throw new BenchUsageError('--remove needs at least 3 × --changes real servers to remove');
const order = (a: RealServer, b: RealServer) =>
  a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port;
const order2 = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const small = ipvsBenchState(S, 10);
let current: NodeState =
  L > 0
    ? {
        ...small,
        virtualServers: small.virtualServers.map((v, j) =>
          j !== 0
            ? v
            : {
                ...v,
                realServers: Array.from({ length: L }, (_, e) => ({
                  address: `10.${128 + (e >> 8)}.${e & 255}.1`,
                  port: 8000,
                  weight: 1,
                })).sort(order),
              },
        ),
      }
    : small;
const kernel = new FakeIpvsKernel();
const store = values['state-dir']
  ? new FileOwnershipStore(join(values['state-dir'], 'ipvs-record.json'))
  : new MemoryOwnershipStore();
const dp = new IpvsDataplane({ kernel, store, netfilter: false });
if (!(await dp.apply(current)).verified) throw new Error('load not verified');
// --draining: the last D services each lose their first real server while it holds a connection
for (let j = S - D; j < S; j++) {
  const previous = current;
  const vss = previous.virtualServers.slice();
  const v = vss[j]!;
  const [gone, ...kept] = v.realServers;
  kernel.setConnections(`${v.protocol}/${v.address}:${v.port}`, `${gone!.address}:${gone!.port}`, 1, 0);
  vss[j] = { ...v, realServers: kept };
  current = { ...previous, virtualServers: vss };
  const r = await dp.apply(current, { previous, virtualServers: [vss[j]!], removedVirtualServers: [] });
  if (!r.verified || !r.notes.some((n) => n.includes('draining'))) throw new Error(`drain ${j}: ${JSON.stringify(r)}`);
}

let made = 0;
async function round(profile?: string) {
  const times: number[] = [];
  const stop = profile ? await startCpuProfile() : undefined;
  for (let c = 0; c < N; c++, made++) {
    const i = L > 0 ? 0 : (made * 7919 + 5) % (S - D);
    const previous = current;
    if (values['new-services']) {
      const added = {
        ...previous.virtualServers[0]!,
        address: `10.99.${(made >> 8) & 255}.${made & 255}`,
        servicePort: `default/new-${made}:http`,
        realServers: [{ address: '10.201.0.1', port: 8080, weight: 1 }],
      };
      current = {
        ...previous,
        virtualServers: [...previous.virtualServers, added],
        boundAddresses: [...previous.boundAddresses, added.address].sort(order2),
      };
      const t = performance.now();
      const r = await dp.apply(current, { previous, virtualServers: [added], removedVirtualServers: [] });
      times.push(performance.now() - t);
      if (!r.verified) throw new Error(`change ${made}: ${JSON.stringify(r)}`);
      continue;
    }
    const vss = previous.virtualServers.slice();
    const v = vss[i]!;
    if (values.remove) {
      // the service's first real server, holding a connection: it drains
      const [gone, ...kept] = v.realServers;
      kernel.setConnections(`${v.protocol}/${v.address}:${v.port}`, `${gone!.address}:${gone!.port}`, 1, 0);
      vss[i] = { ...v, realServers: kept };
    } else {
      const rs = { address: `10.200.${(made >> 8) & 255}.${made & 255}`, port: 9000 + (made >> 16), weight: 1 };
      vss[i] = { ...v, realServers: [...v.realServers, rs].sort(order) };
    }
    current = { ...previous, virtualServers: vss };
    const t = performance.now();
    const r = await dp.apply(current, { previous, virtualServers: [vss[i]!], removedVirtualServers: [] });
    times.push(performance.now() - t);
    if (!r.verified || r.kernelWrites !== 1) throw new Error(`change ${made}: ${JSON.stringify(r)}`);
  }
  if (stop && profile) writeFileSync(profile, JSON.stringify(await stop()));
  times.sort((a, b) => a - b);
  return { p50Ms: +times[Math.floor(N / 2)]!.toFixed(4), p90Ms: +times[Math.floor(N * 0.9)]!.toFixed(4) };
}
const warm = await round();
const measured = await round();
if (values.profile) await round(values.profile);
console.log(
  JSON.stringify({
    services: S,
    large: L,
    draining: D,
    changes: N,
    remove: values.remove,
    newServices: values['new-services'],
    store: values['state-dir'] ? 'file' : 'memory',
    warm,
    measured,
  }),
);
