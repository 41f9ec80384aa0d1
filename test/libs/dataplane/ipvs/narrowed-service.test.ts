// A change to a large service is planned and read back on the real servers it touches
// (narrowed-service.ts). Two claims, each shown here: planning the narrowed service writes exactly
// what planning the whole one writes (property, against planKernelOps on whole services), and the
// dataplane takes that path for large services with the same end state as a full cycle, its
// read-back still catching a destination added behind its back (the count) on the real fake kernel.
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { describeOp } from '../../../../libs/dataplane/ipvs/kernel-op.ts';
import {
  drainingInSlice,
  mergeWalk,
  NARROW_MIN_REAL_SERVERS,
  narrowService,
  type NarrowedService,
} from '../../../../libs/dataplane/ipvs/narrowed-service.ts';
import type { ObservedRealServer, ObservedVirtualServer } from '../../../../libs/dataplane/ipvs/observed-kernel.ts';
import { MemoryOwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { planKernelOps } from '../../../../libs/dataplane/ipvs/plan-kernel-ops.ts';
import { virtualServerKey, type NodeState, type RealServer, type VirtualServer } from '../../../../libs/model/index.ts';
import { formatIpvsadm } from '../../../../libs/planner/index.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { nodeState, vs } from './node-state-fixture.ts';

const NOW = 10_000_000;
const DRAIN_MS = 60_000;
const byKey = (a: RealServer, b: RealServer) =>
  a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port;
const addr = (i: number) => `10.1.${i >> 8}.${i & 255}`;
const sorted = (rs: RealServer[]) => [...rs].sort(byKey);

/** A service's plan as comparable text: every op and the draining record it leaves. */
function planOf(desired: VirtualServer, observed: ObservedVirtualServer, draining: Record<string, number>) {
  const d: NodeState = { ...nodeState([desired]), ipsets: [], boundAddresses: [] };
  const p = planKernelOps({
    desired: d,
    observed: {
      virtualServers: [observed],
      dummyDevice: true,
      boundAddresses: [],
      ipsets: [],
      netfilter: { tables: {} },
      sysctls: {},
    },
    record: {
      version: 1,
      virtualServers: [virtualServerKey(desired)],
      addresses: [],
      ipsets: [],
      dummyDevice: true,
      netfilterChains: {},
      draining,
    },
    glue: undefined,
    sysctls: {},
    device: 'kube-ipvs0',
    now: NOW,
    drainTimeoutMs: DRAIN_MS,
    swapThreshold: 1000,
  });
  return {
    ops: p.ops.map((op) => ({ op: describeOp(op), rs: op.kind === 'real-server' ? op.rs : undefined })),
    draining: p.recordAfter.draining,
    drainsEnded: p.drainsEnded,
  };
}

/**
 * A verified previous service, the kernel after it (its real servers plus some at weight 0, some
 * of those in the record as draining since a time before or after the deadline), and a next
 * version: some removed, reweighted, added (some of the added ones held at weight 0: returning).
 */
const scenario = fc
  .record({
    size: fc.integer({ min: NARROW_MIN_REAL_SERVERS, max: 140 }),
    edits: fc.array(
      fc.tuple(fc.constantFrom('remove', 'weight', 'add', 'return'), fc.nat(), fc.integer({ min: 0, max: 3 })),
      { maxLength: 8 },
    ),
    held0: fc.array(fc.tuple(fc.nat(), fc.boolean(), fc.integer({ min: 0, max: 2 * DRAIN_MS })), { maxLength: 5 }),
    conns: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 3 })), { maxLength: 6 }),
  })
  .map(({ size, edits, held0, conns }) => {
    const prev: RealServer[] = Array.from({ length: size }, (_, i) => ({ address: addr(i), port: 8080, weight: 1 }));
    // weight-0 real servers the kernel holds beyond the previous state (draining or left over)
    const zero: RealServer[] = held0.map(([n]) => ({ address: addr(1000 + (n % 50)), port: 8080, weight: 0 }));
    const zeroUnique = [...new Map(zero.map((r) => [r.address, r])).values()];
    const key = `TCP/10.96.0.1:80`;
    const draining: Record<string, number> = {};
    held0.forEach(([n, inRecord, age]) => {
      if (inRecord) draining[`${key}>${addr(1000 + (n % 50))}:8080`] = NOW - age;
    });
    let next = [...prev];
    for (const [verb, n, w] of edits) {
      const i = n % Math.max(1, next.length);
      if (verb === 'remove' && next.length > 0) next.splice(i, 1);
      else if (verb === 'weight' && next.length > 0) next[i] = { ...next[i]!, weight: w };
      else if (verb === 'add') next.push({ address: addr(2000 + (n % 100)), port: 9090, weight: 1 });
      else if (verb === 'return' && zeroUnique.length > 0)
        next.push({ ...zeroUnique[n % zeroUnique.length]!, weight: 1 });
    }
    next = sorted([...new Map(next.map((r) => [`${r.address}:${r.port}`, r])).values()]);
    const counters = new Map(conns.map(([n, c]) => [addr(n % size), c]));
    const observedRs: ObservedRealServer[] = [...prev, ...zeroUnique].map((r) => ({
      ...r,
      activeConns: counters.get(r.address) ?? 0,
      inactiveConns: 0,
    }));
    const spec = vs('10.96.0.1', 80, []);
    return {
      prevVs: { ...spec, realServers: sorted(prev) },
      nextVs: { ...spec, realServers: next },
      held: observedRs,
      draining,
    };
  });

const narrowedObserved = (o: ObservedVirtualServer, n: NarrowedService): ObservedVirtualServer => ({
  ...o,
  realServers: o.realServers.filter((r) => n.keys.has(r)),
});

describe('narrowService', () => {
  it('plans the writes and drains that planning the whole service from the model plans, for the real servers that changed (a removed one drains: its counters are not read)', () => {
    let removing = 0;
    fc.assert(
      fc.property(scenario, ({ prevVs, nextVs, held, draining }) => {
        // what the dataplane plans a change against: the model, which does not know the counters
        const fromModel = held.map((r) => ({ ...r, activeConns: 0, inactiveConns: 0, countersUnknown: true as const }));
        const observed: ObservedVirtualServer = { ...vs('10.96.0.1', 80, []), realServers: fromModel };
        const n = narrowService(prevVs, nextVs);
        expect(n).toBeDefined();
        // lists in the renderer's order take the one-walk path, removals and all
        expect(mergeWalk(prevVs.realServers, nextVs.realServers)).toBeDefined();
        // the dataplane's slice carries only the drains the narrowing keeps (sliceChange)
        const narrowedMap = new Map([[virtualServerKey(nextVs), n!]]);
        const kept = Object.fromEntries(Object.entries(draining).filter(([dk]) => drainingInSlice(dk, narrowedMap)));
        const part = planOf(n!.desired, narrowedObserved(observed, n!), kept);
        const whole = planOf(nextVs, observed, draining);
        // the same, less what the whole plan decides for real servers outside the change (drains
        // already running, left over at weight 0: the full cycle's, with live counters)
        const inKeys = (o: { rs?: { address: string; port: number } }) => !o.rs || n!.keys.has(o.rs);
        expect(part.ops).toEqual(whole.ops.filter(inKeys));
        expect(part.draining).toEqual(
          Object.fromEntries(Object.entries(whole.draining).filter(([dk]) => drainingInSlice(dk, narrowedMap))),
        );
        // the keys are exactly the real servers that differ between the two versions
        const key = (r: { address: string; port: number }) => `${r.address}:${r.port}`;
        const before = new Map(prevVs.realServers.map((r) => [key(r), r.weight]));
        const after = new Map(nextVs.realServers.map((r) => [key(r), r.weight]));
        const differ = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
        const all = [...prevVs.realServers, ...nextVs.realServers, ...held];
        expect(new Set(all.filter((r) => n!.keys.has(r)).map(key))).toEqual(new Set(differ));
        // a removed real server (TCP) is never deleted by a change: it drains at weight 0
        const removed = prevVs.realServers.filter((p) => !after.has(key(p)));
        if (removed.length > 0) removing++;
        for (const r of removed) {
          expect(part.ops).toContainEqual({
            op: expect.stringMatching(/^edit real server/),
            rs: { address: r.address, port: r.port, weight: 0 },
          });
          expect(part.draining[`TCP/10.96.0.1:80>${key(r)}`]).toBe(NOW);
        }
        expect(
          part.ops.some((o) => /^delete real server/.test(o.op) && removed.some((r) => key(r) === key(o.rs!))),
        ).toBe(false);
        expect(n!.desired.realServers.length).toBeLessThanOrEqual(nextVs.realServers.length);
      }),
      { numRuns: 400 },
    );
    expect(removing).toBeGreaterThan(50); // removals ran
  });

  it('finds the same real servers whatever the order of the lists (the renderer sorts; anything else is walked by address)', () => {
    fc.assert(
      fc.property(scenario, fc.nat(), ({ prevVs, nextVs, held }, seed) => {
        const shuffle = <T>(xs: readonly T[]) =>
          xs
            .map((x, i) => [((i + 1) * 2654435761 + seed) % 4294967296, x] as const)
            .sort((a, b) => a[0] - b[0])
            .map(([, x]) => x);
        const inOrder = narrowService(prevVs, nextVs)!;
        const candidates = [...prevVs.realServers, ...nextVs.realServers, ...held];
        const shuffledPrev = { ...prevVs, realServers: shuffle(prevVs.realServers) };
        const shuffledNext = { ...nextVs, realServers: shuffle(nextVs.realServers) };
        for (const [p, n] of [
          [shuffledPrev, nextVs],
          [prevVs, shuffledNext],
          [shuffledPrev, shuffledNext],
        ] as const) {
          const other = narrowService(p, n)!;
          expect(candidates.map((r) => other.keys.has(r))).toEqual(candidates.map((r) => inOrder.keys.has(r)));
          expect(sorted([...other.desired.realServers])).toEqual(inOrder.desired.realServers);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('keeps a one-endpoint change to one real server, and leaves a malformed service whole for validation', () => {
    const prev = vs(
      '10.96.0.1',
      80,
      Array.from({ length: 500 }, (_, i): [string, number] => [addr(i), 8080]),
    );
    const next = {
      ...prev,
      realServers: sorted([...prev.realServers, { address: '10.2.0.1', port: 8080, weight: 1 }]),
    };
    const n = narrowService(prev, next)!;
    expect(n.desired.realServers).toEqual([{ address: '10.2.0.1', port: 8080, weight: 1 }]);
    expect(n.keys.size).toBe(1);
    const broken = { ...next, realServers: [...next.realServers, null] } as unknown as VirtualServer;
    expect(narrowService(prev, broken)).toBeUndefined();
    const holes: RealServer[] = [...next.realServers];
    holes.length += 2; // a sparse array: holes, which every() and forEach() skip
    expect(narrowService(prev, { ...next, realServers: holes })).toBeUndefined();
    expect(narrowService(prev, { ...next, realServers: [...holes].reverse() })).toBeUndefined();
  });
});

describe('IpvsDataplane with a large service', () => {
  const open: IpvsDataplane[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const d of open.splice(0)) await d.close();
  });
  let now = NOW;
  const setup = () => {
    now = NOW;
    const kernel = new FakeIpvsKernel();
    const store = new MemoryOwnershipStore();
    const dp = new IpvsDataplane({
      kernel,
      store,
      clock: () => now,
      kernelRelease: '6.1.0',
      drainTimeoutMs: DRAIN_MS,
    });
    open.push(dp);
    // every read of the kernel the dataplane makes after its first load
    const reads = [vi.spyOn(kernel, 'readVirtualServers'), vi.spyOn(kernel, 'read')];
    const readCount = () => reads.reduce((n, r) => n + r.mock.calls.length, 0);
    return { kernel, dp, store, readCount };
  };
  const big = (n: number, extra: RealServer[] = []) =>
    sorted([...Array.from({ length: n }, (_, i) => ({ address: addr(i), port: 8080, weight: 1 })), ...extra]);
  const stateOf = (realServers: RealServer[]) =>
    nodeState(
      [vs('10.96.0.10', 80, []), vs('10.96.0.11', 53, [['10.244.1.4', 53]], { protocol: 'UDP' })].map((v, i) =>
        i === 0 ? { ...v, realServers } : v,
      ),
    );
  const LARGE = 'TCP/10.96.0.10:80';
  /** Applies `next` as the applier session hands it (the change named). */
  const applyAfter = (dp: IpvsDataplane, previous: NodeState, next: NodeState) =>
    dp.apply(next, {
      previous,
      virtualServers: [next.virtualServers.find((v) => v.address === '10.96.0.10')!],
      removedVirtualServers: [],
    });

  it('applies one-endpoint changes, removals included, without reading the service, draining what it removes until the full cycle decides', async () => {
    const { kernel, dp, store, readCount } = setup();
    let s = stateOf(big(300));
    expect((await dp.apply(s)).verified).toBe(true);
    const loadReads = readCount();
    const step = async (realServers: RealServer[]) => {
      const next = stateOf(realServers);
      const r = await applyAfter(dp, s, next);
      s = next;
      return r;
    };
    // added, then reweighted: one write each, nothing read
    let r = await step(big(300, [{ address: '10.2.0.1', port: 8080, weight: 1 }]));
    expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(s));
    r = await step(big(300, [{ address: '10.2.0.1', port: 8080, weight: 3 }]));
    expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(s));
    expect(readCount()).toBe(loadReads);
    // removed with a connection open: nothing read (the counters are not), weight 0 and a drain in
    // the record
    kernel.setConnections(LARGE, '10.2.0.1:8080', 1, 0);
    r = await step(big(300));
    expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(r.notes).toContain('1 real server(s) draining');
    expect(kernel.ipvsadmSave()).toContain('-a -t 10.96.0.10:80 -r 10.2.0.1:8080 -m -w 0');
    expect(readCount()).toBe(loadReads);
    // another endpoint comes while it drains: nothing read, the drain left as it is
    const draining = { ...store.record.draining };
    r = await step(big(300, [{ address: '10.2.0.2', port: 8080, weight: 1 }]));
    expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(kernel.ipvsadmSave()).toContain('-a -t 10.96.0.10:80 -r 10.2.0.1:8080 -m -w 0');
    expect(store.record.draining).toEqual(draining);
    // its connection closes; then the new endpoint is removed, without a connection: nothing read
    // either, so it drains too (its counters unknown), and the first drain is not looked at
    kernel.setConnections(LARGE, '10.2.0.1:8080', 0, 0);
    r = await step(big(300));
    expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(readCount()).toBe(loadReads);
    expect(kernel.ipvsadmSave()).toContain('-r 10.2.0.1:8080 -m -w 0');
    expect(kernel.ipvsadmSave()).toContain('-r 10.2.0.2:8080 -m -w 0');
    expect(Object.keys(store.record.draining).sort()).toEqual([`${LARGE}>10.2.0.1:8080`, `${LARGE}>10.2.0.2:8080`]);
    // the full cycle reads the counters and ends both drains (no connection left)
    expect(await dp.resync()).toMatchObject({ verified: true, kernelWrites: 2, scheduledWrites: 2 });
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(s));
    expect(store.record.draining).toEqual({});
    // a full cycle finds nothing to do
    expect((await dp.resync()).kernelWrites).toBe(0);
  });

  // the same for a service under the narrowing threshold: a change elsewhere reads no draining service
  it.each([
    ['a large service', 100],
    ['a service under the threshold', NARROW_MIN_REAL_SERVERS - 2],
  ])(
    'a drain in %s that no removal revisits ends at the next full cycle (the periodic resync), deadline included',
    async (_, n) => {
      const { kernel, dp, store } = setup();
      let s = stateOf(big(n, [{ address: '10.2.0.1', port: 8080, weight: 1 }]));
      await dp.apply(s);
      kernel.setConnections(LARGE, '10.2.0.1:8080', 2, 0);
      const next = stateOf(big(n));
      expect((await applyAfter(dp, s, next)).notes).toContain('1 real server(s) draining');
      s = next;
      expect(Object.keys(store.record.draining)).toEqual([`${LARGE}>10.2.0.1:8080`]);
      // a change to another service while it drains: the draining one is neither read nor decided
      const live = vi.spyOn(kernel, 'readVirtualServers'); // (the spy setup made: its calls so far)
      const liveBefore = live.mock.calls.length;
      const other = {
        ...s,
        virtualServers: s.virtualServers.map((v) =>
          v.address === '10.96.0.11'
            ? { ...v, realServers: [...v.realServers, { address: '10.244.1.5', port: 53, weight: 1 }] }
            : v,
        ),
      };
      const r = await dp.apply(other, {
        previous: s,
        virtualServers: [other.virtualServers.find((v) => v.address === '10.96.0.11')!],
        removedVirtualServers: [],
      });
      expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
      expect(live.mock.calls.length).toBe(liveBefore);
      expect(Object.keys(store.record.draining)).toEqual([`${LARGE}>10.2.0.1:8080`]);
      s = other;
      // connections still open: the resync keeps it draining
      expect(await dp.resync()).toMatchObject({ verified: true, kernelWrites: 0 });
      expect(kernel.ipvsadmSave()).toContain('-r 10.2.0.1:8080 -m -w 0');
      // past the drain timeout: the resync deletes it, connections or not
      now += DRAIN_MS;
      expect(await dp.resync()).toMatchObject({ verified: true, kernelWrites: 1 });
      expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(s));
      expect(store.record.draining).toEqual({});
    },
  );

  it('a real server gone behind its back: the kernel refuses the edit, the cycle fails, and the next one (full) puts it back', async () => {
    const { kernel, dp } = setup();
    const s = stateOf(big(200));
    await dp.apply(s);
    const victim = s.virtualServers.find((v) => v.address === '10.96.0.10')!;
    kernel.external({ verb: 'delete', kind: 'real-server', vs: victim, rs: { address: addr(7), port: 8080 } });
    const next = stateOf(big(200).map((r) => (r.address === addr(7) ? { ...r, weight: 2 } : r)));
    await expect(applyAfter(dp, s, next)).rejects.toThrow(/ENOENT|No such|absent|not exist/i);
    const again = await dp.apply(next);
    expect(again).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(next));
  });

  // the same whether the service is narrowed or not: no service is read back after a change that
  // writes only real servers of it
  it.each([
    ['a large service', 200],
    ['a service under the threshold', NARROW_MIN_REAL_SERVERS - 2],
  ])('%s: a real server added behind its back is left to the periodic full read, which removes it', async (_, n) => {
    const { kernel, dp, readCount } = setup();
    const s = stateOf(big(n));
    await dp.apply(s);
    const loadReads = readCount();
    kernel.external({
      verb: 'add',
      kind: 'real-server',
      vs: s.virtualServers.find((v) => v.address === '10.96.0.10')!,
      rs: { address: '10.9.9.9', port: 8080, weight: 1 },
    });
    const next = stateOf(big(n, [{ address: '10.2.0.1', port: 8080, weight: 1 }]));
    expect(await applyAfter(dp, s, next)).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(readCount()).toBe(loadReads);
    expect(kernel.ipvsadmSave()).toContain('-r 10.9.9.9:8080');
    const resync = await dp.resync();
    expect(resync).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(next));
  });
});
