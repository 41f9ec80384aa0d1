// What a verify after an apply reads back (touchedScope) and how it compares (scopedDrift).
// The same against the kernel, with damage made between commit and read: test/netns/nft-verify-scope.test.ts.
import { describe, expect, it } from 'vitest';
import { renderNftObjects } from '../../../../libs/dataplane/nftables/nft-objects.ts';
import { inventoryOf, planFullLoad, planNftUpdate } from '../../../../libs/dataplane/nftables/plan-nft-update.ts';
import { scopedDrift, touchedScope } from '../../../../libs/dataplane/nftables/nft-verify.ts';
import { summarizeRules } from '../../../../libs/dataplane/nftables/nft-chain-summary.ts';
import type { NftReadBack } from '../../../../libs/dataplane/nftables/read-nft-table.ts';
import { nodeState, type VsSpec } from '../../../netns/support/node-state-builder.ts';

const svc = (i: number, endpoints: string[], extra: Partial<VsSpec> = {}): VsSpec => ({
  servicePort: `ns/s${i}:p`,
  address: `10.96.0.${i}`,
  port: 80,
  endpoints,
  ...extra,
});
const others = Array.from({ length: 20 }, (_, i) => svc(i + 10, [`10.2.0.${i}:80`]));

/** A read-back that holds exactly `objects` (as the kernel would after a faithful apply). */
function readBackOf(objects: ReturnType<typeof renderNftObjects>): NftReadBack {
  return {
    tableHandle: 1,
    inventory: {
      chains: new Map([...objects.chains].map(([n, r]) => [n, summarizeRules(r)])),
      sets: new Set(objects.sets.keys()),
      elements: new Map([...objects.elements].map(([n, m]) => [n, new Map(m)])),
    },
    skeletonProblems: [],
    skeletonDamage: { chains: [], sets: [] },
    setElementCounts: new Map(),
  };
}

describe('touchedScope', () => {
  it('an endpoint change without affinity touches its endpoint map and hairpin entries only', () => {
    const before = renderNftObjects(nodeState([...others, svc(1, ['10.1.0.1:80', '10.1.0.2:80'])]));
    const after = renderNftObjects(nodeState([...others, svc(1, ['10.1.0.1:80', '10.1.0.3:80'])]));
    const scope = touchedScope(planNftUpdate(inventoryOf(before), after, 't'))!;
    expect(scope.chains).toEqual([]);
    expect(scope.sets).toEqual([expect.stringMatching(/^endpoints-\w+-ns\/s1\/p\/tcp$/)]);
    expect(scope.elements).toEqual([
      { set: 'hairpin', key: '10.1.0.2 . 10.1.0.2' },
      { set: 'hairpin', key: '10.1.0.3 . 10.1.0.3' },
    ]);
  });

  it('a new service touches its chain, its map and its service-ips entry; a full load is the whole table', () => {
    const before = renderNftObjects(nodeState(others));
    const after = renderNftObjects(nodeState([...others, svc(1, ['10.1.0.1:80'])]));
    const scope = touchedScope(planNftUpdate(inventoryOf(before), after, 't'))!;
    expect(scope.chains).toEqual([expect.stringMatching(/^service-/)]);
    expect(scope.elements).toContainEqual({ set: 'service-ips', key: '10.96.0.1 . tcp . 80' });
    expect(touchedScope(planFullLoad(after, 't'))).toBeUndefined();
  });
});

describe('scopedDrift', () => {
  const before = renderNftObjects(
    nodeState([...others, svc(1, ['10.1.0.1:80', '10.1.0.2:80'], { persistenceTimeout: 60 })]),
  );
  const after = renderNftObjects(
    nodeState([...others, svc(1, ['10.1.0.1:80', '10.1.0.3:80'], { persistenceTimeout: 60 })]),
  );
  const scope = touchedScope(planNftUpdate(inventoryOf(before), after, 't'))!;

  it('agrees with a faithful read-back', () => {
    expect(scopedDrift(readBackOf(after), after, scope)).toEqual([]);
  });

  it('finds a touched chain flushed, a deleted chain left behind, a touched element missing', () => {
    const rb = readBackOf(after);
    const chains = rb.inventory.chains as Map<string, string>;
    const added = scope.chains.find((c) => c.includes('10.1.0.3'))!;
    const removed = scope.chains.find((c) => c.includes('10.1.0.2'))!;
    chains.set(added, summarizeRules([]));
    chains.set(removed, summarizeRules(before.chains.get(removed)!));
    (rb.inventory.elements.get('hairpin') as Map<string, string>).delete('10.1.0.3 . 10.1.0.3');
    expect(scopedDrift(rb, after, scope).sort()).toEqual(
      [
        `chain ${removed}: not deleted`,
        `chain ${added}: differs`,
        'element 10.1.0.3 . 10.1.0.3 of hairpin: missing',
      ].sort(),
    );
  });

  it('does not look outside the scope', () => {
    const rb = readBackOf(after);
    (rb.inventory.elements.get('service-ips') as Map<string, string>).clear();
    expect(scopedDrift(rb, after, scope)).toEqual([]);
  });
});
