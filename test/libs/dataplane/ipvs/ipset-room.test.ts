// A hash ipset takes at most its maxelem entries: the kernel's default is 65,536, and kube-proxy
// creates its sets with it, so KUBE-CLUSTER-IP (one entry per service port) or KUBE-EXTERNAL-IP (per
// external IP and port) past it refused every further entry. The ipvs dataplane sizes a set it
// creates for what it holds, and rebuilds one that is too small. The fake kernel refuses an entry
// past maxelem (IPSET_ERR_HASH_FULL) as the kernel does, never later (the kernel may take a few more
// first: test/libs/netlink/ipset-room.test.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { describeOp } from '../../../../libs/dataplane/ipvs/kernel-op.ts';
import { MemoryOwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { DEFAULT_IPSET_MAXELEM, ipsetRoomFor, type IpsetState, type NodeState } from '../../../../libs/model/index.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { nodeState } from './node-state-fixture.ts';

const open: IpvsDataplane[] = [];
afterEach(async () => {
  for (const dp of open.splice(0)) await dp.close();
});

function setup(kernel = new FakeIpvsKernel()) {
  const dp = new IpvsDataplane({ kernel, store: new MemoryOwnershipStore(), kernelRelease: '6.1.0' });
  open.push(dp);
  return { kernel, dp };
}

/** `n` service ports in KUBE-EXTERNAL-IP (external IP, port), sorted as the planner sorts them. */
function externalPorts(n: number): IpsetState {
  const entries = Array.from(
    { length: n },
    (_, i) => `192.0.${2 + Math.floor(i / 60_000)}.${1 + (Math.floor(i / 250) % 250)},tcp:${1000 + (i % 250)}`,
  ).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { name: 'KUBE-EXTERNAL-IP', type: 'hash:ip,port', family: 'inet', entries };
}

const withSet = (set: IpsetState): NodeState => {
  const base = nodeState([]);
  return { ...base, ipsets: [...base.ipsets, set] };
};

describe('ipset room', () => {
  it('sizes: the default up to 65,536 entries, then twice the entries to the next power of two', () => {
    expect(ipsetRoomFor(0)).toBeUndefined();
    expect(ipsetRoomFor(DEFAULT_IPSET_MAXELEM)).toBeUndefined();
    expect(ipsetRoomFor(DEFAULT_IPSET_MAXELEM + 1)).toBe(262_144);
    expect(ipsetRoomFor(70_000)).toBe(262_144);
    expect(ipsetRoomFor(140_000)).toBe(524_288);
  });

  it('a set of 70,000 entries is created with room for them, and an entry more is taken', async () => {
    const { kernel, dp } = setup();
    const s = withSet(externalPorts(70_000));
    const r = await dp.apply(s);
    expect(r.verified).toBe(true);
    const created = kernel.lastTransaction?.ops.find(
      (o) => o.kind === 'ipset' && o.verb === 'create' && o.set.name === 'KUBE-EXTERNAL-IP',
    );
    expect(created).toMatchObject({ maxElem: 262_144 });
    const more = withSet(externalPorts(70_001));
    expect(await dp.apply(more)).toMatchObject({ verified: true, kernelWrites: 1 });
    expect((await dp.resync()).kernelWrites).toBe(0);
  });

  it('a set made with the default size (by kube-proxy, or before) is rebuilt with room once it would overflow, swapped in whole', async () => {
    const { kernel, dp } = setup();
    await dp.apply(withSet(externalPorts(60_000)));
    const small = kernel.lastTransaction?.ops.find(
      (o) => o.kind === 'ipset' && o.verb === 'create' && o.set.name === 'KUBE-EXTERNAL-IP',
    );
    expect(small).not.toHaveProperty('maxElem'); // the kernel's default, as before
    const r = await dp.apply(withSet(externalPorts(70_000)));
    expect(r.verified).toBe(true);
    expect(r.notes).toContain(
      'ipset KUBE-EXTERNAL-IP takes at most 65536 entries, 70000 wanted: rebuilt with maxelem 262144',
    );
    const d = kernel.lastTransaction?.ops.map(describeOp) ?? [];
    expect(d.filter((x) => x.startsWith('swap ipsets KUBE-EXTERNAL-IP '))).toHaveLength(1);
    expect((await dp.resync()).kernelWrites).toBe(0);
  });
});
