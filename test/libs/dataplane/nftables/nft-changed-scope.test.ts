import { describe, expect, it } from 'vitest';
import { changesScope, narrowToScope, scopedInventory } from '../../../../libs/dataplane/nftables/nft-changed-scope.ts';
import type { NftObjects } from '../../../../libs/dataplane/nftables/nft-objects.ts';
import type { NftReadBack } from '../../../../libs/dataplane/nftables/read-nft-table.ts';
import { planNftUpdate } from '../../../../libs/dataplane/index.ts';

const DECL = 'typeof numgen random mod 65536 : ip daddr . tcp dport; flags interval;';
const applied: NftObjects = {
  chains: new Map([
    ['service-A', ['meta l4proto tcp dnat ip to numgen random mod 65536 map @endpoints-A']],
    ['service-B', ['meta l4proto tcp dnat ip to numgen random mod 65536 map @endpoints-B']],
  ]),
  sets: new Map([
    ['endpoints-A', DECL],
    ['endpoints-B', DECL],
  ]),
  elements: new Map([
    ['endpoints-A', new Map([['0-65535', '10.1.0.1 . 80']])],
    ['endpoints-B', new Map([['0-65535', '10.1.0.2 . 80']])],
    [
      'service-ips',
      new Map([
        ['10.96.0.1 . tcp . 80', 'goto service-A'],
        ['10.96.0.2 . tcp . 80', 'goto service-B'],
      ]),
    ],
  ]),
  shared: new Map(),
};

describe('a resync of what notifications named', () => {
  const scope = changesScope({
    chains: new Set(['service-A', 'intruder']),
    sets: new Set(['endpoints-A', 'service-ips-typo']),
    elements: [
      { set: 'service-ips', key: '10.96.0.1 . tcp . 80' },
      { set: 'service-ips', key: '10.96.0.9 . tcp . 80' },
    ],
    commits: 2,
  });

  it('narrows what we applied to the named objects, keeping the keys we do not want as absent', () => {
    const n = narrowToScope(applied, scope);
    expect([...n.chains.keys()]).toEqual(['service-A']);
    expect([...n.sets.keys()]).toEqual(['endpoints-A']);
    expect(n.elements).toEqual(
      new Map([
        ['endpoints-A', new Map([['0-65535', '10.1.0.1 . 80']])],
        ['service-ips', new Map([['10.96.0.1 . tcp . 80', 'goto service-A']])],
      ]),
    );
  });

  it('repairs exactly the named objects: a foreign chain and key go, a lost slot and entry come back', () => {
    // What a scoped read found: the foreign chain, the endpoint map emptied, the service entry
    // gone and a foreign one added; the skeleton map listed among the sets (never deleted).
    const rb: NftReadBack = {
      tableHandle: 1,
      inventory: {
        chains: new Map([
          ['service-A', 'digest-of-the-same-rules'],
          ['intruder', 'x'],
        ]),
        sets: new Set(['endpoints-A', 'service-ips']),
        elements: new Map([
          ['endpoints-A', new Map()],
          ['service-ips', new Map([['10.96.0.9 . tcp . 80', 'drop']])],
        ]),
      },
      skeletonProblems: [],
      skeletonDamage: { chains: [], sets: [] },
      setElementCounts: new Map(),
      scoped: true,
    };
    const tx = planNftUpdate(scopedInventory(rb), narrowToScope(applied, scope), 'sb', () => true);
    expect(tx.toScript().trim().split('\n')).toEqual([
      'delete element inet sb service-ips { 10.96.0.9 . tcp . 80 }',
      'add element inet sb endpoints-A { 0-65535 : 10.1.0.1 . 80 }',
      'add element inet sb service-ips { 10.96.0.1 . tcp . 80 : goto service-A }',
      'flush chain inet sb intruder',
      'delete chain inet sb intruder',
    ]);
  });
});
