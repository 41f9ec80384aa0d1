// nf_tables rule expressions (linux/netfilter/nf_tables.h): a typed form of the expressions
// our rules use, and their netlink encoding (NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA }).
// Only what Switchboard's table needs; decoding keeps unknown expressions as raw attributes so
// a read-back never fails on a rule someone else wrote.

import {
  align4,
  attrLength,
  attrType,
  decodeAttrList,
  decodeAttrs,
  getBe32,
  getStr,
  NLA_HDRLEN,
} from './netlink-attrs.ts';
import { NlWriter } from './netlink-writer.ts';

const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;

/** Verdict codes (NF_DROP, NF_ACCEPT and the NFT_* pseudo-verdicts, as signed 32-bit). */
export const VERDICT_CODES = { drop: 0, accept: 1, continue: -1, break: -2, jump: -3, goto: -4, return: -5 } as const;
export type NftVerdict =
  | { readonly code: 'drop' | 'accept' | 'continue' | 'return' }
  | { readonly code: 'jump' | 'goto'; readonly chain: string };
export type NftData = { readonly value: Buffer } | { readonly verdict: NftVerdict };

export const NFT_REG_VERDICT = 0;
export const NFT_REG_1 = 1;
export const NFT_REG_2 = 2;
export const META = { mark: 3, nfproto: 15, l4proto: 16 } as const;
export const CMP = { eq: 0, neq: 1 } as const;
export const PAYLOAD_BASE = { network: 1, transport: 2 } as const;
export const DYNSET_OP_UPDATE = 1;
export const NG_RANDOM = 1;
export const NAT_DNAT = 1;
export const NF_NAT_RANGE_PROTO_SPECIFIED = 0x2;
export const NF_NAT_RANGE_PROTO_RANDOM_FULLY = 0x10;
export const NFT_REJECT_ICMPX_UNREACH = 2;
export const NFT_REJECT_ICMPX_PORT_UNREACH = 1;
export const NFT_REJECT_TCP_RST = 1;
export const NFT_CT_STATE = 0;
export const NFT_CT_STATUS = 2;
export const NFT_BYTEORDER_HTON = 1;
export const NFT_FIB_RESULT_ADDRTYPE = 3;
export const NFTA_FIB_F_SADDR = 1;
export const NFT_LOOKUP_F_INV = 1;

export type NftExpr =
  | { readonly type: 'meta'; readonly key: number; readonly dreg?: number; readonly sreg?: number }
  | { readonly type: 'cmp'; readonly sreg: number; readonly op: number; readonly data: Buffer }
  | {
      readonly type: 'payload';
      readonly dreg: number;
      readonly base: number;
      readonly offset: number;
      readonly len: number;
    }
  | { readonly type: 'immediate'; readonly dreg: number; readonly data: NftData }
  | {
      readonly type: 'bitwise';
      readonly sreg: number;
      readonly dreg: number;
      readonly len: number;
      readonly mask: Buffer;
      readonly xor: Buffer;
    }
  | {
      readonly type: 'lookup';
      readonly set: string;
      readonly setId?: number;
      readonly sreg: number;
      readonly dreg?: number;
      readonly flags?: number;
    }
  | {
      readonly type: 'dynset';
      readonly set: string;
      readonly setId?: number;
      readonly op: number;
      readonly sregKey: number;
    }
  | { readonly type: 'numgen'; readonly dreg: number; readonly modulus: number; readonly ngType: number }
  | {
      readonly type: 'byteorder';
      readonly sreg: number;
      readonly dreg: number;
      readonly op: number;
      readonly len: number;
      readonly size: number;
    }
  | {
      readonly type: 'nat';
      readonly natType: number;
      readonly family: number;
      readonly regAddrMin: number;
      readonly regProtoMin: number;
      /** NFTA_NAT_FLAGS, sent only when non-zero (as nft does). */
      readonly flags: number;
    }
  | { readonly type: 'masq'; readonly flags: number }
  | { readonly type: 'reject'; readonly rejectType: number; readonly icmpCode: number }
  | { readonly type: 'ct'; readonly key: number; readonly dreg: number }
  | { readonly type: 'fib'; readonly dreg: number; readonly result: number; readonly flags: number }
  /** An expression we do not model (read back from a table someone edited). */
  | { readonly type: 'other'; readonly name: string };

export function writeVerdict(w: NlWriter, v: NftVerdict): void {
  const at = w.nest(NFTA_DATA_VERDICT);
  w.be32(NFTA_VERDICT_CODE, VERDICT_CODES[v.code]);
  if (v.code === 'jump' || v.code === 'goto') w.str(NFTA_VERDICT_CHAIN, v.chain);
  w.end(at);
}

/** An NFTA_DATA_* nest (the content of a KEY/DATA/CMP_DATA attribute) of type `type`. */
export function writeData(w: NlWriter, type: number, d: NftData): void {
  const at = w.nest(type);
  if ('value' in d) w.attr(NFTA_DATA_VALUE, d.value);
  else writeVerdict(w, d.verdict);
  w.end(at);
}

const scratch = new NlWriter(4096);
/** writeData as a Buffer of its own. */
export function encodeData(type: number, d: NftData): Buffer {
  writeData(scratch.reset(), type, d);
  return scratch.copy();
}

export function decodeData(buf: Buffer): NftData {
  return decodeDataAt(buf, 0, buf.length);
}

/** Verdict names by code (decodeDataAt's reverse of VERDICT_CODES). */
const VERDICT_NAMES = new Map(
  (Object.keys(VERDICT_CODES) as (keyof typeof VERDICT_CODES)[]).map((k) => [VERDICT_CODES[k] as number, k] as const),
);

/**
 * decodeData of the NFTA_DATA_* attributes in buf[start, end), read in place (a whole-table read
 * decodes two per set element, ~300k at 10k services: no attribute map per nest). A value is
 * copied out, as decodeData always did: no element keeps its datagram's buffer alive.
 */
export function decodeDataAt(buf: Buffer, start: number, end: number): NftData {
  let value = -1;
  let valueEnd = -1;
  let verdict = -1;
  let verdictEnd = -1;
  for (let off = start; off + NLA_HDRLEN <= end; ) {
    const len = attrLength(buf, off, start, end);
    const type = attrType(buf, off);
    // the last of a type wins, as in decodeAttrs
    if (type === NFTA_DATA_VALUE) {
      value = off + NLA_HDRLEN;
      valueEnd = off + len;
    } else if (type === NFTA_DATA_VERDICT) {
      verdict = off + NLA_HDRLEN;
      verdictEnd = off + len;
    }
    off += align4(len);
  }
  if (verdict >= 0) return { verdict: decodeVerdictAt(buf, verdict, verdictEnd) };
  return { value: value >= 0 ? Buffer.from(buf.subarray(value, valueEnd)) : Buffer.alloc(0) };
}

function decodeVerdictAt(buf: Buffer, start: number, end: number): NftVerdict {
  let code = -1;
  let chain = -1;
  for (let off = start; off + NLA_HDRLEN <= end; ) {
    const len = attrLength(buf, off, start, end);
    const type = attrType(buf, off);
    if (type === NFTA_VERDICT_CODE) code = off;
    else if (type === NFTA_VERDICT_CHAIN) chain = off;
    off += align4(len);
  }
  if (code < 0) throw new Error('missing attribute NFTA_VERDICT_CODE');
  const codeBytes = buf.readUInt16LE(code) - NLA_HDRLEN;
  if (codeBytes < 4) throw new Error(`attribute NFTA_VERDICT_CODE is ${codeBytes} bytes, expected 4`);
  const value = buf.readInt32BE(code + NLA_HDRLEN);
  const name = VERDICT_NAMES.get(value);
  if (name === 'jump' || name === 'goto') {
    if (chain < 0) throw new Error('missing attribute NFTA_VERDICT_CHAIN');
    const from = chain + NLA_HDRLEN;
    const to = chain + buf.readUInt16LE(chain);
    const z = buf.indexOf(0, from);
    return { code: name, chain: buf.toString('utf8', from, z < 0 || z > to ? to : z) };
  }
  if (name === undefined || name === 'break') throw new Error(`unknown verdict code ${value}`);
  return { code: name };
}

function writeBody(w: NlWriter, e: NftExpr): void {
  switch (e.type) {
    case 'meta':
      w.be32(2, e.key);
      if (e.dreg !== undefined) w.be32(1, e.dreg);
      else w.be32(3, e.sreg ?? 0);
      return;
    case 'cmp':
      w.be32(1, e.sreg).be32(2, e.op);
      writeData(w, 3, { value: e.data });
      return;
    case 'payload':
      w.be32(1, e.dreg).be32(2, e.base).be32(3, e.offset).be32(4, e.len);
      return;
    case 'immediate':
      w.be32(1, e.dreg);
      writeData(w, 2, e.data);
      return;
    case 'bitwise':
      w.be32(1, e.sreg).be32(2, e.dreg).be32(3, e.len);
      writeData(w, 4, { value: e.mask });
      writeData(w, 5, { value: e.xor });
      return;
    case 'lookup':
      w.str(1, e.set).be32(2, e.sreg);
      if (e.dreg !== undefined) w.be32(3, e.dreg);
      if (e.setId !== undefined) w.be32(4, e.setId);
      if (e.flags) w.be32(5, e.flags);
      return;
    case 'dynset':
      w.str(1, e.set);
      if (e.setId !== undefined) w.be32(2, e.setId);
      w.be32(3, e.op).be32(4, e.sregKey);
      return;
    case 'numgen':
      w.be32(1, e.dreg).be32(2, e.modulus).be32(3, e.ngType).be32(4, 0);
      return;
    case 'byteorder':
      w.be32(1, e.sreg).be32(2, e.dreg).be32(3, e.op).be32(4, e.len).be32(5, e.size);
      return;
    case 'nat':
      w.be32(1, e.natType).be32(2, e.family).be32(3, e.regAddrMin).be32(5, e.regProtoMin);
      if (e.flags !== 0) w.be32(7, e.flags);
      return;
    case 'masq':
      w.be32(1, e.flags);
      return;
    case 'reject':
      w.be32(1, e.rejectType).u8(2, e.icmpCode);
      return;
    case 'ct':
      w.be32(2, e.key).be32(1, e.dreg);
      return;
    case 'fib':
      w.be32(1, e.dreg).be32(2, e.result).be32(3, e.flags);
      return;
    case 'other':
      throw new Error(`cannot encode unknown expression ${e.name}`);
  }
}

/** NFTA_RULE_EXPRESSIONS content: one NFTA_LIST_ELEM { NAME, DATA } per expression. */
export function writeExprs(w: NlWriter, exprs: readonly NftExpr[]): void {
  for (const e of exprs) {
    const el = w.nest(NFTA_LIST_ELEM);
    w.str(NFTA_EXPR_NAME, e.type);
    const data = w.nest(NFTA_EXPR_DATA);
    writeBody(w, e);
    w.end(data).end(el);
  }
}

/** writeExprs as one Buffer per expression. */
export function encodeExprs(exprs: readonly NftExpr[]): Buffer[] {
  return exprs.map((e) => {
    writeExprs(scratch.reset(), [e]);
    return scratch.copy();
  });
}

const u32 = (m: Map<number, Buffer>, t: number): number => (m.has(t) ? getBe32(m, t) : 0);

function bytesOf(buf: Buffer | undefined): Buffer {
  const d = buf ? decodeData(buf) : undefined;
  return d && 'value' in d ? d.value : Buffer.alloc(0);
}

function decodeExpr(name: string, m: Map<number, Buffer>): NftExpr {
  switch (name) {
    case 'meta':
      return m.has(1)
        ? { type: 'meta', key: u32(m, 2), dreg: u32(m, 1) }
        : { type: 'meta', key: u32(m, 2), sreg: u32(m, 3) };
    case 'cmp':
      return { type: 'cmp', sreg: u32(m, 1), op: u32(m, 2), data: bytesOf(m.get(3)) };
    case 'payload':
      return { type: 'payload', dreg: u32(m, 1), base: u32(m, 2), offset: u32(m, 3), len: u32(m, 4) };
    case 'immediate':
      return { type: 'immediate', dreg: u32(m, 1), data: decodeData(m.get(2) ?? Buffer.alloc(0)) };
    case 'bitwise':
      return {
        type: 'bitwise',
        sreg: u32(m, 1),
        dreg: u32(m, 2),
        len: u32(m, 3),
        mask: bytesOf(m.get(4)),
        xor: bytesOf(m.get(5)),
      };
    case 'lookup':
      return {
        type: 'lookup',
        set: getStr(m, 1),
        sreg: u32(m, 2),
        ...(m.has(3) ? { dreg: u32(m, 3) } : {}),
        ...(m.has(4) ? { setId: u32(m, 4) } : {}),
        ...(m.has(5) ? { flags: u32(m, 5) } : {}),
      };
    case 'dynset':
      return { type: 'dynset', set: getStr(m, 1), op: u32(m, 3), sregKey: u32(m, 4) };
    case 'numgen':
      return { type: 'numgen', dreg: u32(m, 1), modulus: u32(m, 2), ngType: u32(m, 3) };
    case 'byteorder':
      return { type: 'byteorder', sreg: u32(m, 1), dreg: u32(m, 2), op: u32(m, 3), len: u32(m, 4), size: u32(m, 5) };
    case 'nat':
      return {
        type: 'nat',
        natType: u32(m, 1),
        family: u32(m, 2),
        regAddrMin: u32(m, 3),
        regProtoMin: u32(m, 5),
        flags: u32(m, 7),
      };
    case 'masq':
      return { type: 'masq', flags: u32(m, 1) };
    case 'reject':
      return { type: 'reject', rejectType: u32(m, 1), icmpCode: m.get(2)?.readUInt8(0) ?? 0 };
    case 'ct':
      return { type: 'ct', key: u32(m, 2), dreg: u32(m, 1) };
    case 'fib':
      return { type: 'fib', dreg: u32(m, 1), result: u32(m, 2), flags: u32(m, 3) };
    default:
      return { type: 'other', name };
  }
}

/** Decodes NFTA_RULE_EXPRESSIONS. */
export function decodeExprs(buf: Buffer): NftExpr[] {
  return decodeAttrList(buf).map((el) => {
    const m = decodeAttrs(el.data);
    return decodeExpr(
      getStr(m, NFTA_EXPR_NAME, 'NFTA_EXPR_NAME'),
      decodeAttrs(m.get(NFTA_EXPR_DATA) ?? Buffer.alloc(0)),
    );
  });
}
