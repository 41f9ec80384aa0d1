// Netlink has no transactions: when the kernel refuses an op, what it accepted before stays. These
// tests run the dataplane against the faithful fake (test/support/fake-ipvs-kernel.ts) with
// refusals injected, and check that the dataplane says so, keeps owning what it created, and
// converges on the next cycle; and that the applier NACKs and then ACKs over a real nats-server.
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { describeOp } from '../../../../libs/dataplane/ipvs/kernel-op.ts';
import { KernelTransaction, TransactionError } from '../../../../libs/dataplane/ipvs/kernel-transaction.ts';
import { MemoryOwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { DEFAULT_PROXY_CONFIG, type NodeState } from '../../../../libs/model/index.ts';
import { formatIpvsadm, nodeStateHash, renderNodeState } from '../../../../libs/planner/index.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { startBusWorld, type BusWorld } from '../../bus/bus-harness.ts';
import { node, service, VersionMaker } from '../../bus/fixtures.ts';
import { formatIpsetSave, nodeState, vs } from './node-state-fixture.ts';

const open: IpvsDataplane[] = [];
let world: BusWorld | undefined;
afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
  await world?.close();
  world = undefined;
});

function setup(kernel = new FakeIpvsKernel(), store = new MemoryOwnershipStore()) {
  const dp = new IpvsDataplane({
    kernel,
    store,
    kernelRelease: '6.1.0',
    registry: new Registry(),
    clock: () => 1_000_000,
  });
  open.push(dp);
  return { kernel, store, dp };
}

const v1 = (): NodeState =>
  nodeState([
    vs('10.96.0.10', 80, [
      ['10.244.1.2', 8080],
      ['10.244.1.3', 8080],
    ]),
    vs('10.96.0.11', 80, [
      ['10.244.1.4', 8080],
      ['10.244.1.5', 8080],
    ]),
    vs('10.96.0.12', 80, [['10.244.1.6', 8080]]),
  ]);
/** v1 with two endpoints added, one service changed in place and one removed. */
const v2 = (): NodeState =>
  nodeState([
    vs('10.96.0.10', 80, [
      ['10.244.1.2', 8080],
      ['10.244.1.3', 8080],
      ['10.244.2.1', 8080],
    ]),
    vs('10.96.0.11', 80, [
      ['10.244.1.4', 8080],
      ['10.244.1.5', 8080],
      ['10.244.2.2', 8080],
    ]),
  ]);
const isRealServer = (address: string) => (op: Parameters<typeof describeOp>[0]) =>
  op.kind === 'real-server' && op.rs.address === address;

describe('FakeIpvsKernel fails like netlink', () => {
  const svc = {
    protocol: 'TCP' as const,
    address: '10.96.0.1',
    port: 80,
    scheduler: 'rr',
    schedulerFlags: [],
    persistenceTimeout: 0,
  };
  const rs = (n: number) => ({
    verb: 'add' as const,
    kind: 'real-server' as const,
    vs: svc,
    rs: { address: `10.1.0.${n}`, port: 80, weight: 1 },
  });

  it('a refusal at the K-th op keeps the ops before it and the rest of its concurrent group, and runs nothing after', async () => {
    const k = new FakeIpvsKernel().refuse({ at: 2, errno: 'ENOMEM' });
    const tx = new KernelTransaction()
      .add({ verb: 'add', kind: 'virtual-server', vs: svc })
      .add(rs(1))
      .add(rs(2))
      .add(rs(3))
      .add({ verb: 'add', kind: 'address', device: 'kube-ipvs0', address: '10.96.0.1' });
    const err = await k.run(tx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionError);
    expect((err as TransactionError).applied).toBe(3);
    expect((err as Error).message).toBe(
      'add real server 10.1.0.2:80 weight 1 of TCP/10.96.0.1:80: add real server 10.1.0.2:80 weight 1 of TCP/10.96.0.1:80: kernel error 12 (ENOMEM)',
    );
    // 10.1.0.3 went out with 10.1.0.2 (same group) and was accepted; the address never went out.
    expect(k.ipvsadmSave()).toBe(
      '-A -t 10.96.0.1:80 -s rr\n-a -t 10.96.0.1:80 -r 10.1.0.1:80 -m -w 1\n-a -t 10.96.0.1:80 -r 10.1.0.3:80 -m -w 1\n',
    );
    expect(k.addresses()).toEqual([]);
    expect(k.writes).toBe(3);
    // `at` refusals last one run
    await k.run(new KernelTransaction().add(rs(2)));
    expect(k.ipvsadmSave()).toContain('10.1.0.2:80');
  });

  it("refuses every op on a chosen object with the given errno until cleared, and the kernel's own errors carry theirs", async () => {
    const k = new FakeIpvsKernel().refuse({ match: isRealServer('10.1.0.9'), errno: 'EINVAL' });
    await k.run(new KernelTransaction().add({ verb: 'add', kind: 'virtual-server', vs: svc }));
    for (let i = 0; i < 2; i++) await expect(k.run(new KernelTransaction().add(rs(9)))).rejects.toThrow(/\(EINVAL\)$/);
    await expect(
      k.run(
        new KernelTransaction().add({
          verb: 'delete',
          kind: 'real-server',
          vs: svc,
          rs: { address: '10.1.0.7', port: 80 },
        }),
      ),
    ).rejects.toThrow(/\(ENOENT\)$/);
    await expect(
      k.run(
        new KernelTransaction().add({
          verb: 'add',
          kind: 'ipset-entry',
          set: 'NOPE',
          type: 'hash:ip',
          entry: '10.0.0.1',
        }),
      ),
    ).rejects.toThrow(/\(ENOENT\)$/);
    k.clearRefusals();
    await k.run(new KernelTransaction().add(rs(9)));
    expect(k.ipvsadmSave()).toContain('10.1.0.9:80');
  });
});

describe('IpvsDataplane recovers from a partial failure', () => {
  it('from empty: the error names the refused op and errno, what went in stays owned, and the next apply adds only the rest', async () => {
    const { kernel, store, dp } = setup();
    kernel.refuse({ match: isRealServer('10.244.1.4'), errno: 'ENOMEM', times: 1 });
    await expect(dp.apply(v1())).rejects.toThrow(
      'add real server 10.244.1.4:8080 weight 1 of TCP/10.96.0.11:80: add real server 10.244.1.4:8080 weight 1 of TCP/10.96.0.11:80: kernel error 12 (ENOMEM)',
    );
    // Services and the other real servers were accepted and stay; nothing after the group ran.
    expect(kernel.ipvsadmSave()).toContain('-A -t 10.96.0.12:80 -s rr');
    expect(kernel.ipvsadmSave()).toContain('-r 10.244.1.5:8080');
    expect(kernel.ipvsadmSave()).not.toContain('-r 10.244.1.4:8080');
    expect(kernel.addresses()).toEqual([]);
    // The superset record was saved before the run: everything that may exist is ours.
    expect((await store.load()).virtualServers).toEqual([
      'TCP/10.96.0.10:80',
      'TCP/10.96.0.11:80',
      'TCP/10.96.0.12:80',
    ]);
    const writesBefore = kernel.writes;
    const r = await dp.apply(v1());
    expect(r.verified).toBe(true);
    const rest = kernel.lastTransaction!.ops.map(describeOp);
    expect(rest).toContain('add real server 10.244.1.4:8080 weight 1 of TCP/10.96.0.11:80');
    expect(rest.filter((d) => d.startsWith('add virtual server'))).toEqual([]);
    expect(kernel.writes - writesBefore).toBe(r.kernelWrites);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(v1()));
    expect(kernel.ipsetSave()).toBe(formatIpsetSave(v1()));
    expect((await dp.apply(v1())).kernelWrites).toBe(0);
  });

  it('an incremental apply refused halfway: resync puts back the last applied state, and the change applies after', async () => {
    const { kernel, dp } = setup();
    expect((await dp.apply(v1())).verified).toBe(true);
    kernel.refuse({ match: isRealServer('10.244.2.2'), errno: 'EINVAL', times: 1 });
    await expect(dp.apply(v2())).rejects.toThrow(/10\.244\.2\.2:8080.*\(EINVAL\)$/);
    // The other new endpoint went in with it; the removal of 10.96.0.12 (a later group) did not.
    expect(kernel.ipvsadmSave()).toContain('-r 10.244.2.1:8080');
    expect(kernel.ipvsadmSave()).toContain('-A -t 10.96.0.12:80');
    const fix = await dp.resync();
    expect(fix).toMatchObject({ verified: true });
    // the set entries removed before the refusal come back; the endpoint that went in goes
    // (graceful termination: no connections, so deleted at once)
    expect(kernel.lastTransaction!.ops.map(describeOp).sort()).toEqual([
      'add 10.96.0.12 in ipset KUBE-IPVS-IPS',
      'add 10.96.0.12,tcp:80 in ipset KUBE-CLUSTER-IP',
      'delete real server 10.244.2.1:8080 of TCP/10.96.0.10:80',
    ]);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(v1()));
    expect(dp.driftRepairs).toBe(1);
    const r = await dp.apply(v2());
    expect(r.verified).toBe(true);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(v2()));
    expect((await dp.resync()).kernelWrites).toBe(0);
  });

  it('an object the kernel keeps refusing fails every apply while the rest is programmed; once accepted, one write finishes it', async () => {
    const { kernel, dp } = setup();
    await dp.apply(v1());
    kernel.refuse({ match: isRealServer('10.244.2.2'), errno: 'EINVAL' });
    for (let i = 0; i < 3; i++) await expect(dp.apply(v2())).rejects.toThrow(/\(EINVAL\)$/);
    expect(kernel.ipvsadmSave()).toContain('-r 10.244.2.1:8080');
    kernel.clearRefusals();
    const r = await dp.apply(v2());
    expect(r.verified).toBe(true);
    expect(kernel.lastTransaction!.ops.map(describeOp).sort()).toEqual(
      [
        'add real server 10.244.2.2:8080 weight 1 of TCP/10.96.0.11:80',
        'delete virtual server TCP/10.96.0.12:80',
        'delete address 10.96.0.12 on kube-ipvs0',
      ].sort(),
    );
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(v2()));
  });

  it("the applier NACKs a refused apply with the kernel's errno and ACKs once the retry converges (real nats-server)", async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    const v = m.next({ upsertServices: [service(1), service(2)], upsertNodes: [node('n1')] });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const kernel = new FakeIpvsKernel().refuse({ match: isRealServer('10.1.2.2'), errno: 'EINVAL', times: 1 });
    const { dp } = setup(kernel);
    const a = await world.startApplier('n1', { dataplane: dp });
    const nack = await world.received.waitFor((e) => e.kind === 'nack', 'nack');
    expect(nack.v).toMatchObject({ node: 'n1', version: 1, lastGoodVersion: 0 });
    expect(nack.kind === 'nack' && nack.v.error).toMatch(/^apply: add real server 10\.1\.2\.2:8080 .*\(EINVAL\)$/);
    // The retry (retryMs 200) runs a full cycle against what the refused run left.
    const ack = await world.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack after retry');
    const programmed = kernel.ipvsadmSave();
    expect(programmed).toContain('-r 10.1.2.2:8080');
    expect(ack.kind === 'ack' && ack.v.kernelWrites).toBeGreaterThan(0);
    expect(ack.kind === 'ack' && ack.v.kernelWrites).toBeLessThan(kernel.writes);
    expect(a.session.status()).toMatchObject({ lastError: '', applied: { version: 1 } });
    const want = renderNodeState(m.index, 'n1', DEFAULT_PROXY_CONFIG);
    expect(ack.kind === 'ack' && ack.v.nodeStateHash).toBe(nodeStateHash(want));
    expect(programmed).toBe(formatIpvsadm(want));
  });
});
