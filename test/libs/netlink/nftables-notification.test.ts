// nf_tables notifications (NFNLGRP_NFTABLES) decoded from the bytes the kernel sends: the same
// message layouts as requests (a notification of a new rule is a NEWRULE message), so they are
// built here with the request encoders, plus NEWGEN, framed as one datagram.
import { describe, expect, it } from 'vitest';
import { be32Attr } from '../../../libs/netlink/netlink-attrs.ts';
import { encodeMessage } from '../../../libs/netlink/netlink-message.ts';
import {
  decodeNotification,
  decodeNotifications,
  delChain,
  flushRules,
  newChain,
  delTable,
  newRule,
  newSet,
  nfgenmsg,
  NFT_MSG,
  nftType,
  setElems,
  type NftMessage,
} from '../../../libs/netlink/index.ts';

const t = { family: 1, table: 'sb' };
const datagram = (msgs: { type: number; payload: Buffer }[]) =>
  Buffer.concat(msgs.map((m, i) => encodeMessage({ type: m.type, flags: 0, seq: i, pid: 0, payload: m.payload })));
const newGen = (g: number) => ({
  type: nftType(NFT_MSG.NEWGEN),
  payload: Buffer.concat([nfgenmsg(0), be32Attr(1, g)]),
});
const of = (m: NftMessage) => ({ type: m.type, payload: m.payload });

describe('decodeNotification', () => {
  it('names the chain of a rule, the set of elements, and the generation a commit ended with', () => {
    const elems = setElems(
      'del',
      t,
      'service-ips',
      [{ key: Buffer.from([10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]) }],
      '',
    );
    const got = decodeNotifications(
      datagram([
        of(newRule(t, 'service-X', [], '')),
        of(delChain(t, 'external-Y', '')),
        of(flushRules(t, 'nat-output', '')),
        of(newChain(t, 'renamed-W', undefined, '')),
        of(newSet(t, { name: 'endpoints-Z', id: 1, flags: 0xc, keyType: 0, keyLen: 4 }, '')),
        of(elems),
        of(delTable(t, '')),
        newGen(42),
      ]),
    );
    expect(got.map((n) => ({ ...n, elements: undefined }))).toEqual([
      { kind: 'chain', family: 1, table: 'sb', name: 'service-X', elements: undefined },
      // DELCHAIN (and DELRULE): deleted, what makes a base chain's notification a drift signal.
      { kind: 'chain', family: 1, table: 'sb', name: 'external-Y', deleted: true, elements: undefined },
      { kind: 'chain', family: 1, table: 'sb', name: 'nat-output', deleted: true, elements: undefined },
      // NEWCHAIN: created, updated or renamed (a rename names only the new chain).
      { kind: 'chain', family: 1, table: 'sb', name: 'renamed-W', newChain: true, elements: undefined },
      { kind: 'set', family: 1, table: 'sb', name: 'endpoints-Z', elements: undefined },
      { kind: 'elements', family: 1, table: 'sb', name: 'service-ips', elements: undefined },
      { kind: 'table', family: 1, table: 'sb', deleted: true, elements: undefined },
      { kind: 'gen', gen: 42, elements: undefined },
    ]);
    const el = got[5] as { readonly elements: readonly { key: Buffer }[] };
    expect(el.elements.map((e) => [...e.key])).toEqual([[10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]]);
  });

  it('marks what it does not read as other, and skips other subsystems', () => {
    const obj = {
      type: nftType(18 /* NFT_MSG_NEWOBJ */),
      payload: Buffer.concat([nfgenmsg(1), Buffer.from([8, 0, 1, 0, 0x73, 0x62, 0, 0])]),
    };
    expect(decodeNotification(obj.type, obj.payload)).toEqual({ kind: 'other', family: 1, table: 'sb' });
    // A rule notification without its chain attribute cannot be attributed.
    const bare = {
      type: nftType(NFT_MSG.NEWRULE),
      payload: Buffer.concat([nfgenmsg(1), Buffer.from([8, 0, 1, 0, 0x73, 0x62, 0, 0])]),
    };
    expect(decodeNotification(bare.type, bare.payload)).toEqual({ kind: 'other', family: 1, table: 'sb' });
    expect(decodeNotification((11 << 8) | 1, nfgenmsg(1))).toBeUndefined();
  });
});
