// NftablesDataplane's logic against the recording fake (test/support/fake-nft-runner.ts): no netns.
// The same behaviour against the real kernel, with traffic, is in test/netns/nftables-dataplane.test.ts.
import { describe, expect, it } from 'vitest';
import { NftablesDataplane } from '../../../../libs/dataplane/nftables/index.ts';
import { FakeNftRunner } from '../../../support/fake-nft-runner.ts';
import { NftTransaction } from '../../../../libs/dataplane/nftables/nft-transaction.ts';
import { nodeState, type VsSpec } from '../../../netns/support/node-state-builder.ts';

const web = (endpoints: string[], extra: Partial<VsSpec> = {}): VsSpec => ({
  servicePort: 'default/web:http',
  address: '10.96.0.10',
  port: 80,
  endpoints,
  ...extra,
});
const dns = (endpoints: string[]): VsSpec => ({
  servicePort: 'default/dns:dns',
  address: '10.96.0.53',
  port: 53,
  protocol: 'UDP',
  endpoints,
});

function setup() {
  const fake = new FakeNftRunner();
  const dp = new NftablesDataplane({ runner: fake, table: 'sb' });
  return { fake, dp, dump: () => fake.dump('inet', 'sb') };
}

describe('NftablesDataplane over the fake runner', () => {
  it('first apply loads the whole table in one transaction, which the dump shows', async () => {
    const { fake, dp, dump } = setup();
    const r = await dp.apply(nodeState([web(['10.1.0.1:80', '10.1.0.2:80'])]));
    expect(r).toMatchObject({ verified: true, notes: ['created table'] });
    expect(fake.committed).toBe(1);
    expect(fake.lastTransaction!.ops.slice(0, 3).map((o) => `${o.verb} ${o.object.kind}`)).toEqual([
      'add table',
      'delete table',
      'add table',
    ]);
    const text = dump();
    expect(text).toMatch(/^table inet sb \{\n/);
    expect(text).toMatch(
      /map service-ips \{\n\t\ttype ipv4_addr \. inet_proto \. inet_service : verdict\n\t\telements = \{ 10\.96\.0\.10 \. tcp \. 80 : goto service-\S+web\/http\/tcp \}/,
    );
    expect(text).toMatch(
      /map endpoints-\S+web\/http\/tcp \{\n\t\ttypeof numgen random mod 65536 : ip daddr \. tcp dport/,
    );
    expect(text).toContain('elements = { 0-32767 : 10.1.0.1 . 80,');
    expect(text).toContain('32768-65535 : 10.1.0.2 . 80 }');
    expect(text).toContain('meta l4proto tcp dnat ip to numgen random mod 65536 map @endpoints-');
  });

  it('an endpoint change is incremental: same table handle, elements only, untouched groups alone', async () => {
    const { fake, dp, dump } = setup();
    await dp.apply(nodeState([web(['10.1.0.1:80', '10.1.0.2:80']), dns(['10.1.0.1:53'])]));
    const handle = (await dp.readBack())!.tableHandle;
    const r = await dp.apply(nodeState([web(['10.1.0.1:80', '10.1.0.3:80']), dns(['10.1.0.1:53'])]));
    expect(r.verified).toBe(true);
    const ops = fake.lastTransaction!.describe();
    expect(ops.every((l) => / element /.test(l))).toBe(true);
    expect(ops.filter((l) => l.includes('endpoints-')).length).toBe(2); // one slot range replaced
    expect(ops.some((l) => l.includes('dns'))).toBe(false);
    expect((await dp.readBack())!.tableHandle).toBe(handle);
    expect(dump()).toContain('32768-65535 : 10.1.0.3 . 80');
    expect(dump()).not.toContain('10.1.0.2');
    const committed = fake.committed;
    expect((await dp.apply(nodeState([web(['10.1.0.1:80', '10.1.0.3:80']), dns(['10.1.0.1:53'])]))).kernelWrites).toBe(
      0,
    );
    expect(fake.committed).toBe(committed); // a no-op runs nothing
  });

  it('resync repairs a chain flushed behind its back and then writes nothing', async () => {
    const { fake, dp, dump } = setup();
    await dp.apply(nodeState([web(['10.1.0.1:80', '10.1.0.2:80'])]));
    const good = dump();
    fake.tamper('inet', 'sb', (t) => {
      for (const [n, c] of t.chains) if (/^service-.*web/.test(n)) c.rules = [];
    });
    const r = await dp.resync();
    expect(r.kernelWrites).toBeGreaterThan(0);
    expect(r.notes).toEqual(['repaired drift in 1 chains']);
    expect(dump()).toBe(good);
    expect((await dp.resync()).kernelWrites).toBe(0);
  });

  it('a damaged skeleton is repaired in place: same table, no reload', async () => {
    const { fake, dp, dump } = setup();
    await dp.apply(nodeState([web(['10.1.0.1:80'])]));
    const good = dump();
    const handle = (await fake.listTable('inet', 'sb'))!.tableHandle;
    // What a table of the previous release looks like: no hairpin sets, nat-postrouting with its
    // one `jump masquerading`; and a dispatch map someone deleted with the rules using it.
    fake.tamper('inet', 'sb', (t) => {
      t.sets.delete('hairpin');
      t.sets.delete('hairpin6');
      t.chains.get('nat-postrouting')!.rules = ['jump masquerading'];
      t.maps.delete('service-ips6');
      t.chains.get('services')!.rules.pop();
    });
    const r = await dp.resync();
    expect(r.notes[0]).toBe(
      'skeleton repaired in place (chain services has 1 rules, want 2; chain nat-postrouting has 1 rules, want 3; map service-ips6 missing; set hairpin missing; set hairpin6 missing)',
    );
    expect(r.verified).toBe(true);
    expect(fake.lastTransaction!.ops.some((o) => o.object.kind === 'table')).toBe(false);
    expect((await fake.listTable('inet', 'sb'))!.tableHandle).toBe(handle);
    // The same objects; a re-created map is listed after the others (creation order, as nft does).
    const blocks = (d: string) => d.split('\n\n').sort();
    expect(blocks(dump())).toEqual(blocks(good));
    expect((await dp.resync()).kernelWrites).toBe(0);
  });

  it('a restarted applier adopting a damaged table repairs it in place too', async () => {
    const { fake, dp, dump } = setup();
    const state = nodeState([web(['10.1.0.1:80'])]);
    await dp.apply(state);
    const good = dump();
    fake.tamper('inet', 'sb', (t) => {
      t.sets.delete('hairpin');
      t.sets.delete('hairpin6');
      t.chains.get('nat-postrouting')!.rules = ['jump masquerading'];
    });
    const restarted = new NftablesDataplane({ runner: fake, table: 'sb' });
    const r = await restarted.apply(state);
    expect(r.notes).toEqual([
      'adopted existing table',
      'skeleton repaired in place (chain nat-postrouting has 1 rules, want 3; set hairpin missing; set hairpin6 missing)',
    ]);
    expect(r.verified).toBe(true);
    expect(fake.lastTransaction!.ops.some((o) => o.object.kind === 'table')).toBe(false);
    expect(dump()).toBe(good);
  });

  it('a repair the kernel refuses falls back to reloading the table', async () => {
    const { fake, dp, dump } = setup();
    await dp.apply(nodeState([web(['10.1.0.1:80'])]));
    const good = dump();
    fake.tamper('inet', 'sb', (t) => {
      t.sets.delete('hairpin');
      t.chains.get('nat-postrouting')!.rules = ['jump masquerading'];
    });
    // Damage a read-back cannot see makes the kernel refuse the repair (here: the first run).
    const run = fake.run.bind(fake);
    let refused = 0;
    fake.run = async (tx) => {
      if (refused++ === 0) throw new Error('Invalid argument: add set inet sb hairpin');
      return run(tx);
    };
    const r = await dp.resync();
    expect(r.notes).toContain('repair in place refused (Invalid argument: add set inet sb hairpin): reloaded table');
    expect(fake.lastTransaction!.ops.slice(0, 2).map((o) => `${o.verb} ${o.object.kind}`)).toEqual([
      'add table',
      'delete table',
    ]);
    expect(r.verified).toBe(true);
    expect(dump()).toBe(good);
  });

  it('a transaction the kernel refuses changes nothing (atomic) and the dataplane keeps its diff base', async () => {
    const { fake, dp, dump } = setup();
    await dp.apply(nodeState([web(['10.1.0.1:80'])]));
    const before = dump();
    // An element pointing at a chain that does not exist: refused after earlier ops succeeded.
    const tx = new NftTransaction('inet', 'sb')
      .add({ kind: 'chain', name: 'extra' })
      .add({ kind: 'element', map: 'service-ips', key: '10.96.9.9 . tcp . 80', value: 'goto no-such-chain' });
    await expect(fake.run(tx)).rejects.toThrow(/No such file or directory/);
    expect(dump()).toBe(before);
    expect(dump()).not.toContain('chain extra');
    // The dataplane still diffs from what it applied: the next change is incremental.
    const r = await dp.apply(nodeState([web(['10.1.0.2:80'])]));
    expect(r.verified).toBe(true);
    expect(fake.lastTransaction!.describe().some((l) => l.includes('table'))).toBe(false);
  });

  it('cleanup deletes only our table', async () => {
    const { fake, dp } = setup();
    await fake.run(new NftTransaction('inet', 'foreign').add({ kind: 'table' }).add({ kind: 'chain', name: 'c' }));
    await dp.apply(nodeState([web(['10.1.0.1:80'])]));
    const r = await dp.cleanup();
    expect(r).toMatchObject({ kernelWrites: 1, verified: true });
    expect(fake.dump('inet', 'sb')).toBe('');
    expect(fake.dump('inet', 'foreign')).toContain('chain c');
    expect((await dp.cleanup()).notes).toEqual(['no table to remove']);
  });
});

describe('FakeNftRunner fails where nf_tables does', () => {
  const base = () =>
    new NftTransaction('inet', 'x')
      .add({ kind: 'table' })
      .add({ kind: 'chain', name: 'a' })
      .add({ kind: 'chain', name: 'b' })
      .add({ kind: 'rule', chain: 'a', rule: 'jump b' });

  it.each([
    [
      'a rule in a missing chain',
      (tx: NftTransaction) => tx.add({ kind: 'rule', chain: 'nope', rule: 'drop' }),
      /No such file/,
    ],
    [
      'a jump to a missing chain',
      (tx: NftTransaction) => tx.add({ kind: 'rule', chain: 'a', rule: 'goto nope' }),
      /No such file/,
    ],
    [
      'a lookup of a missing set',
      (tx: NftTransaction) => tx.add({ kind: 'rule', chain: 'a', rule: 'ip saddr @nope drop' }),
      /No such file/,
    ],
    ['deleting a referenced chain', (tx: NftTransaction) => tx.delete({ kind: 'chain', name: 'b' }), /resource busy/],
    ['creating an existing chain', (tx: NftTransaction) => tx.create({ kind: 'chain', name: 'a' }), /File exists/],
    [
      'deleting a missing element',
      (tx: NftTransaction) =>
        tx
          .add({ kind: 'map', name: 'm', decl: 'type ipv4_addr : verdict;' })
          .delete({ kind: 'element', map: 'm', key: '1.2.3.4' }),
      /No such file/,
    ],
    [
      're-adding a key with another value',
      (tx: NftTransaction) =>
        tx
          .add({ kind: 'map', name: 'm', decl: 'type ipv4_addr : verdict;' })
          .add({ kind: 'element', map: 'm', key: '1.2.3.4', value: 'drop' })
          .add({ kind: 'element', map: 'm', key: '1.2.3.4', value: 'goto a' }),
      /File exists/,
    ],
  ])('refuses %s and keeps nothing of the transaction', async (_w, more, message) => {
    const fake = new FakeNftRunner();
    await expect(fake.run(more(base()))).rejects.toThrow(message);
    expect(fake.dump('inet', 'x')).toBe('');
    expect(fake.committed).toBe(0);
  });

  it('flushing the referencing chain first makes the delete valid, in one transaction', async () => {
    const fake = new FakeNftRunner();
    await fake.run(base().flush({ kind: 'chain', name: 'a' }).delete({ kind: 'chain', name: 'b' }));
    expect(fake.dump('inet', 'x')).toBe('table inet x {\n\tchain a {\n\t}\n}\n');
  });
});
