// An apply whose state shares the unchanged VirtualServer objects with the last one renders
// and diffs only the service groups that changed (NftablesDataplane + sliceChange), and must
// leave the table exactly as a from-scratch load of the same state would. Fake runner, no netns.
import { describe, expect, it } from 'vitest';
import type { NodeState, VirtualServer } from '../../../../libs/model/index.ts';
import { byCodeUnit, virtualServerKey } from '../../../../libs/model/index.ts';
import {
  inventoryOf,
  NftablesDataplane,
  planNftUpdate,
  renderNftObjects,
  type NftReadBack,
} from '../../../../libs/dataplane/nftables/index.ts';
import { sliceChange } from '../../../../libs/dataplane/nftables/nft-state-slice.ts';
import { staleFlows } from '../../../../libs/dataplane/conntrack-cleanup.ts';
import { FakeNftRunner } from '../../../support/fake-nft-runner.ts';
import { nodeState, virtualServer, type VsSpec } from '../../../netns/support/node-state-builder.ts';

const spec = (i: number, endpoints: string[], extra: Partial<VsSpec> = {}): VsSpec => ({
  servicePort: `ns/svc${i}:p`,
  address: `10.96.0.${i + 1}`,
  port: 80,
  endpoints,
  ...extra,
});
const withServices = (base: NodeState, vs: VirtualServer[]): NodeState => ({
  ...base,
  virtualServers: [...vs].sort((a, b) => byCodeUnit(virtualServerKey(a), virtualServerKey(b))),
});
const inventoryText = (rb: NftReadBack | undefined) => {
  const sorted = (m: ReadonlyMap<string, unknown>) => [...m].sort(([a], [b]) => byCodeUnit(a, b));
  return JSON.stringify({
    chains: sorted(rb!.inventory.chains),
    sets: [...rb!.inventory.sets].sort(),
    elements: sorted(rb!.inventory.elements).map(([k, v]) => [k, sorted(v as Map<string, string>)]),
  });
};

describe('sliced applies', () => {
  it('an endpoint change of one service renders that service only, and plans what a full diff plans', async () => {
    const fake = new FakeNftRunner();
    const dp = new NftablesDataplane({ runner: fake, table: 'sb' });
    const first = nodeState(Array.from({ length: 30 }, (_, i) => spec(i, [`10.1.${i}.1:8080`, `10.1.${i}.2:8080`])));
    await dp.apply(first);
    expect(dp.lastRendered).toBe(30);
    const changed = virtualServer(spec(7, ['10.1.7.1:8080', '10.1.7.9:8080']));
    const next = withServices(first, [...first.virtualServers.filter((v) => v.address !== '10.96.0.8'), changed]);
    const r = await dp.apply(next);
    expect(r.verified).toBe(true);
    expect(dp.lastRendered).toBe(1);
    const full = planNftUpdate(inventoryOf(renderNftObjects(first)), renderNftObjects(next), 'sb');
    expect(dp.lastTransaction).toBe(full.toScript());
    expect(r.kernelWrites).toBe(full.writes);
  });

  it('random sequences of shared-object states end where a from-scratch load ends', async () => {
    let seed = 12345;
    const rand = (n: number) => {
      // 32-bit arithmetic: `seed * 1103515245` in doubles loses the low bits, and the sequence
      // collapsed to multiples of 4 (every service got 0 endpoints).
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      return seed % n;
    };
    const fake = new FakeNftRunner();
    const sliced = new NftablesDataplane({ runner: fake, table: 'sliced' });
    let vs = new Map<number, VirtualServer>();
    const make = (i: number) => {
      const n = rand(4);
      // Addresses from a small pool shared by all services (ports differ): groups share hairpin
      // entries, which a sliced apply must keep while any group, touched or not, needs them.
      const eps = Array.from({ length: n }, (_, j) => `10.2.0.${rand(6)}:${80 + j}`);
      return virtualServer(
        spec(i, [...new Set(eps)], {
          persistenceTimeout: rand(3) === 0 ? 60 : 0,
          role: rand(4) === 0 ? 'load-balancer' : 'cluster-ip',
          sourceRanges: rand(3) === 0 ? ['10.0.0.0/8'] : [],
          localOnly: rand(5) === 0,
        }),
      );
    };
    for (let i = 0; i < 12; i++) vs.set(i, make(i));
    let state = withServices(nodeState([], { clusterCIDR: '10.0.0.0/8' }), [...vs.values()]);
    await sliced.apply(state);
    let slicedSteps = 0;
    for (let step = 0; step < 25; step++) {
      const next = new Map(vs);
      for (let k = rand(3) + 1; k > 0; k--) {
        const i = rand(16);
        if (rand(4) === 0) next.delete(i);
        else next.set(i, make(i));
      }
      vs = next;
      state = withServices(state, [...vs.values()]);
      const r = await sliced.apply(state);
      expect(r.verified, `step ${step}`).toBe(true);
      if (sliced.lastRendered < state.virtualServers.length) slicedSteps++;
      const fresh = new NftablesDataplane({ runner: fake, table: `fresh${step}` });
      await fresh.apply(state);
      expect(inventoryText(await fake.listTable('inet', 'sliced')), `step ${step}`).toBe(
        inventoryText(await fake.listTable('inet', `fresh${step}`)),
      );
      expect((await sliced.apply(state)).kernelWrites, `step ${step}: same state again`).toBe(0);
      expect((await sliced.resync()).kernelWrites, `step ${step}: resync`).toBe(0);
      await fresh.cleanup();
    }
    expect(slicedSteps).toBeGreaterThan(15);
  });

  it("the flows a sliced change makes stale are the whole states' (its other services are the same objects in both)", () => {
    let seed = 777;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      return (seed >>> 12) % n; // the high bits: this generator's low ones cycle shortly
    };
    // Several virtual servers per service port (ClusterIP, external IP; UDP and TCP), endpoints
    // from a small shared pool: a group has several members, and removals leave UDP flows stale.
    const make = (i: number, port: number) =>
      virtualServer(
        spec(i % 6, [...new Set(Array.from({ length: rand(4) }, () => `10.2.0.${rand(5)}:53`))], {
          address: `10.96.${port}.${i + 1}`,
          port: 53,
          protocol: rand(2) === 0 ? 'UDP' : 'TCP',
          role: port === 0 ? 'cluster-ip' : 'external-ip',
        }),
      );
    const text = (flows: ReturnType<typeof staleFlows>) => flows.map((f) => JSON.stringify(f)).sort();
    let vs = new Map<string, VirtualServer>();
    for (let i = 0; i < 24; i++) vs.set(`${i}/${i % 2}`, make(i, i % 2));
    let state = withServices(nodeState([]), [...vs.values()]);
    let stale = 0;
    for (let step = 0; step < 200; step++) {
      const next = new Map(vs);
      for (let k = rand(3) + 1; k > 0; k--) {
        const i = rand(30);
        const key = `${i}/${i % 2}`;
        if (rand(4) === 0) next.delete(key);
        else next.set(key, make(i, i % 2));
      }
      const nextState = withServices(state, [...next.values()]);
      const slice = sliceChange(state, nextState)!;
      expect(slice, `step ${step}`).toBeDefined();
      const whole = text(staleFlows(state, nextState));
      expect(text(staleFlows(slice.prev, slice.next)), `step ${step}`).toEqual(whole);
      stale += whole.length;
      vs = next;
      state = nextState;
    }
    expect(stale).toBeGreaterThan(50); // the property was tried on changes that leave flows stale
  });
});
