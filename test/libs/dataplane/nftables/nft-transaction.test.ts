import { describe, expect, it } from 'vitest';
import { NftTransaction } from '../../../../libs/dataplane/nftables/nft-transaction.ts';
import { NftCliRunner } from '../../../../libs/dataplane/nftables/nft-cli-runner.ts';

describe('NftTransaction', () => {
  it('queues typed ops and renders them as one nft -f script, grouping consecutive elements', () => {
    const tx = new NftTransaction('inet', 't')
      .add({ kind: 'chain', name: 'svc' })
      .add({ kind: 'rule', chain: 'svc', rule: 'jump mark' })
      .add({ kind: 'element', map: 'm', key: '10.0.0.1 . tcp . 80', value: 'goto svc' })
      .add({ kind: 'element', map: 'm', key: '10.0.0.2 . tcp . 80', value: 'drop' })
      .delete({ kind: 'element', map: 'm', key: '10.0.0.3 . tcp . 80' })
      .add({ kind: 'chain', name: 'nat-pre', hook: 'type nat hook prerouting priority dstnat; policy accept;' });
    expect(tx.error).toBeUndefined();
    expect(tx.size).toBe(6);
    expect(tx.toScript()).toBe(
      [
        'add chain inet t svc',
        'add rule inet t svc jump mark',
        'add element inet t m { 10.0.0.1 . tcp . 80 : goto svc, 10.0.0.2 . tcp . 80 : drop }',
        'delete element inet t m { 10.0.0.3 . tcp . 80 }',
        'add chain inet t nat-pre { type nat hook prerouting priority dstnat; policy accept; }',
        '',
      ].join('\n'),
    );
    expect(tx.describe()[3]).toBe('add element inet t m { 10.0.0.2 . tcp . 80 : drop }');
  });

  it('never throws while queuing: the first invalid op is kept and later ops are ignored', () => {
    const tx = new NftTransaction('inet', 't').add({ kind: 'chain', name: 'ok' });
    expect(() => tx.add({ kind: 'chain', name: 'bad name' })).not.toThrow();
    tx.add({ kind: 'chain', name: 'later' }).delete({ kind: 'rule', chain: 'ok', rule: 'drop' });
    expect(tx.error?.message).toBe('nft transaction on inet t: invalid chain name "bad name"');
    expect(tx.ops.map((o) => o.object)).toEqual([{ kind: 'chain', name: 'ok' }]);
  });

  it.each([
    [
      'a rule delete',
      (tx: NftTransaction) => tx.delete({ kind: 'rule', chain: 'c', rule: 'drop' }),
      /cannot delete a rule/,
    ],
    [
      'a rule with a newline',
      (tx: NftTransaction) => tx.add({ kind: 'rule', chain: 'c', rule: 'drop\nflush ruleset' }),
      /invalid rule/,
    ],
    [
      'an element with an empty value',
      (tx: NftTransaction) => tx.add({ kind: 'element', map: 'm', key: '1.2.3.4 . tcp . 80', value: ' ' }),
      /has an invalid value/,
    ],
    [
      'an element key with braces',
      (tx: NftTransaction) => tx.delete({ kind: 'element', map: 'm', key: '1 } ; flush ruleset' }),
      /invalid element key/,
    ],
    ['a set without type', (tx: NftTransaction) => tx.add({ kind: 'set', name: 's', decl: ' ' }), /set s has no type/],
  ])('rejects %s', (_what, queue, message) => {
    const tx = new NftTransaction('inet', 't');
    queue(tx);
    expect(tx.error?.message).toMatch(message);
    expect(tx.size).toBe(0);
  });

  it('a runner refuses a transaction carrying an error without running anything', async () => {
    // nftPath points nowhere: reaching the spawn would fail differently (ENOENT).
    const runner = new NftCliRunner({ nftPath: '/nonexistent/nft' });
    const tx = new NftTransaction('inet', 't').add({ kind: 'chain', name: '9starts-with-digit' });
    await expect(runner.run(tx)).rejects.toThrow(/invalid chain name "9starts-with-digit"/);
  });
});
