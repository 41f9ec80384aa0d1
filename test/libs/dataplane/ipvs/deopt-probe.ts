// Run by no-deopt-loop.test.ts in a child node with --trace-deopt --trace-osr: a from-empty load
// of SERVICES x 5 against the fake kernel, WARM endpoint changes, then a marker line and MEASURED
// more changes, each on another service, as the incremental renderer produces them (every
// unchanged object shared with the previous state).
import { Registry } from 'prom-client';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { MemoryOwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import type { NodeState } from '../../../../libs/model/index.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { nodeState, vs } from './node-state-fixture.ts';

const [services, warm, measured] = process.argv.slice(2).map(Number) as [number, number, number];
const svc = (i: number) =>
  vs(
    `10.96.${i >> 8}.${i & 255}`,
    80,
    Array.from({ length: 5 }, (_, e): [string, number] => [`10.244.${i >> 8}.${i & 255}`, 8000 + e]),
  );
let state: NodeState = nodeState(Array.from({ length: services }, (_, i) => svc(i)));
const dp = new IpvsDataplane({
  kernel: new FakeIpvsKernel(),
  store: new MemoryOwnershipStore(),
  kernelRelease: '6.1.0',
  registry: new Registry(),
  netfilter: false,
});
await dp.apply(state);
for (let c = 0; c < warm + measured; c++) {
  if (c === warm) console.log('probe: measured changes begin');
  const i = (c * 7919) % services;
  state = {
    ...state,
    virtualServers: state.virtualServers.map((v, j) =>
      j === i ? { ...v, realServers: [...v.realServers, { address: '10.245.0.1', port: 9000 + c, weight: 1 }] } : v,
    ),
  };
  const r = await dp.apply(state);
  if (!r.verified || r.kernelWrites !== 1) throw new Error(`change ${c}: ${JSON.stringify(r)}`);
}
console.log('probe: done');
await dp.close();
