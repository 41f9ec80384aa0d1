// nf_tables netlink messages (linux/netfilter/nf_tables.h, nfnetlink.h): tables, chains, rules,
// sets and set elements, and the batch framing that makes a series of them one atomic
// transaction (NFNL_MSG_BATCH_BEGIN ... NFNL_MSG_BATCH_END, as `nft -f` sends). Pure.

import {
  align4,
  attrLength,
  attrType,
  decodeAttrs,
  getBe32,
  getStr,
  NLA_HDRLEN,
  optStr,
  strAttr,
} from './netlink-attrs.ts';
import { NlWriter } from './netlink-writer.ts';
import { decodeDataAt, decodeExprs, writeData, writeExprs, type NftData, type NftExpr } from './nftables-expr.ts';
import { decodeMessages, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL } from './netlink-message.ts';

export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 0x10;
export const NFNL_MSG_BATCH_END = 0x11;
export const NFPROTO = { inet: 1, ip: 2, ip6: 10 } as const;

export const NFT_MSG = {
  NEWTABLE: 0,
  GETTABLE: 1,
  DELTABLE: 2,
  NEWCHAIN: 3,
  GETCHAIN: 4,
  DELCHAIN: 5,
  NEWRULE: 6,
  GETRULE: 7,
  DELRULE: 8,
  NEWSET: 9,
  GETSET: 10,
  DELSET: 11,
  NEWSETELEM: 12,
  GETSETELEM: 13,
  DELSETELEM: 14,
  NEWGEN: 15,
  GETGEN: 16,
} as const;
export const nftType = (msg: number): number => (NFNL_SUBSYS_NFTABLES << 8) | msg;

export const NFT_SET_FLAGS = {
  anonymous: 0x1,
  constant: 0x2,
  interval: 0x4,
  map: 0x8,
  timeout: 0x10,
  eval: 0x20,
} as const;
export const NFT_SET_ELEM_INTERVAL_END = 0x1;
/** NFT_DATA_VERDICT: the data type of a verdict map. */
export const NFT_DATA_VERDICT = 0xffffff00;

/** One message of a batch, before sequence numbers are assigned. */
export interface NftMessage {
  readonly type: number;
  readonly flags: number;
  readonly payload: Buffer;
  /** For errors: which operation this is (`add rule inet t c ...`). */
  readonly operation: string;
}

/** struct nfgenmsg { u8 family; u8 version; be16 res_id; } */
export function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  b.writeUInt16BE(resId, 2);
  return b;
}

// Every message is written into this one buffer and copied out once: see netlink-writer.ts.
const w = new NlWriter();
const genHeaders = new Map<number, Buffer>();
const msg = (
  type: number,
  flags: number,
  family: number,
  fill: (w: NlWriter) => void,
  operation: string,
): NftMessage => {
  let h = genHeaders.get(family);
  if (!h) genHeaders.set(family, (h = nfgenmsg(family)));
  fill(w.reset().raw(h));
  return { type: nftType(type), flags, payload: w.copy(), operation };
};

/** The batch delimiters; res_id names the subsystem the batch is for. */
export const batchBegin = (): NftMessage => ({
  type: NFNL_MSG_BATCH_BEGIN,
  flags: 0,
  payload: nfgenmsg(0, NFNL_SUBSYS_NFTABLES),
  operation: 'batch begin',
});
export const batchEnd = (): NftMessage => ({
  type: NFNL_MSG_BATCH_END,
  flags: 0,
  payload: nfgenmsg(0, NFNL_SUBSYS_NFTABLES),
  operation: 'batch end',
});

export interface TableRef {
  readonly family: number;
  readonly table: string;
}

export const newTable = (t: TableRef, op: string, excl = false): NftMessage =>
  msg(NFT_MSG.NEWTABLE, NLM_F_CREATE | (excl ? NLM_F_EXCL : 0), t.family, (w) => w.str(1, t.table).be32(2, 0), op);
export const delTable = (t: TableRef, op: string): NftMessage =>
  msg(NFT_MSG.DELTABLE, 0, t.family, (w) => w.str(1, t.table), op);

export interface ChainHook {
  readonly type: string;
  readonly hooknum: number;
  readonly priority: number;
  readonly policy: number;
}

export function newChain(t: TableRef, name: string, hook: ChainHook | undefined, op: string, excl = false): NftMessage {
  const fill = (w: NlWriter) => {
    w.str(1, t.table).str(3, name);
    if (hook) {
      const at = w.nest(4);
      w.be32(1, hook.hooknum).be32(2, hook.priority).end(at);
      w.be32(5, hook.policy).str(7, hook.type);
    }
  };
  return msg(NFT_MSG.NEWCHAIN, NLM_F_CREATE | (excl ? NLM_F_EXCL : 0), t.family, fill, op);
}
export const delChain = (t: TableRef, name: string, op: string): NftMessage =>
  msg(NFT_MSG.DELCHAIN, 0, t.family, (w) => w.str(1, t.table).str(3, name), op);
/** Deletes every rule of `chain` (of the whole table when chain is undefined): `flush chain`. */
export const flushRules = (t: TableRef, chain: string | undefined, op: string): NftMessage =>
  msg(
    NFT_MSG.DELRULE,
    0,
    t.family,
    (w) => (chain === undefined ? w.str(1, t.table) : w.str(1, t.table).str(2, chain)),
    op,
  );
export const newRule = (t: TableRef, chain: string, exprs: readonly NftExpr[], op: string): NftMessage =>
  msg(
    NFT_MSG.NEWRULE,
    NLM_F_CREATE | NLM_F_APPEND,
    t.family,
    (w) => {
      w.str(1, t.table).str(2, chain);
      const at = w.nest(4);
      writeExprs(w, exprs);
      w.end(at);
    },
    op,
  );

export interface NftSetSpec {
  readonly name: string;
  readonly flags: number;
  readonly keyType: number;
  readonly keyLen: number;
  readonly dataType?: number;
  readonly dataLen?: number;
  /** Batch-local id: rules and elements in the same batch refer to a new set by it. */
  readonly id: number;
  readonly timeoutMs?: number;
  /** NFTA_SET_DESC_SIZE (nft sends it for anonymous sets: their element count). */
  readonly size?: number;
  /** nft's NFTA_SET_USERDATA (key byte order, typeof info) so `nft list` prints the set as nft would. */
  readonly userdata?: Buffer;
}

export function newSet(t: TableRef, s: NftSetSpec, op: string, excl = false): NftMessage {
  const fill = (w: NlWriter) => {
    w.str(1, t.table).str(2, s.name).be32(3, s.flags).be32(4, s.keyType).be32(5, s.keyLen);
    if (s.dataType !== undefined) w.be32(6, s.dataType).be32(7, s.dataLen ?? 0);
    if (s.size !== undefined) {
      const at = w.nest(9);
      w.be32(1, s.size).end(at);
    }
    w.be32(10, s.id);
    if (s.timeoutMs !== undefined) w.be64(11, BigInt(s.timeoutMs));
    if (s.userdata) w.attr(13, s.userdata);
  };
  return msg(NFT_MSG.NEWSET, NLM_F_CREATE | (excl ? NLM_F_EXCL : 0), t.family, fill, op);
}
export const delSet = (t: TableRef, name: string, op: string): NftMessage =>
  msg(NFT_MSG.DELSET, 0, t.family, (w) => w.str(1, t.table).str(2, name), op);

export interface NftElement {
  readonly key: Buffer;
  readonly data?: NftData;
  readonly intervalEnd?: boolean;
}

function writeElement(w: NlWriter, e: NftElement): void {
  const at = w.nest(1);
  writeData(w, 1, { value: e.key });
  if (e.data) writeData(w, 2, e.data);
  if (e.intervalEnd) w.be32(3, NFT_SET_ELEM_INTERVAL_END);
  w.end(at);
}

/** NEWSETELEM / DELSETELEM for `set` (addressed by name, or by batch id for a set of this batch). */
export function setElems(
  kind: 'new' | 'del',
  t: TableRef,
  set: string,
  elements: readonly NftElement[],
  op: string,
  opts: { setId?: number; excl?: boolean; byIdOnly?: boolean } = {},
): NftMessage {
  const fill = (w: NlWriter) => {
    w.str(1, t.table);
    if (!(opts.byIdOnly && opts.setId !== undefined)) w.str(2, set);
    if (opts.setId !== undefined) w.be32(4, opts.setId);
    if (elements.length > 0) {
      const at = w.nest(3);
      for (const e of elements) writeElement(w, e);
      w.end(at);
    }
  };
  const type = kind === 'new' ? NFT_MSG.NEWSETELEM : NFT_MSG.DELSETELEM;
  return msg(type, kind === 'new' ? NLM_F_CREATE | (opts.excl ? NLM_F_EXCL : 0) : 0, t.family, fill, op);
}

// ---- Dump requests and decoders -----------------------------------------------------------

/** Payload of NFT_MSG_GETGEN: the netns ruleset generation, not tied to a family or table. */
export const getGenRequest = (): Buffer => nfgenmsg(0);

/**
 * NFTA_GEN_ID of a NEWGEN reply: nf_tables' ruleset generation (base_seq) of the netns, which
 * every commit that changes anything bumps by one (skipping 0 when it wraps).
 */
export function decodeGen(payload: Buffer): number {
  return getBe32(attrsOf(payload), 1, 'NFTA_GEN_ID');
}

/** Payload of a GET dump request filtered on one table (and one set for elements). */
export function dumpRequest(t: TableRef, set?: string): Buffer {
  return Buffer.concat([nfgenmsg(t.family), strAttr(1, t.table), ...(set === undefined ? [] : [strAttr(2, set)])]);
}

/** Payload of a GETCHAIN for one chain (not a dump: answered with the chain, or ENOENT). */
export function getChainRequest(t: TableRef, chain: string): Buffer {
  return Buffer.concat([nfgenmsg(t.family), strAttr(1, t.table), strAttr(3, chain)]);
}

/** Payload of a GETSETELEM for the elements with these keys (not a dump: ENOENT when one is absent). */
export function getSetElemRequest(t: TableRef, set: string, keys: readonly Buffer[]): Buffer {
  return setElems(
    'new',
    t,
    set,
    keys.map((key) => ({ key })),
    '',
  ).payload;
}

export interface DumpedTable {
  readonly name: string;
  readonly handle: bigint;
}
export interface DumpedChain {
  readonly name: string;
  readonly handle: bigint;
  readonly hooked: boolean;
}
export interface DumpedRule {
  readonly chain: string;
  readonly handle: bigint;
  readonly exprs: NftExpr[];
}
export interface DumpedSet {
  readonly name: string;
  readonly flags: number;
  readonly keyType: number;
  readonly keyLen: number;
  readonly dataType?: number;
  readonly userdata?: Buffer;
}
export interface DumpedElement {
  readonly key: Buffer;
  readonly data?: NftData;
  readonly intervalEnd: boolean;
}

const attrsOf = (payload: Buffer) => decodeAttrs(payload.subarray(4));
const be64 = (m: Map<number, Buffer>, t: number): bigint => m.get(t)?.readBigUInt64BE(0) ?? -1n;

export function decodeTable(payload: Buffer): DumpedTable {
  const m = attrsOf(payload);
  return { name: getStr(m, 1, 'NFTA_TABLE_NAME'), handle: be64(m, 4) };
}

export function decodeChain(payload: Buffer): DumpedChain {
  const m = attrsOf(payload);
  return { name: getStr(m, 3, 'NFTA_CHAIN_NAME'), handle: be64(m, 2), hooked: m.has(4) };
}

export function decodeRule(payload: Buffer): DumpedRule {
  const m = attrsOf(payload);
  return { chain: getStr(m, 2, 'NFTA_RULE_CHAIN'), handle: be64(m, 3), exprs: m.has(4) ? decodeExprs(m.get(4)!) : [] };
}

export function decodeSet(payload: Buffer): DumpedSet {
  const m = attrsOf(payload);
  return {
    name: getStr(m, 2, 'NFTA_SET_NAME'),
    flags: m.has(3) ? getBe32(m, 3) : 0,
    keyType: m.has(4) ? getBe32(m, 4) : 0,
    keyLen: m.has(5) ? getBe32(m, 5) : 0,
    ...(m.has(6) ? { dataType: getBe32(m, 6) } : {}),
    ...(m.has(13) ? { userdata: Buffer.from(m.get(13)!) } : {}),
  };
}

/** The nfgenmsg header before a message's attributes. */
const NFGENMSG_LEN = 4;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_FLAGS = 3;

/**
 * Elements of one GETSETELEM dump message, read in place: a whole-table read decodes ~300k
 * elements at 10k services, and an attribute map and list per element and per nest made
 * decoding them (with their text) about three times as costly, mostly in garbage
 * (docs/benchmarks.md, nftables, "Where the whole read's time goes").
 */
export function decodeSetElems(payload: Buffer): { set: string; elements: DumpedElement[] } {
  let set = '';
  const elements: DumpedElement[] = [];
  let list = -1;
  let listEnd = -1;
  const end = payload.length;
  for (let off = NFGENMSG_LEN; off + NLA_HDRLEN <= end; ) {
    const len = attrLength(payload, off, NFGENMSG_LEN, end);
    const type = attrType(payload, off);
    if (type === NFTA_SET_ELEM_LIST_SET) set = cString(payload, off + NLA_HDRLEN, off + len);
    else if (type === NFTA_SET_ELEM_LIST_ELEMENTS) {
      list = off + NLA_HDRLEN; // the last one wins, as in decodeAttrs
      listEnd = off + len;
    }
    off += align4(len);
  }
  if (list < 0) return { set, elements };
  // every length checked before any element is read: a damaged reply is refused for its first
  // bad length, as splitting the list first refused it
  for (let off = list; off + NLA_HDRLEN <= listEnd; ) off += align4(attrLength(payload, off, list, listEnd));
  for (let off = list; off + NLA_HDRLEN <= listEnd; ) {
    const len = payload.readUInt16LE(off);
    elements.push(decodeSetElemAt(payload, off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return { set, elements };
}

/**
 * One NFTA_LIST_ELEM's NFTA_SET_ELEM_* attributes in buf[start, end): the last of each type
 * counts (as in decodeAttrs), read key, data, then flags once every length is checked.
 */
function decodeSetElemAt(buf: Buffer, start: number, end: number): DumpedElement {
  let key = -1;
  let data = -1;
  let flags = -1;
  for (let off = start; off + NLA_HDRLEN <= end; ) {
    const len = attrLength(buf, off, start, end);
    const type = attrType(buf, off);
    if (type === NFTA_SET_ELEM_KEY) key = off;
    else if (type === NFTA_SET_ELEM_DATA) data = off;
    else if (type === NFTA_SET_ELEM_FLAGS) flags = off;
    off += align4(len);
  }
  const k = key < 0 ? undefined : decodeDataAt(buf, key + NLA_HDRLEN, key + buf.readUInt16LE(key));
  const keyBytes = k !== undefined && 'value' in k ? k.value : Buffer.alloc(0);
  const d = data < 0 ? undefined : decodeDataAt(buf, data + NLA_HDRLEN, data + buf.readUInt16LE(data));
  let intervalEnd = false;
  if (flags >= 0) {
    const n = buf.readUInt16LE(flags) - NLA_HDRLEN;
    if (n < 4) throw new Error(`attribute 3 is ${n} bytes, expected 4`);
    intervalEnd = (buf.readUInt32BE(flags + NLA_HDRLEN) & NFT_SET_ELEM_INTERVAL_END) !== 0;
  }
  return d === undefined ? { key: keyBytes, intervalEnd } : { key: keyBytes, data: d, intervalEnd };
}

/** A NUL-terminated string attribute's text in buf[start, end) (getStr's reading). */
function cString(buf: Buffer, start: number, end: number): string {
  const z = buf.indexOf(0, start);
  return buf.toString('utf8', start, z < 0 || z > end ? end : z);
}

/** The nfnetlink multicast group nf_tables announces every committed change on (`nft monitor`). */
export const NFNLGRP_NFTABLES = 7;

/**
 * What one nf_tables notification names: the object a commit changed (`chain` for a chain and
 * for a rule, by its chain; `set` for a set; `elements` for elements added to or deleted from a
 * set, with them), or, for NEWGEN, the generation the commit ended with. nf_tables sends a
 * commit's object notifications first and its NEWGEN last, all while it holds the commit mutex,
 * so on one socket every commit's notifications arrive together, closed by its NEWGEN. `kind` is
 * `other` for a message this reader does not interpret (objects, flowtables, a future type, one
 * without its name): a reader must then assume anything of that table may have changed.
 */
export type NftNotification =
  | { readonly kind: 'gen'; readonly gen: number }
  | {
      readonly kind: 'table' | 'other';
      readonly family: number;
      readonly table: string;
      /** A DELTABLE (a table notification only). */
      readonly deleted?: true;
    }
  | {
      readonly kind: 'chain' | 'set';
      readonly family: number;
      readonly table: string;
      readonly name: string;
      /**
       * A NEWCHAIN (not a rule change): the chain was created, updated or renamed. A rename's
       * notification carries only the new name (nf_tables_commit), so the old one goes unnamed.
       */
      readonly newChain?: true;
      /** A DELCHAIN or DELRULE: the chain, or rules of it, were deleted. */
      readonly deleted?: true;
    }
  | {
      readonly kind: 'elements';
      readonly family: number;
      readonly table: string;
      readonly name: string;
      readonly elements: readonly DumpedElement[];
    };

/**
 * Decodes one message received on NFNLGRP_NFTABLES (its netlink type and payload). Undefined for
 * a message of another nfnetlink subsystem. Throws on a malformed payload. Pure.
 */
export function decodeNotification(type: number, payload: Buffer): NftNotification | undefined {
  if (type >> 8 !== NFNL_SUBSYS_NFTABLES) return undefined;
  const msg = type & 0xff;
  const m = attrsOf(payload);
  if (msg === NFT_MSG.NEWGEN) return { kind: 'gen', gen: getBe32(m, 1, 'NFTA_GEN_ID') };
  const family = payload.readUInt8(0);
  const table = optStr(m, 1) ?? '';
  const named = (kind: 'chain' | 'set', name: string | undefined): NftNotification =>
    name === undefined ? { kind: 'other', family, table } : { kind, family, table, name };
  switch (msg) {
    case NFT_MSG.NEWTABLE:
      return { kind: 'table', family, table };
    case NFT_MSG.DELTABLE:
      return { kind: 'table', family, table, deleted: true };
    case NFT_MSG.NEWCHAIN: {
      const n = named('chain', optStr(m, 3)); // NFTA_CHAIN_NAME
      return n.kind === 'chain' ? { ...n, newChain: true } : n;
    }
    case NFT_MSG.DELCHAIN: {
      const n = named('chain', optStr(m, 3));
      return n.kind === 'chain' ? { ...n, deleted: true } : n;
    }
    case NFT_MSG.NEWRULE:
      return named('chain', optStr(m, 2)); // NFTA_RULE_CHAIN
    case NFT_MSG.DELRULE: {
      const n = named('chain', optStr(m, 2));
      return n.kind === 'chain' ? { ...n, deleted: true } : n;
    }
    case NFT_MSG.NEWSET:
    case NFT_MSG.DELSET:
      return named('set', optStr(m, 2)); // NFTA_SET_NAME
    case NFT_MSG.NEWSETELEM:
    case NFT_MSG.DELSETELEM: {
      const { set, elements } = decodeSetElems(payload);
      return set === '' ? { kind: 'other', family, table } : { kind: 'elements', family, table, name: set, elements };
    }
    default:
      return { kind: 'other', family, table };
  }
}

/** The nf_tables notifications of one datagram received on NFNLGRP_NFTABLES, in order. Throws when malformed. Pure. */
export function decodeNotifications(datagram: Buffer): NftNotification[] {
  const out: NftNotification[] = [];
  for (const m of decodeMessages(datagram)) {
    const n = decodeNotification(m.type, m.payload);
    if (n) out.push(n);
  }
  return out;
}
