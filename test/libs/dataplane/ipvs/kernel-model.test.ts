import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { Registry } from 'prom-client';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { INDEX_MIN_REAL_SERVERS, KernelModel } from '../../../../libs/dataplane/ipvs/kernel-model.ts';
import type { KernelOp } from '../../../../libs/dataplane/ipvs/kernel-op.ts';
import { RealServerSet } from '../../../../libs/dataplane/ipvs/narrowed-service.ts';
import { MemoryOwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { indexState } from '../../../../libs/dataplane/ipvs/state-change.ts';
import { EMPTY_OBSERVED, type ObservedKernel } from '../../../../libs/dataplane/ipvs/observed-kernel.ts';
import type { NodeState, RealServer } from '../../../../libs/model/index.ts';
import { formatIpvsadm } from '../../../../libs/planner/index.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { nodeState, vs } from './node-state-fixture.ts';
import { dataplaneOverTheTestKernel } from './test-dataplane.ts';

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

const observedOf = (s: NodeState, o: Partial<ObservedKernel> = {}): ObservedKernel => ({
  ...EMPTY_OBSERVED,
  virtualServers: s.virtualServers.map((v) => ({
    protocol: v.protocol,
    address: v.address,
    port: v.port,
    scheduler: v.scheduler,
    schedulerFlags: v.schedulerFlags,
    persistenceTimeout: v.persistenceTimeout,
    // the kernel lists destinations last-added first
    realServers: [...v.realServers].reverse().map((r) => ({ ...r, activeConns: 3, inactiveConns: 4 })),
  })),
  dummyDevice: true,
  boundAddresses: s.boundAddresses,
  ipsets: s.ipsets,
  ...o,
});

describe('KernelModel', () => {
  const s = nodeState([
    vs('10.96.0.1', 80, [
      ['10.244.1.1', 8080],
      ['10.244.1.2', 8080],
    ]),
    vs('10.96.0.2', 53, [['10.244.1.3', 53]], { protocol: 'UDP' }),
  ]);

  it('built from a dump and the state it verified: what the dump holds, counters unknown (not modelled)', () => {
    const m = KernelModel.fromObserved(observedOf(s), indexState(s));
    expect(m.virtualServer('TCP/10.96.0.1:80')).toEqual({
      protocol: 'TCP',
      address: '10.96.0.1',
      port: 80,
      scheduler: 'rr',
      schedulerFlags: [],
      persistenceTimeout: 0,
      realServers: [
        { address: '10.244.1.1', port: 8080, weight: 1, activeConns: 0, inactiveConns: 0, countersUnknown: true },
        { address: '10.244.1.2', port: 8080, weight: 1, activeConns: 0, inactiveConns: 0, countersUnknown: true },
      ],
    });
    expect(m.hasAddress('10.96.0.2')).toBe(true);
    expect(m.ipset('KUBE-IPVS-IPS')?.entries).toEqual(['10.96.0.1', '10.96.0.2']);
  });

  it('where the dump differs from the state, the model holds the dump', () => {
    const dump = observedOf(s, { boundAddresses: ['10.96.0.1'] });
    const edited = {
      ...dump,
      virtualServers: [
        {
          ...dump.virtualServers[0]!,
          realServers: dump.virtualServers[0]!.realServers.map((r) => ({ ...r, weight: 2 })),
        },
        { ...dump.virtualServers[1]!, scheduler: 'wrr' },
      ],
      ipsets: [{ ...s.ipsets[1]!, entries: ['10.96.0.9'] }],
    };
    const m = KernelModel.fromObserved(edited, indexState(s));
    expect(m.virtualServer('TCP/10.96.0.1:80')!.realServers.map((r) => r.weight)).toEqual([2, 2]);
    expect(m.virtualServer('UDP/10.96.0.2:53')!.scheduler).toBe('wrr');
    expect(m.hasAddress('10.96.0.2')).toBe(false);
    expect(m.ipset('KUBE-IPVS-IPS')?.entries).toEqual(['10.96.0.9']);
    // a real server the state lacks, same count: not the state's content either
    const other = observedOf(s);
    const swapped = {
      ...other,
      virtualServers: [
        {
          ...other.virtualServers[0]!,
          realServers: [
            { ...other.virtualServers[0]!.realServers[0]!, port: 9 },
            other.virtualServers[0]!.realServers[1]!,
          ],
        },
        other.virtualServers[1]!,
      ],
    };
    expect(
      KernelModel.fromObserved(swapped, indexState(s))
        .virtualServer('TCP/10.96.0.1:80')!
        .realServers.map((r) => r.port)
        .sort(),
    ).toEqual([8080, 9]);
  });

  it('holds(read): the same spec and real servers with the same weights, in any order, counters ignored', () => {
    const three = nodeState([
      vs('10.96.0.1', 80, [
        ['10.244.1.1', 8080],
        ['10.244.1.2', 8080],
        ['10.244.1.3', 8080],
      ]),
    ]);
    const m = KernelModel.fromObserved(observedOf(three), indexState(three));
    const read = observedOf(three).virtualServers[0]!; // the kernel's order (reversed), counters set
    const rs = read.realServers;
    expect(m.holds(read)).toBe(true);
    expect(m.holds({ ...read, realServers: [...rs].reverse() })).toBe(true);
    expect(m.holds({ ...read, realServers: [rs[1]!, rs[0]!, rs[2]!] })).toBe(true); // neither order
    expect(m.holds({ ...read, realServers: rs.map((r, i) => (i === 1 ? { ...r, weight: 7 } : r)) })).toBe(false);
    expect(m.holds({ ...read, realServers: rs.slice(1) })).toBe(false);
    expect(m.holds({ ...read, realServers: [...rs, { ...rs[0]!, port: 9 }] })).toBe(false);
    expect(m.holds({ ...read, realServers: [rs[0]!, rs[1]!, { ...rs[2]!, port: 9 }] })).toBe(false);
    expect(m.holds({ ...read, scheduler: 'wrr' })).toBe(false);
    expect(m.holds({ ...read, persistenceTimeout: 30 })).toBe(false);
    expect(m.holds({ ...read, schedulerFlags: ['rr-port'] })).toBe(false);
    expect(m.holds({ ...read, port: 81 })).toBe(false); // a service the model lacks
  });

  it('advancing it never changes the objects it shares with the state', () => {
    const frozen = deepFreeze(s);
    const m = KernelModel.fromObserved(observedOf(frozen), indexState(frozen));
    const key = { protocol: 'TCP' as const, address: '10.96.0.1', port: 80 };
    expect(
      m.apply([
        { verb: 'add', kind: 'real-server', vs: key, rs: { address: '10.244.1.9', port: 8080, weight: 1 } },
        { verb: 'edit', kind: 'real-server', vs: key, rs: { address: '10.244.1.1', port: 8080, weight: 0 } },
        { verb: 'delete', kind: 'real-server', vs: key, rs: { address: '10.244.1.2', port: 8080 } },
        {
          verb: 'edit',
          kind: 'virtual-server',
          vs: { ...key, scheduler: 'wrr', schedulerFlags: [], persistenceTimeout: 0 },
        },
      ]),
    ).toBeUndefined();
    expect(m.virtualServer('TCP/10.96.0.1:80')).toMatchObject({
      scheduler: 'wrr',
      realServers: [
        { address: '10.244.1.1', port: 8080, weight: 0 },
        { address: '10.244.1.9', port: 8080, weight: 1 },
      ],
    });
    expect(frozen.virtualServers[0]!.realServers).toHaveLength(2);
  });
});

describe('IpvsDataplane over frozen states', () => {
  it('incremental cycles leave the applied states untouched (the model shares their objects)', async () => {
    const { kernel, dp } = dataplaneOverTheTestKernel();
    const svc = (i: number, reals: [string, number][]) => vs(`10.96.0.${i}`, 80, reals, { protocol: 'UDP' });
    const states = [
      nodeState([svc(1, [['10.244.1.1', 80]]), svc(2, [['10.244.1.2', 80]])]),
      nodeState([
        svc(1, [
          ['10.244.1.1', 80],
          ['10.244.1.5', 80],
        ]),
        svc(2, [['10.244.1.2', 80]]),
      ]),
      nodeState([svc(1, [['10.244.1.5', 80]]), svc(2, [['10.244.1.2', 80]])]),
      nodeState([svc(1, [['10.244.1.5', 80]])]),
    ].map(deepFreeze);
    // each next state shares its unchanged services with the one applied before, as the renderer does
    const shared: NodeState[] = [];
    for (const st of states) {
      const prev = shared.at(-1);
      const same = (v: NodeState['virtualServers'][number]) =>
        prev?.virtualServers.find((p) => JSON.stringify(p) === JSON.stringify(v)) ?? v;
      shared.push(deepFreeze({ ...st, virtualServers: st.virtualServers.map(same) }));
    }
    for (const st of shared) {
      expect(await dp.apply(st)).toMatchObject({ verified: true });
      expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(st));
    }
    expect(await dp.resync()).toMatchObject({ kernelWrites: 0, verified: true });
    await dp.close();
  });
});

describe('KernelModel: a service of thousands of real servers (indexed once a change looks at part of it)', () => {
  const KEY = 'TCP/10.96.9.9:80';
  const N = INDEX_MIN_REAL_SERVERS + 6;
  const addressOf = (i: number) => `10.${200 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
  const large = (n: number, realServers?: readonly RealServer[]) => {
    const v = vs(
      '10.96.9.9',
      80,
      Array.from({ length: n }, (_, i): [string, number] => [addressOf(i), 8080]),
    );
    return realServers ? { ...v, realServers } : v;
  };
  const setOf = (pairs: readonly [string, number][]) => {
    const s = new RealServerSet();
    for (const [a, p] of pairs) s.add(a, p);
    return s;
  };
  const sorted = (rs: readonly { address: string; port: number; weight: number }[]) =>
    rs.map((r) => `${r.address}:${r.port}/${r.weight}`).sort();

  it('answers as a scan of its whole list would, refusals included (property)', () => {
    // a step: some real servers, each added, reweighted or removed, right or wrong for the model
    const step = fc.array(
      fc.record({
        i: fc.integer({ min: 0, max: N + 20 }),
        port: fc.constantFrom(8080, 9090),
        verb: fc.constantFrom('add', 'edit', 'delete'),
        weight: fc.integer({ min: 0, max: 3 }),
      }),
      { minLength: 1, maxLength: 5 },
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 12 }), (steps) => {
        const state = nodeState([large(N)]);
        const m = KernelModel.fromObserved(observedOf(state), indexState(state));
        // the reference: address:port → weight, the service's list as a scan sees it
        const ref = new Map(state.virtualServers[0]!.realServers.map((r) => [`${r.address}:${r.port}`, r.weight]));
        const spec = { protocol: 'TCP' as const, address: '10.96.9.9', port: 80 };
        for (const ops of steps) {
          const only = setOf(ops.map((o) => [addressOf(o.i), o.port]));
          const asked = m.virtualServer(KEY, only)!;
          const expected = [...ref].filter(([k]) =>
            only.has({ address: k.split(':')[0]!, port: Number(k.split(':')[1]) }),
          );
          expect(sorted(asked.realServers)).toEqual(
            sorted(expected.map(([k, w]) => ({ address: k.split(':')[0]!, port: Number(k.split(':')[1]), weight: w }))),
          );
          for (const o of ops) {
            const k = `${addressOf(o.i)}:${o.port}`;
            const rs = { address: addressOf(o.i), port: o.port };
            const op: KernelOp =
              o.verb === 'delete'
                ? { verb: 'delete', kind: 'real-server', vs: spec, rs }
                : { verb: o.verb, kind: 'real-server', vs: spec, rs: { ...rs, weight: o.weight } };
            const refused = o.verb === 'add' ? ref.has(k) : !ref.has(k);
            const why = m.apply([op]);
            expect(why !== undefined).toBe(refused);
            if (refused) continue;
            if (o.verb === 'delete') ref.delete(k);
            else ref.set(k, o.weight);
          }
        }
        const whole = m.virtualServer(KEY)!;
        const want = [...ref].map(([k, w]) => ({
          address: k.split(':')[0]!,
          port: Number(k.split(':')[1]),
          weight: w,
        }));
        expect(sorted(whole.realServers)).toEqual(sorted(want));
        const read = { ...whole, realServers: [...whole.realServers].reverse() };
        expect(m.holds(read)).toBe(true);
        const [first, ...rest] = read.realServers;
        if (first)
          expect(m.holds({ ...read, realServers: [{ ...first, weight: first.weight + 1 }, ...rest] })).toBe(false);
      }),
      { numRuns: 40 },
    );
  });

  it("a change's look and write never walk the service's list once it is indexed (O(change), not O(service))", () => {
    const state = nodeState([large(N)]);
    const m = KernelModel.fromObserved(observedOf(state), indexState(state));
    const spec = { protocol: 'TCP' as const, address: '10.96.9.9', port: 80 };
    // the first look indexes it (one copy of the list)
    expect(m.virtualServer(KEY, setOf([[addressOf(3), 8080]]))!.realServers).toHaveLength(1);
    // A scan asks each real server of the list whether the look wants it, and a write finds its
    // real server in the list: neither may happen per change now. No expect() inside the window.
    const asked = vi.spyOn(RealServerSet.prototype, 'has');
    const found = vi.spyOn(Array.prototype, 'findIndex');
    const seen: number[] = [];
    const refusals: (string | undefined)[] = [];
    let membershipChecks = -1;
    let listSearches = -1;
    try {
      for (let c = 0; c < 50; c++) {
        const rs = { address: addressOf(N + c), port: 8080 };
        seen.push(m.virtualServer(KEY, setOf([[rs.address, 8080]]))!.realServers.length);
        refusals.push(m.apply([{ verb: 'add', kind: 'real-server', vs: spec, rs: { ...rs, weight: 1 } }]));
        seen.push(m.virtualServer(KEY, setOf([[rs.address, 8080]]))!.realServers.length);
        refusals.push(
          m.apply([{ verb: 'delete', kind: 'real-server', vs: spec, rs: { address: addressOf(c), port: 8080 } }]),
        );
      }
    } finally {
      membershipChecks = asked.mock.calls.length;
      listSearches = found.mock.calls.length;
      asked.mockRestore();
      found.mockRestore();
    }
    expect(membershipChecks).toBe(0);
    expect(listSearches).toBe(0);
    expect(seen).toEqual(Array.from({ length: 100 }, (_, i) => i % 2));
    expect(refusals.every((r) => r === undefined)).toBe(true);
    // and the whole, made again from the index when asked: the 50 added, the 50 removed gone
    const whole = m.virtualServer(KEY)!.realServers;
    expect(whole).toHaveLength(N);
    expect(whole.some((r) => r.address === addressOf(0))).toBe(false);
    expect(whole.some((r) => r.address === addressOf(N + 49))).toBe(true);
  });

  it('through the dataplane: incremental changes to an indexed service leave the kernel as desired (a resync writes nothing)', async () => {
    const { kernel, dp } = dataplaneOverTheTestKernel();
    // UDP: a removed real server goes at once (no drain left for the resync to end)
    let current = nodeState([{ ...large(N), protocol: 'UDP' }]);
    expect(await dp.apply(current)).toMatchObject({ verified: true });
    const byKey = (a: RealServer, b: RealServer) =>
      a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port;
    for (let c = 0; c < 12; c++) {
      const previous = current;
      const v = previous.virtualServers[0]!;
      // one added, one reweighted (twice for some), one removed: in the renderer's order
      const realServers = v.realServers
        .filter((r) => r.address !== addressOf(c))
        .map((r) => (r.address === addressOf(100 + (c % 3)) ? { ...r, weight: c + 2 } : r))
        .concat([{ address: addressOf(N + c), port: 8080, weight: 1 }])
        .sort(byKey);
      const next = { ...v, realServers };
      current = { ...previous, virtualServers: [next] };
      const r = await dp.apply(current, { previous, virtualServers: [next], removedVirtualServers: [] });
      // add, reweight, delete and the deleted one's conntrack flush (UDP)
      expect(r).toMatchObject({ verified: true, kernelWrites: 4 });
      expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(current));
    }
    expect(await dp.resync()).toMatchObject({ kernelWrites: 0, verified: true });
    await dp.close();
  });

  it('a service removed and added again starts without the index of the one before', () => {
    const state = nodeState([large(N)]);
    const m = KernelModel.fromObserved(observedOf(state), indexState(state));
    const spec = { protocol: 'TCP' as const, address: '10.96.9.9', port: 80 };
    m.virtualServer(KEY, setOf([[addressOf(0), 8080]]));
    const added = { ...state.virtualServers[0]!, realServers: [] };
    expect(
      m.apply([
        { verb: 'delete', kind: 'virtual-server', vs: spec },
        { verb: 'add', kind: 'virtual-server', vs: added },
      ]),
    ).toBeUndefined();
    expect(m.virtualServer(KEY)!.realServers).toEqual([]);
    expect(m.virtualServer(KEY, setOf([[addressOf(0), 8080]]))!.realServers).toEqual([]);
    expect(
      m.apply([{ verb: 'add', kind: 'real-server', vs: spec, rs: { address: addressOf(0), port: 8080, weight: 1 } }]),
    ).toBeUndefined();
    expect(m.virtualServer(KEY)!.realServers).toHaveLength(1);
  });
});
