import { describe, expect, it } from 'vitest';
import { renderNftObjects } from '../../../../libs/dataplane/nftables/nft-objects.ts';
import type { NftTransaction } from '../../../../libs/dataplane/nftables/nft-transaction.ts';
import { inventoryOf, planNftUpdate } from '../../../../libs/dataplane/nftables/plan-nft-update.ts';
import { summarizeJsonRules, summarizeRules } from '../../../../libs/dataplane/nftables/nft-chain-summary.ts';
import { nodeState, type VsSpec } from '../../../netns/support/node-state-builder.ts';

const web = (endpoints: string[], extra: Partial<VsSpec> = {}): VsSpec => ({
  servicePort: 'default/web:http',
  address: '10.96.0.10',
  port: 80,
  endpoints,
  ...extra,
});
/** 50 services the changes below must leave alone. */
const others = Array.from(
  { length: 50 },
  (_, i): VsSpec => ({
    servicePort: `default/s${i}:p`,
    address: `10.96.1.${i}`,
    port: 80,
    endpoints: [`10.2.0.${i}:80`],
  }),
);
const script = (tx: NftTransaction): string => (tx.size === 0 ? '' : `${tx.describe().join('\n')}\n`);
const empty = { chains: new Map(), sets: new Set<string>(), elements: new Map() };

describe('planNftUpdate', () => {
  it('from nothing adds every chain, set and element and deletes nothing', () => {
    const objects = renderNftObjects(nodeState([web(['10.1.0.1:80', '10.1.0.2:80'], { persistenceTimeout: 60 })]));
    const tx = planNftUpdate(empty, objects, 't');
    expect(script(tx)).not.toMatch(/^delete|^flush/m);
    expect(script(tx).match(/^add chain /gm)).toHaveLength(3); // service + 2 endpoints
    expect(script(tx).match(/^add set /gm)).toHaveLength(2);
    expect(script(tx)).toContain('add element inet t service-ips { 10.96.0.10 . tcp . 80 : goto service-');
  });

  it('is empty for an unchanged state', () => {
    const s = nodeState([web(['10.1.0.1:80'])]);
    const tx = planNftUpdate(inventoryOf(renderNftObjects(s)), renderNftObjects(s), 't');
    expect({ ops: tx.ops, writes: tx.writes, touched: tx.touchedChains, script: tx.toScript() }).toEqual({
      ops: [],
      writes: 0,
      touched: [],
      script: '',
    });
  });

  it('one endpoint swap without affinity replaces one endpoint map element (and hairpin entries) only', () => {
    const before = renderNftObjects(nodeState([...others, web(['10.1.0.1:80', '10.1.0.2:80'])]));
    const after = renderNftObjects(nodeState([...others, web(['10.1.0.1:80', '10.1.0.3:80'])]));
    const tx = planNftUpdate(inventoryOf(before), after, 't');
    expect(tx.describe().map((l) => l.replace(/endpoints-\S+/, 'EP'))).toEqual([
      'delete element inet t hairpin { 10.1.0.2 . 10.1.0.2 }',
      'delete element inet t EP { 32768-65535 }',
      'add element inet t hairpin { 10.1.0.3 . 10.1.0.3 }',
      'add element inet t EP { 32768-65535 : 10.1.0.3 . 80 }',
    ]);
    expect(tx.writes).toBe(4);
    expect(tx.touchedChains).toEqual([]);
    // A third endpoint re-splits the slots: still elements only.
    const three = renderNftObjects(nodeState([...others, web(['10.1.0.1:80', '10.1.0.3:80', '10.1.0.4:80'])]));
    const t3 = planNftUpdate(inventoryOf(after), three, 't');
    expect(t3.describe().filter((l) => !/element/.test(l))).toEqual([]);
    expect([...three.elements.values()].find((m) => m.has('0-21844'))).toEqual(
      new Map([
        ['0-21844', '10.1.0.1 . 80'],
        ['21845-43689', '10.1.0.3 . 80'],
        ['43690-65535', '10.1.0.4 . 80'],
      ]),
    );
  });

  it('with session affinity, one endpoint swap touches the service chain and the two endpoint chains', () => {
    const aff = { persistenceTimeout: 60 };
    const before = renderNftObjects(nodeState([...others, web(['10.1.0.1:80', '10.1.0.2:80'], aff)]));
    const after = renderNftObjects(nodeState([...others, web(['10.1.0.1:80', '10.1.0.3:80'], aff)]));
    const tx = planNftUpdate(inventoryOf(before), after, 't');
    expect(script(tx)).not.toMatch(/table/);
    // The service-ips entry still points at the same service chain; only hairpin entries change.
    expect(script(tx).match(/element/g)).toHaveLength(2);
    expect(script(tx).match(/^add chain .*10\.1\.0\.3\/80$/gm)).toHaveLength(1);
    expect(script(tx).match(/^flush chain .*service-/gm)).toHaveLength(1);
    expect(script(tx).match(/^delete chain .*10\.1\.0\.2\/80$/gm)).toHaveLength(1);
    expect(tx.touchedChains).toHaveLength(2);
    // Removed chains are flushed before they are deleted (a service chain may still jump to them).
    const lines = script(tx).trim().split('\n');
    expect(lines.findIndex((l) => l.startsWith('flush chain') && l.includes('10.1.0.2'))).toBeLessThan(
      lines.findIndex((l) => l.startsWith('delete chain')),
    );
  });

  it('replaces a map element whose verdict changed, and removes services that left', () => {
    const before = renderNftObjects(
      nodeState([
        web(['10.1.0.1:80']),
        { servicePort: 'x/gone:p', address: '10.96.0.99', port: 9, endpoints: ['10.3.0.1:9'] },
      ]),
    );
    const after = renderNftObjects(nodeState([web([])]));
    const tx = planNftUpdate(inventoryOf(before), after, 't');
    expect(script(tx)).toContain('delete element inet t service-ips { 10.96.0.10 . tcp . 80 }');
    expect(script(tx)).toContain('delete element inet t service-ips { 10.96.0.99 . tcp . 9 }');
    expect(script(tx)).toContain(
      'add element inet t no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }',
    );
    // web had an endpoint map, gone had its own: both maps go (their elements with them).
    expect(script(tx).match(/^delete map .*endpoints-/gm)).toHaveLength(2);
    expect(script(tx)).not.toMatch(/element inet t endpoints-/);
    expect(script(tx).match(/^delete chain /gm)).toHaveLength(2);
  });

  it('a changed affinity timeout swaps in a new set in the same transaction', () => {
    const before = renderNftObjects(nodeState([web(['10.1.0.1:80'], { persistenceTimeout: 60 })]));
    const after = renderNftObjects(nodeState([web(['10.1.0.1:80'], { persistenceTimeout: 120 })]));
    const tx = planNftUpdate(inventoryOf(before), after, 't');
    expect(script(tx)).toMatch(/^add set .*timeout 120s;/m);
    expect(script(tx)).toMatch(/^delete set /m);
    expect(script(tx).indexOf('add set')).toBeLessThan(script(tx).indexOf('delete set'));
  });
});

describe('chain summaries', () => {
  it('digest rendered rules and nft JSON the same way', () => {
    const text = ['ip saddr 10.1.0.1 jump mark-for-masquerade', 'meta l4proto tcp dnat ip to 10.1.0.1:80'];
    const json = [
      [
        { match: { left: { payload: { field: 'saddr' } }, right: '10.1.0.1' } },
        { jump: { target: 'mark-for-masquerade' } },
      ],
      [
        { match: { left: { meta: { key: 'l4proto' } }, right: 'tcp' } },
        { dnat: { family: 'ip', addr: '10.1.0.1', port: 80 } },
      ],
    ];
    expect(summarizeJsonRules(json)).toBe(summarizeRules(text));
    const tampered = [json[0], [{ dnat: { family: 'ip', addr: '10.9.9.9', port: 80 } }]];
    expect(summarizeJsonRules(tampered)).not.toBe(summarizeRules(text));
    expect(summarizeJsonRules(json.slice(0, 1))).not.toBe(summarizeRules(text));
  });

  it('digest a DNAT through an endpoint map by the map name', () => {
    const text = ['meta l4proto tcp dnat ip to numgen random mod 65536 map @endpoints-X-a'];
    const json = (map: string) => [
      [
        { match: { left: { meta: { key: 'l4proto' } }, right: 'tcp' } },
        { dnat: { family: 'ip', addr: { map: { key: { numgen: { mode: 'random', mod: 65536 } }, data: map } } } },
      ],
    ];
    expect(summarizeRules(text)).toBe('1|=>@endpoints-X-a');
    expect(summarizeJsonRules(json('@endpoints-X-a'))).toBe(summarizeRules(text));
    expect(summarizeJsonRules(json('@endpoints-Y-b'))).not.toBe(summarizeRules(text));
  });
});
