import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { describeOp } from '../../../../libs/dataplane/ipvs/kernel-op.ts';
import { MemoryOwnershipStore, type OwnershipRecord } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { diffStates, indexState } from '../../../../libs/dataplane/ipvs/state-change.ts';
import type { NodeState } from '../../../../libs/model/index.ts';
import { formatIpvsadm } from '../../../../libs/planner/index.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { nodeState, vs } from './node-state-fixture.ts';
import { dataplaneOverTheTestKernel } from './test-dataplane.ts';

const many = (n: number) =>
  nodeState(Array.from({ length: n }, (_, i) => vs(`10.96.${i >> 8}.${i & 255}`, 80, [['10.244.1.2', 8080]])));
/** `s` with service i replaced by a new object (an endpoint added), every other object shared. */
const withEndpoint = (s: NodeState, i: number): NodeState => ({
  ...s,
  virtualServers: s.virtualServers.map((v, j) =>
    j === i ? { ...v, realServers: [...v.realServers, { address: '10.244.9.9', port: 8080, weight: 1 }] } : v,
  ),
});

describe('diffStates', () => {
  it('finds the added and removed addresses whether the lists are in order or not (a merge walk, a set diff otherwise)', () => {
    const addr = fc.integer({ min: 0, max: 40 }).map((n) => `10.96.${n >> 4}.${n & 15}`);
    fc.assert(
      fc.property(fc.uniqueArray(addr), fc.uniqueArray(addr), fc.boolean(), (a, b, inOrder) => {
        const order = (xs: string[]) => (inOrder ? [...xs].sort() : xs);
        const base = many(3);
        const prev = { ...base, boundAddresses: order(a) };
        const next = { ...base, boundAddresses: order(b) };
        const d = diffStates(indexState(prev), next);
        expect(d?.addedAddresses.slice().sort()).toEqual(b.filter((x) => !a.includes(x)).sort());
        expect(d?.removedAddresses.slice().sort()).toEqual(a.filter((x) => !b.includes(x)).sort());
      }),
      { numRuns: 300 },
    );
  });

  it('finds a changed service by identity, and added/removed services and addresses', () => {
    const s = many(300);
    const prev = indexState(s);
    expect(diffStates(prev, s)).toEqual({
      virtualServers: [],
      removedVirtualServers: [],
      addedAddresses: [],
      removedAddresses: [],
      ipsets: [],
    });
    const one = withEndpoint(s, 7);
    expect(diffStates(prev, one)).toEqual({
      virtualServers: [one.virtualServers[7]],
      removedVirtualServers: [],
      addedAddresses: [],
      removedAddresses: [],
      ipsets: [],
    });
    const fewer = {
      ...s,
      virtualServers: s.virtualServers.filter((_, i) => i !== 3),
      boundAddresses: s.boundAddresses.filter((a) => a !== s.virtualServers[3]!.address),
    };
    expect(diffStates(prev, fewer)).toMatchObject({
      virtualServers: [],
      removedVirtualServers: ['TCP/10.96.0.3:80'],
      addedAddresses: [],
      removedAddresses: ['10.96.0.3'],
    });
    const added = vs('10.96.9.9', 80, []);
    const more = { ...s, virtualServers: [added, ...s.virtualServers.slice(1)] };
    expect(diffStates(prev, more)).toMatchObject({
      virtualServers: [added],
      removedVirtualServers: ['TCP/10.96.0.0:80'],
    });
  });

  it("takes the services' change from a hint about the indexed state instead of walking them", () => {
    const s = many(300);
    const prev = indexState(s);
    // Every service a new object with the same content: a walk reports all 300 as changed, so a
    // change naming exactly the hinted ones shows the walk did not run.
    const copies = { ...s, virtualServers: s.virtualServers.map((v) => ({ ...v })) };
    expect(diffStates(prev, copies)!.virtualServers).toHaveLength(300);
    const hint = { previous: s, virtualServers: [copies.virtualServers[7]!], removedVirtualServers: [] };
    expect(diffStates(prev, copies, hint)).toEqual({
      virtualServers: [copies.virtualServers[7]],
      removedVirtualServers: [],
      addedAddresses: [],
      removedAddresses: [],
      ipsets: [],
    });
    // added and removed services, named by the hint
    const added = vs('10.96.9.9', 80, []);
    const swapped = { ...copies, virtualServers: [added, ...copies.virtualServers.slice(1)] };
    expect(
      diffStates(prev, swapped, { previous: s, virtualServers: [added], removedVirtualServers: ['TCP/10.96.0.0:80'] }),
    ).toMatchObject({ virtualServers: [added], removedVirtualServers: ['TCP/10.96.0.0:80'] });
    // a hinted object that is the indexed one is no change
    expect(
      diffStates(prev, s, { previous: s, virtualServers: [s.virtualServers[4]!], removedVirtualServers: [] })!
        .virtualServers,
    ).toEqual([]);
  });

  it('walks when the hint is about another state, names a removed service the state lacked, or does not add up', () => {
    const s = many(50);
    const prev = indexState(s);
    const copies = { ...s, virtualServers: s.virtualServers.map((v) => ({ ...v })) };
    const one = [copies.virtualServers[7]!];
    const walked = (hint: Parameters<typeof diffStates>[2]) => diffStates(prev, copies, hint)!.virtualServers.length;
    expect(walked({ previous: { ...s }, virtualServers: one, removedVirtualServers: [] })).toBe(50);
    expect(walked({ previous: s, virtualServers: one, removedVirtualServers: ['TCP/10.1.1.1:80'] })).toBe(50);
    // says one service was removed, but the next state has as many as before
    expect(walked({ previous: s, virtualServers: one, removedVirtualServers: ['TCP/10.96.0.3:80'] })).toBe(50);
    // says one was added (a key the state lacked), but the count is unchanged
    expect(walked({ previous: s, virtualServers: [vs('10.96.9.9', 80, [])], removedVirtualServers: [] })).toBe(50);
    // a service without an address cannot be keyed: the walk hands it to validation
    expect(walked({ previous: s, virtualServers: [{} as never], removedVirtualServers: [] })).toBe(50);
  });

  it('asks for a full cycle when the settings or the list of sets change', () => {
    const s = many(3);
    expect(diffStates(indexState(s), { ...s, settings: { ...s.settings, masqueradeAll: true } })).toBeUndefined();
    expect(diffStates(indexState(s), { ...s, settings: { ...s.settings } })).toBeDefined();
    expect(diffStates(indexState(s), { ...s, ipsets: s.ipsets.slice(1) })).toBeUndefined();
  });
});

describe('IpvsDataplane incremental bookkeeping', () => {
  it('one endpoint change in a large state: one write, one kernel call, nothing read back (the kernel answers for the write), the ownership record not rewritten', async () => {
    const kernel = new FakeIpvsKernel();
    const saves: OwnershipRecord[] = [];
    const store = new MemoryOwnershipStore();
    const counting = Object.assign(Object.create(store) as MemoryOwnershipStore, {
      save: async (r: OwnershipRecord) => {
        saves.push(r);
        await store.save(r);
      },
    });
    const pointReads: string[] = [];
    const reading = Object.assign(Object.create(kernel) as FakeIpvsKernel, {
      readVirtualServers: (keys: { protocol: string; address: string; port: number }[]) => {
        // every call, an empty one too (a kernel call that reads nothing still costs a round of awaits)
        pointReads.push(`read ${keys.map((k) => `${k.address}:${k.port}`).join(' ')}`);
        return kernel.readVirtualServers(keys as never);
      },
      run: (tx: Parameters<FakeIpvsKernel['run']>[0]) => {
        pointReads.push(`run ${tx.size}`);
        return kernel.run(tx);
      },
    });
    const { dp } = dataplaneOverTheTestKernel(reading, counting);
    const s = many(500);
    await dp.apply(s);
    saves.length = 0;
    pointReads.length = 0;
    const next = withEndpoint(s, 123);
    const r = await dp.apply(next);
    expect(r).toMatchObject({ kernelWrites: 1, verified: true });
    expect(reading.lastTransaction!.ops.map(describeOp)).toEqual([
      'add real server 10.244.9.9:8080 weight 1 of TCP/10.96.0.123:80',
    ]);
    expect(pointReads).toEqual(['run 1']);
    expect(saves).toEqual([]);
    // a service added is read back whole (its spec is what the kernel may hold otherwise than written)
    const added = { ...next, virtualServers: [...next.virtualServers, vs('10.96.200.1', 80, [['10.244.1.2', 8080]])] };
    pointReads.length = 0;
    expect(await dp.apply(added)).toMatchObject({ verified: true });
    expect(pointReads).toEqual([expect.stringMatching(/^run /), 'read 10.96.200.1:80']);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(added));
    // a removed service is recorded as no longer ours, after it is gone
    const fewer = {
      ...next,
      virtualServers: next.virtualServers.filter((_, i) => i !== 5),
      boundAddresses: next.boundAddresses.filter((a) => a !== '10.96.0.5'),
    };
    expect(await dp.apply(fewer)).toMatchObject({ verified: true });
    expect(saves.at(-1)!.virtualServers).not.toContain('TCP/10.96.0.5:80');
    expect(saves.at(-1)!.addresses).not.toContain('10.96.0.5');
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(fewer));
    await dp.close();
  });

  it('applies with a hint exactly as without one, and ignores a hint about a state it did not apply', async () => {
    const kernel = new FakeIpvsKernel();
    const { dp } = dataplaneOverTheTestKernel(kernel, new MemoryOwnershipStore());
    const s = many(40);
    await dp.apply(s);
    const next = withEndpoint(s, 9);
    const r = await dp.apply(next, {
      previous: s,
      virtualServers: [next.virtualServers[9]!],
      removedVirtualServers: [],
    });
    expect(r).toMatchObject({ kernelWrites: 1, verified: true });
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(next));
    // a hint about `s` (not the state applied last, `next`) that names nothing: the dataplane
    // walks and finds service 12's change itself
    const after = withEndpoint(next, 12);
    const r2 = await dp.apply(after, { previous: s, virtualServers: [], removedVirtualServers: [] });
    expect(r2).toMatchObject({ kernelWrites: 1, verified: true });
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(after));
    await dp.close();
  });

  it('a read-back that differs from what was written makes the apply unverified and the next cycle a full one', async () => {
    const kernel = new FakeIpvsKernel();
    let lie = false;
    let fullReads = 0;
    const lying = Object.assign(Object.create(kernel) as FakeIpvsKernel, {
      read: (o: Parameters<FakeIpvsKernel['read']>[0]) => {
        fullReads++;
        return kernel.read(o);
      },
      readVirtualServers: async (keys: Parameters<FakeIpvsKernel['readVirtualServers']>[0]) => {
        const got = await kernel.readVirtualServers(keys);
        return lie ? got.map((v) => ({ ...v, realServers: v.realServers.map((r) => ({ ...r, weight: 7 })) })) : got;
      },
    });
    const { dp } = dataplaneOverTheTestKernel(lying, new MemoryOwnershipStore());
    const s = many(20);
    await dp.apply(s);
    lie = true;
    // a service whose spec the change writes (here: its scheduler) is read back whole
    const edited = { ...s, virtualServers: s.virtualServers.map((v, i) => (i === 3 ? { ...v, scheduler: 'wrr' } : v)) };
    const r = await dp.apply(edited);
    expect(r.verified).toBe(false);
    expect(r.notes).toContain('verify: read-back of TCP/10.96.0.3:80 differs from what was written');
    lie = false;
    const reads = fullReads;
    expect(await dp.apply(edited)).toMatchObject({ verified: true, kernelWrites: 0 });
    expect(fullReads).toBe(reads + 1);
    await dp.close();
  });
});
