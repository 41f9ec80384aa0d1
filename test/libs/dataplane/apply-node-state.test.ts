import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { applyNodeState } from '../../../libs/dataplane/apply-node-state.ts';
import { withNotes } from '../../../libs/dataplane/create-dataplane.ts';
import { DryRunDataplane } from '../../../libs/dataplane/dry-run-dataplane.ts';
import { FakeIpvsKernel } from '../../support/fake-ipvs-kernel.ts';
import { IpvsDataplane } from '../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { MemoryOwnershipStore } from '../../../libs/dataplane/ipvs/ownership-record.ts';
import { nodeStateHash } from '../../../libs/planner/index.ts';
import { nodeState, vs } from './ipvs/node-state-fixture.ts';

const state = nodeState([
  vs('10.96.0.10', 80, [
    ['10.244.1.2', 8080],
    ['10.244.1.3', 8080],
  ]),
  vs('10.96.0.10', 443, [['10.244.1.2', 8443]], { servicePort: 'default/svc-80:https' }),
  vs('10.96.0.11', 53, [['10.244.1.4', 53]], { protocol: 'UDP', servicePort: 'kube-system/dns:dns' }),
]);

describe('applyNodeState', () => {
  it('summarizes what one apply programmed, with the ACK hash, and is idempotent', async () => {
    const dp = new IpvsDataplane({
      kernel: new FakeIpvsKernel(),
      store: new MemoryOwnershipStore(),
      kernelRelease: '6.1.0',
      registry: new Registry(),
    });
    const first = await applyNodeState(dp, state);
    expect(first).toMatchObject({
      mode: 'ipvs',
      node: 'n1',
      services: 2,
      virtualServers: 3,
      realServers: 4,
      verified: true,
      hash: nodeStateHash(state),
    });
    expect(first.writes).toBeGreaterThan(0);
    expect((await applyNodeState(dp, state)).writes).toBe(0);
    await dp.close();
  });

  it('carries fallback notes from withNotes (what auto mode adds when IPVS is missing)', async () => {
    const dp = withNotes(new DryRunDataplane(), ['auto: ipvs unavailable (test); falling back to nftables']);
    const s = await applyNodeState(dp, state);
    expect(s.notes).toEqual(['auto: ipvs unavailable (test); falling back to nftables']);
    expect(s.mode).toBe('dry-run');
  });
});
