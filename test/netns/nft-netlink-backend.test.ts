// nftables over netlink (NftNetlinkRunner) against the real kernel, in a netns this test creates:
// random sequences of node states are applied through both backends, each into its own table,
// and after every step `nft list table` must print the same text for both, both runners must
// read back the same inventory from both tables, and a resync over netlink must write nothing.
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeState } from '../../libs/model/index.ts';
import { TestNetns } from '../libs/netlink/support/netns.ts';
import { nodeState, type VsSpec } from './support/node-state-builder.ts';
import type { StepResult } from './support/nft-backend-scenarios.ts';

const SCENARIOS = fileURLToPath(new URL('./support/nft-backend-scenarios.ts', import.meta.url));

const v4 = fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 255 })).map(([a, b]) => `10.${a}.0.${b}`);
const v6 = fc.integer({ min: 1, max: 0xffff }).map((x) => `fd00:1::${x.toString(16)}`);
const cidr4 = fc.constantFrom('10.0.0.0/8', '192.168.0.0/16', '172.16.0.0/12', '203.0.113.7/32', '10.1.0.0/16');
const cidr6 = fc.constantFrom('fd00::/8', '2001:db8::/32', 'fd00:1::/60');

const service = (i: number) =>
  fc
    .record({
      v6: fc.boolean(),
      protocol: fc.constantFrom('TCP', 'UDP') as fc.Arbitrary<'TCP' | 'UDP'>,
      role: fc.constantFrom('cluster-ip', 'node-port', 'load-balancer') as fc.Arbitrary<VsSpec['role']>,
      localOnly: fc.boolean(),
      persistence: fc.constantFrom(0, 0, 60, 10800),
      endpoints: fc.integer({ min: 0, max: 4 }),
      ranges: fc.integer({ min: 0, max: 3 }),
      seed: fc.integer({ min: 0, max: 1000 }),
      // Local policy, short-circuit shapes: cluster-wide endpoints beside the local ones, or
      // none here (the endpoints are then the cluster-wide fallback).
      localShape: fc.constantFrom('plain', 'cluster', 'no-local') as fc.Arbitrary<'plain' | 'cluster' | 'no-local'>,
    })
    .chain((s) =>
      fc
        .tuple(
          fc.uniqueArray(s.v6 ? v6 : v4, { minLength: s.endpoints, maxLength: s.endpoints }),
          fc.uniqueArray(s.v6 ? cidr6 : cidr4, { minLength: s.ranges, maxLength: s.ranges }),
        )
        .map(
          ([eps, ranges]): VsSpec => ({
            servicePort: `ns${i}/svc${s.seed % 7}:p`,
            address: s.v6 ? `fd00:96::${i + 1}` : `10.96.0.${i + 1}`,
            port: s.role === 'node-port' ? 30000 + i : 80 + (s.seed % 3),
            protocol: s.protocol,
            role: s.role,
            localOnly: s.localOnly,
            persistenceTimeout: s.persistence,
            sourceRanges: s.role === 'load-balancer' ? ranges : [],
            endpoints: eps.map((e) => (s.v6 ? `${e}:8080` : `${e}:8080`)),
            ...(s.localOnly && s.role !== 'cluster-ip' && s.localShape === 'cluster'
              ? { clusterEndpoints: [...eps, s.v6 ? 'fd00:2::1' : '10.4.0.1'].map((e) => `${e}:8080`) }
              : {}),
            ...(s.localOnly && eps.length > 0 && s.localShape === 'no-local' ? { noLocalEndpoints: true } : {}),
          }),
        ),
    );

const state: fc.Arbitrary<NodeState> = fc
  .record({
    n: fc.integer({ min: 0, max: 6 }),
    masqueradeAll: fc.boolean(),
    clusterCIDR: fc.constantFrom('', '10.0.0.0/8', '10.0.0.0/12', 'fd00::/60'),
  })
  .chain(({ n, masqueradeAll, clusterCIDR }) =>
    fc
      .tuple(...Array.from({ length: n }, (_, i) => service(i)))
      .map((specs) => nodeState(specs, { masqueradeAll, clusterCIDR })),
  );

let ns: TestNetns;
beforeAll(async () => {
  ns = await TestNetns.create('nftnl');
});
afterAll(async () => {
  await ns?.destroy();
});

describe('nftables over netlink', () => {
  it('produces the same `nft list table` as the nft path for random state sequences', async () => {
    const seed = Number(process.env.SWITCHBOARD_NFT_SEED ?? Date.now() % 100_000);
    const states = fc.sample(state, { numRuns: 16, seed });
    const steps = await ns.run<StepResult[]>(SCENARIOS, 'runBothBackends', [states], { timeoutMs: 240_000 });
    expect(steps).toHaveLength(states.length);
    steps.forEach((s, i) => {
      const where = `seed ${seed} (SWITCHBOARD_NFT_SEED), step ${i}`;
      expect(s.netlinkText, where).toBe(s.nftText);
      expect(s.netlinkText, where).toMatch(/chain nat-prerouting/);
      expect(
        { agree: s.readBacksAgree, resync: s.netlinkResyncWrites, verified: s.verified, writes: s.netlinkWrites },
        where,
      ).toEqual({ agree: true, resync: 0, verified: true, writes: s.nftWrites });
    });
  }, 300_000);

  it('a load too large for one batch goes in several, hooks last, and ends identical', async () => {
    const many = nodeState(
      Array.from(
        { length: 120 },
        (_, i): VsSpec => ({
          servicePort: `ns/s${i}:p`,
          address: `10.96.1.${i}`,
          port: 80,
          persistenceTimeout: i % 3 === 0 ? 60 : 0,
          endpoints: [`10.1.${i}.1:8080`, `10.1.${i}.2:8080`, `10.1.${i}.3:8080`],
        }),
      ),
      { clusterCIDR: '10.0.0.0/8' },
    );
    const steps = await ns.run<StepResult[]>(SCENARIOS, 'runBothBackends', [[many], 16 * 1024], { timeoutMs: 240_000 });
    expect(steps[0]!.netlinkBatches).toBeGreaterThan(3);
    expect(steps[0]!.netlinkText).toBe(steps[0]!.nftText);
    expect({
      agree: steps[0]!.readBacksAgree,
      resync: steps[0]!.netlinkResyncWrites,
      verified: steps[0]!.verified,
    }).toEqual({ agree: true, resync: 0, verified: true });
  }, 300_000);
});
