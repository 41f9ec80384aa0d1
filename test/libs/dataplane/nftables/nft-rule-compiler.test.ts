// The nft-syntax → nf_tables expression compiler (pure). The byte-exact agreement with nft
// itself is proven in a netns (test/netns/nft-netlink-backend.test.ts); these pin the forms.
import { describe, expect, it } from 'vitest';
import {
  compileElement,
  compileElementKey,
  elementsText,
  compileHook,
  compileRule,
  elementKeyText,
  NftGrammarError,
  type AnonymousSet,
} from '../../../../libs/dataplane/nftables/nft-rule-compiler.ts';
import {
  compileFullLoad,
  compileTransaction,
  gluedBytesFor,
  splitBatches,
} from '../../../../libs/dataplane/nftables/nft-netlink-runner.ts';
import { planFullLoad } from '../../../../libs/dataplane/nftables/plan-nft-update.ts';
import { renderNftObjects } from '../../../../libs/dataplane/nftables/nft-objects.ts';
import { NftTransaction } from '../../../../libs/dataplane/nftables/nft-transaction.ts';
import { decodeExprs, encodeExprs } from '../../../../libs/netlink/index.ts';
import { decodeAttrs, writeIpv4 } from '../../../../libs/netlink/index.ts';
import { nodeState } from '../../../netns/support/node-state-builder.ts';
import { benchState } from '../../../../bench/nftables/bench-state.ts';

const noAnon = (): never => {
  throw new Error('unexpected anonymous set');
};
const shape = (rule: string, alloc: (a: AnonymousSet) => { name: string; id: number } = noAnon) =>
  compileRule(rule, alloc)
    .map((e) => e.type)
    .join(' ');

describe('compileRule', () => {
  it.each([
    ['meta mark set meta mark | 0x4000', 'meta bitwise meta'],
    ['meta mark & 0x4000 == 0 return', 'meta bitwise cmp immediate'],
    ['masquerade fully-random', 'masq'],
    ['reject', 'reject'],
    ['meta l4proto tcp reject with tcp reset', 'meta cmp reject'],
    ['ip saddr 10.1.0.1 jump mark-for-masquerade', 'meta cmp payload cmp immediate'],
    ['update @aff { ip6 saddr }', 'meta cmp payload dynset'],
    ['meta l4proto tcp dnat ip6 to [fd01::1]:80', 'meta cmp immediate immediate nat'],
    [
      'ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.0.0.0/12 jump mark-for-masquerade',
      'meta cmp payload cmp meta cmp payload cmp payload bitwise cmp immediate',
    ],
    [
      'ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade',
      'meta cmp payload cmp meta cmp payload cmp payload cmp immediate',
    ],
    ['ip6 daddr . meta l4proto . th dport vmap @service-ips6', 'meta cmp payload meta payload lookup'],
    ['ct state new jump firewall-check', 'ct bitwise cmp immediate'],
    ['fib saddr type local jump mark-for-masquerade', 'fib cmp immediate'],
    ['fib saddr type local goto service-x', 'fib cmp immediate'],
    // The short-circuit of pod traffic to a Local service's cluster-wide endpoints.
    ['ip saddr 10.50.0.0/16 goto service-x', 'meta cmp payload cmp immediate'],
    ['ip saddr 10.50.0.0/17 goto service-x', 'meta cmp payload bitwise cmp immediate'],
    ['ip6 saddr fd50::/48 goto service-x', 'meta cmp payload cmp immediate'],
    ['goto service-x', 'immediate'],
    // The endpoint-map DNAT and the hairpin check, as `nft --debug=netlink` shows them.
    ['meta l4proto tcp dnat ip to numgen random mod 65536 map @endpoints-x', 'meta cmp numgen byteorder lookup nat'],
    [
      'ct status dnat ip6 saddr . ip6 daddr @hairpin6 jump mark-for-masquerade',
      'ct bitwise cmp meta cmp payload payload lookup immediate',
    ],
  ])('%s', (rule, expected) => {
    expect(shape(rule)).toBe(expected);
  });

  it('anonymous sets: numgen vmaps and multi-range source checks allocate one; a single range does not', () => {
    const sets: AnonymousSet[] = [];
    const alloc = (a: AnonymousSet) => {
      sets.push(a);
      return { name: `${a.prefix}%d`, id: sets.length };
    };
    expect(shape('numgen random mod 2 vmap { 0 : goto a, 1 : goto b }', alloc)).toBe('numgen lookup');
    expect(shape('ip saddr != { 10.0.0.0/8, 192.168.0.0/16 } drop', alloc)).toBe('meta cmp payload lookup immediate');
    expect(shape('ip saddr != { 10.0.0.0/8 } drop', alloc)).toBe('meta cmp payload cmp immediate');
    expect(sets.map((s) => s.prefix)).toEqual(['__map', '__set']);
    // Interval encoding as nft: an end mark at 0, then start/end pairs (end = last + 1).
    expect(sets[1]!.elements.map((e) => `${e.key.toString('hex')}${e.intervalEnd ? '!' : ''}`)).toEqual([
      '00000000!',
      '0a000000',
      '0b000000!',
      'c0a80000',
      'c0a90000!',
    ]);
  });

  it('refuses anything outside the grammar with a clear error', () => {
    expect(() => compileRule('tcp dport 22 accept', noAnon)).toThrow(NftGrammarError);
    expect(() => compileRule('tcp dport 22 accept', noAnon)).toThrow(
      'rule outside the netlink grammar: "tcp dport 22 accept"',
    );
    expect(() => compileRule('ip saddr fd00::1 jump x', noAnon)).toThrow(/not an IPv4 address/);
    expect(() => compileHook('type nat hook egress priority 0; policy accept;')).toThrow(/chain hook outside/);
  });

  it('hooks, keys and expressions round-trip', () => {
    expect(compileHook('type filter hook input priority filter - 10; policy accept;')).toEqual({
      type: 'filter',
      hooknum: 1,
      priority: -10,
      policy: 1,
    });
    expect(compileHook('type nat hook postrouting priority srcnat; policy accept;').priority).toBe(100);
    expect(elementKeyText(compileElementKey('fd00::10 . udp . 53'))).toBe('fd00::10 . udp . 53');
    expect(compileElementKey('10.96.0.10 . tcp . 80').toString('hex')).toBe('0a60000a' + '06000000' + '00500000');
    const exprs = compileRule('meta l4proto tcp dnat ip to 10.1.0.1:8080', noAnon);
    expect(decodeExprs(Buffer.concat(encodeExprs(exprs)))).toEqual(exprs);
    const viaMap = compileRule('meta l4proto udp dnat ip6 to numgen random mod 65536 map @endpoints-x', noAnon);
    expect(decodeExprs(Buffer.concat(encodeExprs(viaMap)))).toEqual(viaMap);
  });

  it('endpoint map slots: a start with the data and an end mark after the last slot, read back as written', () => {
    const hex = (els: ReturnType<typeof compileElement>) =>
      els.map(
        (e) =>
          `${e.key.toString('hex')}${e.intervalEnd ? '!' : ''}${e.data && 'value' in e.data ? `=${e.data.value.toString('hex')}` : ''}`,
      );
    // As nft 1.0.6 sends `0-21845 : 10.0.0.1 . 8080` (nft --debug=netlink). The data comes from
    // node's shared buffer pool: dirty it first, so padding left unwritten would show.
    Buffer.allocUnsafe(64).fill(0xff);
    expect(hex(compileElement('0-21845', '10.0.0.1 . 8080'))).toEqual(['00000000=0a0000011f900000', '00005556!']);
    Buffer.allocUnsafe(64).fill(0xff);
    expect(hex(compileElement('0', 'fd00::1 . 53'))).toEqual([
      `00000000=${'fd00'.padEnd(30, '0')}0100350000`,
      '00000001!',
    ]);
    expect(hex(compileElement('43691-65535', undefined))).toEqual(['0000aaab', '00010000!']);
    expect(hex(compileElement('fd00::1 . fd00::1', undefined))).toEqual([`${'fd00'.padEnd(30, '0')}01`.repeat(2)]);
    const dumped = [...compileElement('32768-65535', 'fd00::2 . 53'), ...compileElement('0-32767', 'fd00::1 . 53')].map(
      (e) => ({ ...e, intervalEnd: e.intervalEnd ?? false }),
    );
    expect(elementsText({ flags: 0xc }, dumped)).toEqual(
      new Map([
        ['0-32767', 'fd00::1 . 53'],
        ['32768-65535', 'fd00::2 . 53'],
      ]),
    );
    expect(() => compileElement('5-70000', '10.0.0.1 . 80')).toThrow(NftGrammarError);
  });
});

describe('writeIpv4', () => {
  it('writes dotted quads and refuses what node:net isIPv4 refuses', () => {
    const b = Buffer.alloc(6);
    expect(writeIpv4('10.250.0.255', b, 1)).toBe(true);
    expect([...b]).toEqual([0, 10, 250, 0, 255, 0]);
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '256.0.0.1',
      '1.2.3.',
      '.1.2.3',
      'a.b.c.d',
      '1..2.3',
      '1.2.3.4 ',
    ])
      expect(writeIpv4(bad, b, 0), bad).toBe(false);
    expect(() => compileElement('0-65535', '10.1.0.01 . 80')).toThrow(NftGrammarError);
    expect(() => compileElement('10.1.0.1 . fd00::1', undefined)).toThrow(NftGrammarError);
  });
});

describe('compileTransaction', () => {
  it('a full load compiles to one message per op, anonymous sets before the rules using them', () => {
    const tx = planFullLoad(
      renderNftObjects(
        nodeState([
          {
            servicePort: 'a/b:c',
            address: '10.96.0.1',
            port: 80,
            persistenceTimeout: 60, // affinity keeps the numgen verdict map (an anonymous set)
            endpoints: ['10.1.0.1:80', '10.1.0.2:80'],
          },
        ]),
      ),
      't',
    );
    const { messages, staged } = compileTransaction(tx);
    const ops = messages.map((m) => m.operation);
    const numgen = ops.findIndex((o) => o.includes('numgen') && !o.endsWith(')'));
    expect(ops[numgen - 2]).toMatch(/numgen .* \(anonymous set\)$/);
    expect(ops[numgen - 1]).toMatch(/\(anonymous set elements\)$/);
    // Base chains and their rules are the staged part (they make the table live).
    expect(
      messages
        .filter((_, i) => staged[i])
        .map((m) => m.operation)
        .filter((o) => o.startsWith('add chain')),
    ).toHaveLength(8);
  });

  it('elements that follow their set declaration go by batch id alone, glued to it', () => {
    const tx = planFullLoad(
      renderNftObjects(
        nodeState([
          { servicePort: 'a/b:c', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:80', '10.1.0.2:80'] },
        ]),
      ),
      't',
    );
    const { messages, withNext } = compileTransaction(tx);
    const attrs = (i: number) => decodeAttrs(messages[i]!.payload.subarray(4));
    const decl = messages.findIndex((m) => m.operation.startsWith('add map inet t endpoints-'));
    const elems = decl + 1;
    expect(messages[elems]!.operation).toMatch(/^add element inet t endpoints-/);
    // NFTA_SET_ELEM_LIST_SET (2) absent, NFTA_SET_ELEM_LIST_SET_ID (4) = the declaration's NFTA_SET_ID (10).
    expect(attrs(elems).has(2)).toBe(false);
    expect(attrs(elems).get(4)).toEqual(attrs(decl).get(10));
    expect(withNext[decl]).toBe(true);
    // Elements of a set declared earlier (the skeleton's, after the rules) go by name.
    const hairpin = messages.findIndex((m) => m.operation.startsWith('add element inet t hairpin '));
    expect(attrs(hairpin).get(2)?.toString()).toMatch(/^hairpin\0/);
    expect(attrs(hairpin).has(4)).toBe(false);
  });

  it('groups consecutive element ops of one map into one message', () => {
    const tx = new NftTransaction('inet', 't');
    for (let i = 0; i < 3; i++)
      tx.add({ kind: 'element', map: 'service-ips', key: `10.96.0.${i} . tcp . 80`, value: 'goto x' });
    tx.delete({ kind: 'element', map: 'service-ips', key: '10.96.0.9 . tcp . 80' });
    expect(compileTransaction(tx).messages.map((m) => m.operation)).toEqual([
      'add element inet t service-ips { 10.96.0.0 . tcp . 80 : goto x } (+2 more)',
      'delete element inet t service-ips { 10.96.0.9 . tcp . 80 }',
    ]);
  });
});

describe('compileFullLoad', () => {
  // Every role, family, protocol and policy the renderer knows, affinity (anonymous sets), a
  // group without endpoints, source ranges, and enough endpoints to split element messages.
  const mixed = nodeState(
    [
      { servicePort: 'a/web:http', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:8080', '10.1.0.2:8080'] },
      {
        servicePort: 'a/web:http',
        address: '192.168.0.10',
        port: 30080,
        role: 'node-port',
        endpoints: ['10.1.0.1:8080', '10.1.0.2:8080'],
      },
      {
        servicePort: 'a/lb:https',
        address: '203.0.113.7',
        port: 443,
        role: 'load-balancer',
        localOnly: true,
        sourceRanges: ['198.51.100.0/24', '192.0.2.0/24'],
        endpoints: ['10.1.0.3:8443'],
      },
      {
        servicePort: 'b/sticky:tcp',
        address: '10.96.0.2',
        port: 81,
        persistenceTimeout: 60,
        endpoints: ['10.1.0.4:80', '10.1.0.5:80', '10.1.0.6:80'],
      },
      {
        servicePort: 'b/dns:udp',
        address: 'fd00::10',
        port: 53,
        protocol: 'UDP',
        endpoints: ['fd01::1:53', 'fd01::2:53'],
      },
      {
        servicePort: 'b/sctp:s',
        address: '10.96.0.3',
        port: 9,
        protocol: 'SCTP',
        persistenceTimeout: 30,
        endpoints: ['10.1.0.7:9'],
      },
      { servicePort: 'c/empty:http', address: '10.96.0.4', port: 80, endpoints: [] },
      {
        servicePort: 'c/many:http',
        address: '10.96.0.5',
        port: 80,
        endpoints: Array.from({ length: 3000 }, (_, i) => `10.2.${i >> 8}.${i & 255}:80`),
      },
    ],
    { clusterCIDR: '10.0.0.0/8' },
  );

  it.each([
    ['mixed roles, families and affinity', mixed],
    ['masqueradeAll', { ...mixed, settings: { ...mixed.settings, masqueradeAll: true } }],
    ['the bench state (200 × 10)', benchState(200, 10)],
  ])('encodes the same messages, staging and glue as compiling planFullLoad: %s', (_name, state) => {
    const objects = renderNftObjects(state);
    const tx = planFullLoad(objects, 't');
    expect(tx.fullLoad).toBe(objects);
    // glue sized for the 64 KiB batches below, as a runner sizes it for its own
    const glue = gluedBytesFor(64 * 1024);
    const direct = compileFullLoad('inet', 't', objects, glue);
    const size = tx.size; // announced before the operations are queued
    const queued = compileTransaction(tx, glue);
    expect(tx.ops).toHaveLength(size);
    expect(direct.messages.length).toBe(queued.messages.length);
    direct.messages.forEach((m, i) => {
      const q = queued.messages[i]!;
      expect({ type: m.type, flags: m.flags, operation: m.operation }).toEqual({
        type: q.type,
        flags: q.flags,
        operation: q.operation,
      });
      expect(Buffer.compare(m.payload, q.payload), m.operation).toBe(0);
    });
    expect(direct.staged).toEqual(queued.staged);
    expect(direct.withNext).toEqual(queued.withNext);
    // Several batches, too: the same split.
    const sizes = (bs: { payload: Buffer }[][]) => bs.map((b) => b.length);
    expect(sizes(splitBatches(direct, 64 * 1024))).toEqual(sizes(splitBatches(queued, 64 * 1024)));
  });

  it('refuses a name the queue would refuse, before anything is sent', () => {
    const objects = renderNftObjects(mixed);
    const chains = new Map(objects.chains);
    chains.set('bad name; flush ruleset', ['reject']);
    expect(() => compileFullLoad('inet', 't', { ...objects, chains })).toThrow(/invalid object name/);
    expect(planFullLoad({ ...objects, chains }, 't').error?.message).toMatch(/invalid chain name/);
  });

  it('a full load queued onto afterwards is no longer encoded from its objects', () => {
    const tx = planFullLoad(renderNftObjects(mixed), 't');
    tx.add({ kind: 'chain', name: 'extra' });
    expect(tx.fullLoad).toBeUndefined();
    expect(tx.describe().at(-1)).toBe('add chain inet t extra');
  });
});
