import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { describeOp } from '../../../../libs/dataplane/ipvs/kernel-op.ts';
import { MemoryOwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { formatIpvsadm } from '../../../../libs/planner/index.ts';
import type { NodeState } from '../../../../libs/model/index.ts';
import { NOTHING_VERIFIED as NOTHING_VERIFIED_NOTE, ResyncYielded } from '../../../../libs/dataplane/dataplane.ts';
import { formatIpsetSave, nodeState, vs } from './node-state-fixture.ts';

let now = 1_000_000;
const open: IpvsDataplane[] = [];
function setup(
  kernel = new FakeIpvsKernel(),
  store = new MemoryOwnershipStore(),
  extra: { drainTimeoutMs?: number; swapThreshold?: number; rateEstimation?: boolean } = {},
) {
  const registry = new Registry();
  const dp = new IpvsDataplane({ kernel, store, clock: () => now, kernelRelease: '6.1.0', registry, ...extra });
  open.push(dp);
  return { kernel, store, dp, registry };
}

/**
 * `run` refuses a state without its shape and one with a bad address (`good` is the shape to break)
 * before any kernel write: no transaction, the kernel's listing as it was.
 */
async function expectCorruptRefused(
  kernel: FakeIpvsKernel,
  run: (s: NodeState) => Promise<unknown>,
  good: NodeState,
): Promise<void> {
  const before = kernel.ipvsadmSave();
  const n = kernel.transactions;
  await expect(run({ ...good, virtualServers: undefined } as unknown as NodeState)).rejects.toThrow(
    /invalid node state/,
  );
  await expect(run(nodeState([vs('10.96.0.300', 80, [])]))).rejects.toThrow(/invalid/);
  expect(kernel.transactions).toBe(n);
  expect(kernel.ipvsadmSave()).toBe(before);
}
afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
});
const ops = (k: FakeIpvsKernel) => k.lastTransaction!.ops.map(describeOp);

const base = (): NodeState =>
  nodeState([
    vs('10.96.0.10', 80, [
      ['10.244.1.2', 8080],
      ['10.244.1.3', 8080],
    ]),
    vs('10.96.0.11', 53, [['10.244.1.4', 53]], { protocol: 'UDP' }),
  ]);

describe('IpvsDataplane on the recording fake', () => {
  it('programs from empty exactly the rendered ipvsadm and ipset text, then verifies', async () => {
    const { kernel, dp } = setup();
    const s = base();
    const r = await dp.apply(s);
    expect(r.verified).toBe(true);
    expect(r.kernelWrites).toBe(kernel.lastTransaction!.size);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(s));
    expect(kernel.ipsetSave()).toBe(formatIpsetSave(s));
    expect(kernel.addresses()).toEqual(['10.96.0.10', '10.96.0.11']);
    expect(kernel.sysctl('net.ipv4.vs.conntrack')).toBe('1');
    expect(kernel.iptablesSave()).toContain('-A KUBE-SERVICES ! -s 10.244.0.0/16');
  });

  it('sets IPVS rate estimation only when told to, before any IPVS write, and repairs it on resync', async () => {
    const est = 'net.ipv4.vs.run_estimation';
    const untouched = setup();
    untouched.kernel.external({ verb: 'set', kind: 'sysctl', name: est, value: '0' });
    await untouched.dp.apply(base());
    expect(untouched.kernel.sysctl(est)).toBe('0'); // the default keeps whatever the node had
    expect(ops(untouched.kernel).filter((o) => o.includes(est))).toEqual([]);

    const off = setup(new FakeIpvsKernel(), new MemoryOwnershipStore(), { rateEstimation: false });
    expect((await off.dp.apply(base())).verified).toBe(true);
    expect(off.kernel.sysctl(est)).toBe('0');
    // first, so that the 2-second walk of every estimator is off before the load adds them
    const written = ops(off.kernel);
    const setAt = written.indexOf(`set sysctl ${est}=0`);
    expect(setAt).toBeGreaterThanOrEqual(0);
    expect(setAt).toBeLessThan(written.findIndex((o) => o.includes('virtual server')));
    off.kernel.external({ verb: 'set', kind: 'sysctl', name: est, value: '1' });
    expect((await off.dp.resync()).kernelWrites).toBe(1);
    expect(off.kernel.sysctl(est)).toBe('0');

    const on = setup(new FakeIpvsKernel(), new MemoryOwnershipStore(), { rateEstimation: true });
    on.kernel.external({ verb: 'set', kind: 'sysctl', name: est, value: '0' });
    await on.dp.apply(base());
    expect(on.kernel.sysctl(est)).toBe('1');
  });

  it('makes zero writes on a second apply of the same state', async () => {
    const { kernel, dp } = setup();
    await dp.apply(base());
    const before = kernel.transactions;
    const r = await dp.apply(base());
    expect(r.kernelWrites).toBe(0);
    expect(r.verified).toBe(true);
    expect(kernel.transactions).toBe(before);
  });

  it('an added endpoint is one real-server add plus its set entries, nothing else', async () => {
    const { kernel, dp } = setup();
    await dp.apply(base());
    const s = base();
    const next = {
      ...s,
      virtualServers: [
        vs('10.96.0.10', 80, [
          ['10.244.1.2', 8080],
          ['10.244.1.3', 8080],
          ['10.244.1.9', 8080],
        ]),
        s.virtualServers[1]!,
      ],
    };
    const r = await dp.apply(next);
    expect(ops(kernel)).toEqual(['add real server 10.244.1.9:8080 weight 1 of TCP/10.96.0.10:80']);
    expect(r.kernelWrites).toBe(1);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(next));
  });

  it('after the first apply, a change is planned against the model: no full kernel dump, its real-server writes not read back (the kernel answers for each), drift elsewhere left to the resync', async () => {
    const kernel = new FakeIpvsKernel();
    let fullReads = 0;
    let pointReads: string[] = [];
    const counting = Object.assign(Object.create(kernel) as FakeIpvsKernel, {
      read: (o: Parameters<FakeIpvsKernel['read']>[0]) => {
        fullReads++;
        return kernel.read(o);
      },
      readVirtualServers: (keys: Parameters<FakeIpvsKernel['readVirtualServers']>[0]) => {
        pointReads.push(...keys.map((k) => `${k.protocol}/${k.address}:${k.port}`));
        return kernel.readVirtualServers(keys);
      },
      run: (tx: Parameters<FakeIpvsKernel['run']>[0]) => kernel.run(tx),
    });
    const { dp } = setup(counting);
    await dp.apply(base());
    expect(fullReads).toBe(2); // before and after the first transaction
    pointReads = [];
    const s = base();
    const next = {
      ...s,
      virtualServers: [
        vs('10.96.0.10', 80, [
          ['10.244.1.2', 8080],
          ['10.244.1.3', 8080],
          ['10.244.1.9', 8080],
        ]),
        s.virtualServers[1]!,
      ],
    };
    const r = await dp.apply(next);
    expect(fullReads).toBe(2);
    expect(pointReads).toEqual([]); // only a real server written: nothing read
    expect(r).toMatchObject({ kernelWrites: 1, verified: true });
    // A model that disagrees with the kernel about a real server the change does not write is
    // not seen by the change: the periodic resync's full read finds and repairs it.
    kernel.external({
      verb: 'edit',
      kind: 'real-server',
      vs: next.virtualServers[0]!,
      rs: { address: '10.244.1.2', port: 8080, weight: 7 },
    });
    const again = await dp.apply({
      ...next,
      virtualServers: [
        vs('10.96.0.10', 80, [
          ['10.244.1.2', 8080],
          ['10.244.1.3', 8080],
          ['10.244.1.9', 8080],
          ['10.244.1.10', 8080],
        ]),
        s.virtualServers[1]!,
      ],
    });
    expect(again).toMatchObject({ kernelWrites: 1, verified: true });
    expect(pointReads).toEqual([]);
    expect(kernel.ipvsadmSave()).toContain('-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 7\n');
    // resync reads everything and repairs it.
    expect(await dp.resync()).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(fullReads).toBe(4); // its read, and its read-back
    expect(kernel.ipvsadmSave()).toContain('-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1\n');
    // A change whose write contradicts the kernel (a real server removed behind its back, which
    // the change reweights) is refused by it: the change fails, and the next cycle is full.
    kernel.external({
      verb: 'delete',
      kind: 'real-server',
      vs: next.virtualServers[0]!,
      rs: { address: '10.244.1.3', port: 8080 },
    });
    const four = vs('10.96.0.10', 80, [
      ['10.244.1.2', 8080],
      ['10.244.1.3', 8080],
      ['10.244.1.9', 8080],
      ['10.244.1.10', 8080],
    ]);
    const reweighted = {
      ...next,
      virtualServers: [
        { ...four, realServers: four.realServers.map((r) => (r.address === '10.244.1.3' ? { ...r, weight: 5 } : r)) },
        s.virtualServers[1]!,
      ],
    };
    await expect(dp.apply(reweighted)).rejects.toThrow(/edit real server 10\.244\.1\.3:8080 weight 5/);
    const repaired = await dp.apply(reweighted);
    expect(repaired.verified).toBe(true);
    expect(fullReads).toBe(6);
    expect(kernel.ipvsadmSave()).toContain('-a -t 10.96.0.10:80 -r 10.244.1.3:8080 -m -w 5\n');
  });

  it('skips objects it applied and verified before (same object identity) while its model is current; resync still checks everything', async () => {
    const { kernel, dp } = setup();
    const s = base();
    await dp.apply(s);
    // A new version sharing the unchanged service object (as the incremental renderer produces).
    const next = { ...s, virtualServers: [vs('10.96.0.10', 80, [['10.244.1.2', 8080]]), s.virtualServers[1]!] };
    kernel.setConnections('TCP/10.96.0.10:80', '10.244.1.3:8080', 0, 0);
    // Drift inside the unchanged UDP service is not looked at by an incremental apply...
    kernel.external({
      verb: 'edit',
      kind: 'real-server',
      vs: s.virtualServers[1]!,
      rs: { address: '10.244.1.4', port: 53, weight: 9 },
    });
    const r = await dp.apply(next);
    expect(ops(kernel)).toEqual(['delete real server 10.244.1.3:8080 of TCP/10.96.0.10:80']);
    expect(r.verified).toBe(true);
    // ...but a resync reads everything and repairs it.
    const rs = await dp.resync();
    expect(ops(kernel)).toEqual(['edit real server 10.244.1.4:53 weight 1 of UDP/10.96.0.11:53']);
    expect(rs.verified).toBe(true);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(next));
  });

  it('edits a virtual server whose scheduler or persistence changed (no delete/re-add)', async () => {
    const { kernel, dp } = setup();
    await dp.apply(base());
    const s = base();
    await dp.apply({
      ...s,
      virtualServers: [{ ...s.virtualServers[0]!, scheduler: 'wlc', persistenceTimeout: 10800 }, s.virtualServers[1]!],
    });
    expect(ops(kernel)).toEqual(['edit virtual server TCP/10.96.0.10:80']);
    expect(kernel.ipvsadmSave()).toContain('-A -t 10.96.0.10:80 -s wlc -p 10800\n');
  });

  it('drains a removed TCP real server: weight 0, waits for connections, then deletes', async () => {
    const { kernel, dp, registry } = setup(undefined, undefined, { drainTimeoutMs: 60_000 });
    await dp.apply(base());
    kernel.setConnections('TCP/10.96.0.10:80', '10.244.1.3:8080', 1, 0);
    const s = base();
    const removed = { ...s, virtualServers: [vs('10.96.0.10', 80, [['10.244.1.2', 8080]]), s.virtualServers[1]!] };
    let r = await dp.apply(removed);
    expect(ops(kernel)).toEqual(['edit real server 10.244.1.3:8080 weight 0 of TCP/10.96.0.10:80']);
    expect(r.verified).toBe(true);
    expect(r.notes).toContain('1 real server(s) draining');
    now += 1000;
    r = await dp.resync();
    expect(r.kernelWrites).toBe(0);
    kernel.setConnections('TCP/10.96.0.10:80', '10.244.1.3:8080', 0, 0);
    r = await dp.resync();
    expect(ops(kernel)).toEqual(['delete real server 10.244.1.3:8080 of TCP/10.96.0.10:80']);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(removed));
    // probe23: the drain's end is the dataplane's own schedule, not drift: no repair counted or
    // logged (each removed TCP endpoint made a resync warn "repaired drift" and count one)
    expect(r.kernelWrites).toBe(1);
    expect(r.scheduledWrites).toBe(1);
    expect(dp.driftRepairs).toBe(0);
    expect(await registry.getSingleMetric('switchboard_applier_drift_repairs_total')!.get()).toMatchObject({
      values: [],
    });
  });

  it('deletes a draining TCP real server at the deadline even with open connections', async () => {
    const { kernel, dp } = setup(undefined, undefined, { drainTimeoutMs: 60_000 });
    await dp.apply(base());
    kernel.setConnections('TCP/10.96.0.10:80', '10.244.1.3:8080', 2, 0);
    const removed = {
      ...base(),
      virtualServers: [vs('10.96.0.10', 80, [['10.244.1.2', 8080]]), base().virtualServers[1]!],
    };
    await dp.apply(removed);
    now += 59_999;
    expect((await dp.resync()).kernelWrites).toBe(0);
    now += 1;
    expect(await dp.resync()).toMatchObject({ kernelWrites: 1, scheduledWrites: 1 });
    expect(ops(kernel)).toEqual(['delete real server 10.244.1.3:8080 of TCP/10.96.0.10:80']);
    expect(dp.driftRepairs).toBe(0);
  });

  it('restores a returning endpoint to weight 1 and forgets its drain', async () => {
    const { kernel, dp, store } = setup();
    await dp.apply(base());
    kernel.setConnections('TCP/10.96.0.10:80', '10.244.1.3:8080', 1, 0);
    await dp.apply({
      ...base(),
      virtualServers: [vs('10.96.0.10', 80, [['10.244.1.2', 8080]]), base().virtualServers[1]!],
    });
    expect(Object.keys(store.record.draining)).toHaveLength(1);
    await dp.apply(base());
    expect(ops(kernel)).toEqual(['edit real server 10.244.1.3:8080 weight 1 of TCP/10.96.0.10:80']);
    expect(store.record.draining).toEqual({});
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(base()));
  });

  it('deletes a removed UDP real server at once and clears its conntrack entries', async () => {
    const { kernel, dp } = setup();
    await dp.apply(base());
    kernel.setConnections('UDP/10.96.0.11:53', '10.244.1.4:53', 0, 7);
    await dp.apply({
      ...base(),
      virtualServers: [base().virtualServers[0]!, vs('10.96.0.11', 53, [], { protocol: 'UDP' })],
    });
    expect(ops(kernel)).toEqual([
      'delete real server 10.244.1.4:53 of UDP/10.96.0.11:53',
      'flush-conntrack real server 10.244.1.4:53 of UDP/10.96.0.11:53',
    ]);
    expect(kernel.conntrackFlushes()).toEqual(['UDP/10.96.0.11:53>10.244.1.4:53']);
  });

  it('never touches foreign IPVS services, addresses or sets, before and after, even on cleanup', async () => {
    const kernel = new FakeIpvsKernel();
    kernel.external(
      {
        verb: 'add',
        kind: 'virtual-server',
        vs: {
          protocol: 'TCP',
          address: '192.0.2.1',
          port: 443,
          scheduler: 'wlc',
          schedulerFlags: [],
          persistenceTimeout: 0,
        },
      },
      {
        verb: 'add',
        kind: 'real-server',
        vs: { protocol: 'TCP', address: '192.0.2.1', port: 443 },
        rs: { address: '192.0.2.9', port: 443, weight: 5 },
      },
      { verb: 'create', kind: 'dummy-device', name: 'kube-ipvs0' },
      { verb: 'add', kind: 'address', device: 'kube-ipvs0', address: '192.0.2.1' },
      { verb: 'create', kind: 'ipset', set: { name: 'FOREIGN', type: 'hash:ip', family: 'inet' } },
    );
    const foreignIpvs = '-A -t 192.0.2.1:443 -s wlc\n-a -t 192.0.2.1:443 -r 192.0.2.9:443 -m -w 5\n';
    const { dp } = setup(kernel);
    await dp.apply(base());
    for (const line of foreignIpvs.trim().split('\n')) expect(kernel.ipvsadmSave()).toContain(line + '\n');
    await dp.apply(nodeState([]));
    expect(kernel.ipvsadmSave()).toBe(foreignIpvs);
    expect(kernel.addresses()).toEqual(['192.0.2.1']);
    await dp.cleanup();
    expect(kernel.ipvsadmSave()).toBe(foreignIpvs);
    expect(kernel.addresses()).toEqual(['192.0.2.1']);
    expect(kernel.ipsetSave()).toBe('create FOREIGN hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12\n');
    expect(formatIpsetSave(base())).toContain('create KUBE-LOAD-BALANCER-FW hash:ip,port');
    expect(kernel.iptablesSave()).not.toContain('KUBE-');
  });

  it('cleanup removes everything it created, including the dummy device', async () => {
    const { kernel, dp } = setup();
    await dp.apply(base());
    const r = await dp.cleanup();
    expect(r.kernelWrites).toBeGreaterThan(0);
    expect(kernel.ipvsadmSave()).toBe('');
    expect(kernel.ipsetSave()).toBe('');
    expect(kernel.addresses()).toEqual([]);
    expect((await kernel.read({ ipsets: [], sysctls: [], netfilterChains: {} })).dummyDevice).toBe(false);
  });

  it('keeps owned services and addresses inside excludeCIDRs', async () => {
    const { kernel, dp } = setup();
    await dp.apply(base());
    const s = nodeState([
      vs('10.96.0.10', 80, [
        ['10.244.1.2', 8080],
        ['10.244.1.3', 8080],
      ]),
    ]);
    const r = await dp.apply({ ...s, settings: { ...s.settings, excludeCIDRs: ['10.96.0.11/32'] } });
    expect(kernel.ipvsadmSave()).toContain('-A -u 10.96.0.11:53 -s rr');
    expect(kernel.addresses()).toContain('10.96.0.11');
    expect(r.notes).toContain('kept UDP/10.96.0.11:53: inside excludeCIDRs');
  });

  it('resync repairs drift behind our back and counts it', async () => {
    const { kernel, dp, registry } = setup();
    await dp.apply(base());
    kernel.external(
      { verb: 'delete', kind: 'virtual-server', vs: { protocol: 'TCP', address: '10.96.0.10', port: 80 } },
      { verb: 'delete', kind: 'ipset-entry', set: 'KUBE-IPVS-IPS', type: 'hash:ip', entry: '10.96.0.11' },
      { verb: 'set', kind: 'sysctl', name: 'net.ipv4.vs.conntrack', value: '0' },
    );
    const r = await dp.resync();
    expect(r.verified).toBe(true);
    expect(ops(kernel).sort()).toEqual([
      'add 10.96.0.11 in ipset KUBE-IPVS-IPS',
      'add real server 10.244.1.2:8080 weight 1 of TCP/10.96.0.10:80',
      'add real server 10.244.1.3:8080 weight 1 of TCP/10.96.0.10:80',
      'add virtual server TCP/10.96.0.10:80',
      'set sysctl net.ipv4.vs.conntrack=1',
    ]);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(base()));
    expect((await registry.getSingleMetric('switchboard_applier_drift_repairs_total')!.get()).values[0]!.value).toBe(1);
    expect((await dp.resync()).kernelWrites).toBe(0);
    expect(dp.driftRepairs).toBe(1);
  });

  it('a resync asked to give way stops after its read, before any write; the next apply is still a change, the next resync repairs', async () => {
    const kernel = new FakeIpvsKernel();
    let fullReads = 0;
    const giveWay = new AbortController();
    const counting = Object.assign(Object.create(kernel) as FakeIpvsKernel, {
      read: async (o: Parameters<FakeIpvsKernel['read']>[0]) => {
        fullReads++;
        const r = await kernel.read(o);
        giveWay.abort(); // the apply arrives while the resync reads
        return r;
      },
      run: (tx: Parameters<FakeIpvsKernel['run']>[0]) => kernel.run(tx),
    });
    const { dp } = setup(counting);
    await dp.apply(base());
    kernel.external({
      verb: 'delete',
      kind: 'virtual-server',
      vs: { protocol: 'TCP', address: '10.96.0.10', port: 80 },
    });
    const drifted = kernel.ipvsadmSave();
    const transactions = kernel.transactions;
    fullReads = 0;
    await expect(dp.resync({ yieldTo: giveWay.signal })).rejects.toBeInstanceOf(ResyncYielded);
    expect(fullReads).toBe(1);
    expect(kernel.transactions).toBe(transactions);
    expect(kernel.ipvsadmSave()).toBe(drifted);
    // the apply it gave way to is planned against the model, as before the resync: no full read
    fullReads = 0;
    const s = base();
    const next = {
      ...s,
      virtualServers: [
        ...s.virtualServers.slice(0, 1),
        vs('10.96.0.11', 53, [['10.244.1.5', 53]], { protocol: 'UDP' }),
      ],
    };
    expect((await dp.apply(next)).verified).toBe(true);
    expect(fullReads).toBe(0);
    // the resync after it runs to its end and repairs the drift
    const r = await dp.resync({ yieldTo: new AbortController().signal });
    expect(r).toMatchObject({ verified: true });
    expect(r.kernelWrites).toBeGreaterThan(0);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(next));
  });

  it('a resync whose kernel read stops when asked to give way (AbortError) gives way, nothing written; a read that fails on its own fails the resync', async () => {
    const kernel = new FakeIpvsKernel();
    const giveWay = new AbortController();
    let reads = 0;
    let failRead = false;
    const stopping = Object.assign(Object.create(kernel) as FakeIpvsKernel, {
      read: async (o: Parameters<FakeIpvsKernel['read']>[0], signal?: AbortSignal) => {
        reads++;
        if (failRead) throw new Error('netlink: EPERM');
        giveWay.abort(); // the apply arrives during the read, which stops between its steps
        signal?.throwIfAborted();
        return kernel.read(o);
      },
      run: (tx: Parameters<FakeIpvsKernel['run']>[0]) => kernel.run(tx),
    });
    const { dp } = setup(stopping);
    await dp.apply(base());
    const transactions = kernel.transactions;
    reads = 0;
    await expect(dp.resync({ yieldTo: giveWay.signal })).rejects.toBeInstanceOf(ResyncYielded);
    expect(reads).toBe(1);
    expect(kernel.transactions).toBe(transactions);
    failRead = true;
    await expect(dp.resync({ yieldTo: new AbortController().signal })).rejects.toThrow(/^netlink: EPERM$/);
  });

  it('a restarted applier (new instance, same record) makes zero writes', async () => {
    const kernel = new FakeIpvsKernel();
    const store = new MemoryOwnershipStore();
    await setup(kernel, store).dp.apply(base());
    const r = await setup(kernel, store).dp.apply(base());
    expect(r.kernelWrites).toBe(0);
  });

  it('refuses a corrupt state without writing anything', async () => {
    const { kernel, dp } = setup();
    await dp.apply(base());
    await expectCorruptRefused(kernel, (s) => dp.apply(s), base());
  });

  it('rebuilds a large membership change in a temp set and swaps it in', async () => {
    const { kernel, dp } = setup(undefined, undefined, { swapThreshold: 5 });
    await dp.apply(base());
    const many = Array.from({ length: 20 }, (_, i) => vs(`10.96.1.${i}`, 80, [['10.244.1.2', 8080]]));
    const s = nodeState(many);
    await dp.apply(s);
    const d = ops(kernel);
    expect(d.filter((x) => x.startsWith('swap ipsets KUBE-CLUSTER-IP '))).toHaveLength(1);
    expect(d.some((x) => x.startsWith('delete ') && x.includes('in ipset KUBE-CLUSTER-IP'))).toBe(false);
    expect(kernel.ipsetSave()).toBe(formatIpsetSave(s));
    expect((await dp.apply(s)).kernelWrites).toBe(0);
  });
});

describe('IpvsDataplane.retire: ipvs mode behind nftables keeps what established connections need', () => {
  const VS = 'TCP/10.96.0.10:80';
  const withThird = (): NodeState =>
    nodeState([
      vs('10.96.0.10', 80, [
        ['10.244.1.2', 8080],
        ['10.244.1.3', 8080],
      ]),
      vs('10.96.0.11', 53, [['10.244.1.4', 53]], { protocol: 'UDP' }),
      vs('10.96.0.12', 443, [['10.244.1.5', 8443]]),
    ]);

  it('keeps a TCP service only while a connection holds it: that endpoint at weight 0, the rest removed at once', async () => {
    const { kernel, dp, store } = setup(undefined, undefined, { drainTimeoutMs: 60_000 });
    const s = withThird();
    await dp.apply(s);
    kernel.setConnections(VS, '10.244.1.3:8080', 1, 0);
    // a UDP flow: nothing to wait for (it re-balances onto nftables once IPVS lets it go)
    kernel.setConnections('UDP/10.96.0.11:53', '10.244.1.4:53', 1, 0);
    const r = await dp.retire(s);
    expect(r).toMatchObject({ verified: true, removed: false, connections: 1 });
    expect(r.scheduledWrites).toBe(r.kernelWrites);
    // the held service stays, its VIP bound; its idle endpoint, the UDP and the idle TCP service go
    expect(kernel.ipvsadmSave()).toBe(`-A -t 10.96.0.10:80 -s rr\n-a -t 10.96.0.10:80 -r 10.244.1.3:8080 -m -w 0\n`);
    expect(kernel.addresses()).toEqual(['10.96.0.10']);
    expect(Object.keys(store.record.draining)).toEqual([`${VS}>10.244.1.3:8080`]);
    expect(kernel.iptablesSave()).toContain('-A KUBE-SERVICES'); // the glue stays while it drains

    // the connection still open: nothing to do; then closed: everything of ours goes
    now += 1000;
    expect(await dp.retire(s)).toMatchObject({ verified: true, removed: false, connections: 1, kernelWrites: 0 });
    kernel.setConnections(VS, '10.244.1.3:8080', 0, 0);
    const gone = await dp.retire(s);
    expect(gone).toMatchObject({ verified: true, removed: true, connections: 0 });
    expect(kernel.ipvsadmSave()).toBe('');
    expect(kernel.addresses()).toEqual([]);
    expect(kernel.ipsetSave()).toBe('');
    expect(kernel.iptablesSave()).not.toMatch(/KUBE-/);
    expect(store.record).toMatchObject({ virtualServers: [], addresses: [], ipsets: [], draining: {} });
  });

  it('removes everything at once when no connection is open', async () => {
    const { kernel, dp } = setup();
    await dp.apply(withThird());
    const r = await dp.retire(withThird());
    expect(r).toMatchObject({ verified: true, removed: true, connections: 0 });
    expect(kernel.ipvsadmSave()).toBe('');
    expect(kernel.addresses()).toEqual([]);
  });

  it('adds nothing while retiring and deletes a service gone from the state at once', async () => {
    const { kernel, dp } = setup(undefined, undefined, { drainTimeoutMs: 60_000 });
    await dp.apply(withThird());
    kernel.setConnections(VS, '10.244.1.2:8080', 1, 0);
    kernel.setConnections('TCP/10.96.0.12:443', '10.244.1.5:8443', 1, 0);
    const later = nodeState([
      vs('10.96.0.10', 80, [['10.244.1.9', 8080]]), // endpoints changed since the switch
      vs('10.96.0.13', 80, [['10.244.1.7', 8080]]), // a service new since the switch
    ]);
    const r = await dp.retire(later);
    expect(r).toMatchObject({ verified: true, removed: false, connections: 1 });
    expect(kernel.ipvsadmSave()).toBe(`-A -t 10.96.0.10:80 -s rr\n-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0\n`);
    expect(kernel.addresses()).toEqual(['10.96.0.10']);
  });

  it('keeps the drain deadline across a restart (the ownership record), then removes all with connections open', async () => {
    const kernel = new FakeIpvsKernel();
    const store = new MemoryOwnershipStore();
    const first = setup(kernel, store, { drainTimeoutMs: 60_000 });
    await first.dp.apply(withThird());
    kernel.setConnections(VS, '10.244.1.3:8080', 2, 1);
    expect(await first.dp.retire(withThird())).toMatchObject({ removed: false, connections: 3 });
    await first.dp.close();
    const restarted = setup(kernel, store, { drainTimeoutMs: 60_000 }).dp;
    now += 59_999;
    const r = await restarted.retire(withThird());
    expect(r).toMatchObject({ removed: false, kernelWrites: 0 });
    now += 1;
    expect(await restarted.retire(withThird())).toMatchObject({ verified: true, removed: true });
    expect(kernel.ipvsadmSave()).toBe('');
  });

  it('a switch back while retiring restores the state in full (the draining endpoint at its weight again)', async () => {
    const { kernel, dp, store } = setup(undefined, undefined, { drainTimeoutMs: 60_000 });
    const s = withThird();
    await dp.apply(s);
    kernel.setConnections(VS, '10.244.1.3:8080', 1, 0);
    await dp.retire(s);
    const r = await dp.apply(s);
    expect(r.verified).toBe(true);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(s));
    expect(kernel.addresses()).toEqual(['10.96.0.10', '10.96.0.11', '10.96.0.12']);
    expect(store.record.draining).toEqual({});
    expect((await dp.resync()).kernelWrites).toBe(0);
  });

  it('a corrupt state to retire behind is refused without a write: what drains keeps draining', async () => {
    const { kernel, dp } = setup(undefined, undefined, { drainTimeoutMs: 60_000 });
    await dp.apply(withThird());
    kernel.setConnections(VS, '10.244.1.3:8080', 1, 0);
    await dp.retire(withThird());
    await expectCorruptRefused(kernel, (s) => dp.retire(s), withThird());
    expect(await dp.retire(withThird())).toMatchObject({ verified: true, removed: false, connections: 1 });
  });

  it('a resync after retire has no state to repair towards', async () => {
    const { kernel, dp } = setup();
    await dp.apply(withThird());
    kernel.setConnections(VS, '10.244.1.3:8080', 1, 0);
    await dp.retire(withThird());
    expect(await dp.resync()).toMatchObject({ verified: false, kernelWrites: 0, notes: [NOTHING_VERIFIED_NOTE] });
  });
});
