// Compiles the nft syntax our renderer emits (nft-objects.ts, nft-skeleton.ts) to nf_tables
// expressions, exactly as `nft` 1.0 compiles the same text (checked with `nft --debug=netlink`
// and by the netns property test that compares `nft list table` of both paths). It is a closed
// grammar: a rule outside it is an error, never a guess. Pure.

import { ipToBytes, writeIpv4 } from '../../netlink/index.ts';
import {
  CMP,
  DYNSET_OP_UPDATE,
  META,
  NAT_DNAT,
  NFTA_FIB_F_SADDR,
  NFT_BYTEORDER_HTON,
  NFT_CT_STATE,
  NFT_CT_STATUS,
  NFT_FIB_RESULT_ADDRTYPE,
  NFT_LOOKUP_F_INV,
  NFT_REG_1,
  NFT_REG_VERDICT,
  NFT_REJECT_ICMPX_PORT_UNREACH,
  NFT_REJECT_ICMPX_UNREACH,
  NFT_REJECT_TCP_RST,
  NF_NAT_RANGE_PROTO_RANDOM_FULLY,
  NF_NAT_RANGE_PROTO_SPECIFIED,
  NG_RANDOM,
  PAYLOAD_BASE,
  type NftData,
  type NftExpr,
  type NftVerdict,
} from '../../netlink/index.ts';
import type { NftElement, NftSetSpec } from '../../netlink/index.ts';
import { NFT_DATA_VERDICT, NFT_SET_FLAGS } from '../../netlink/index.ts';
import { bytesToIp } from '../../netlink/index.ts';
import { slotRangeText } from './nft-objects.ts';

/** An anonymous set a rule needs (`{ ... }` in its text), created in the same batch. */
export interface AnonymousSet {
  readonly spec: Omit<NftSetSpec, 'name' | 'id'>;
  readonly prefix: '__set' | '__map';
  readonly elements: readonly NftElement[];
}
/** Gives an anonymous set its batch name (`__map%d`) and id. */
export type AllocAnonymousSet = (set: AnonymousSet) => { name: string; id: number };

const PROTO: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };
const PROTO_NAME: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
const NFPROTO_IPV4 = 2;
const NFPROTO_IPV6 = 10;
const RTN_LOCAL = 2;
const CT_STATE_NEW = 0x8;
const IPS_DST_NAT = 0x20;
// nft's type ids (datatype.h) and the concatenation of ipv4_addr . inet_proto . inet_service.
const TYPE = {
  integer: 4,
  ipv4_addr: 7,
  ipv6_addr: 8,
  concat4: (7 << 12) | (12 << 6) | 13,
  concat6: (8 << 12) | (12 << 6) | 13,
  // Endpoint map data (ipv4_addr . inet_service) and hairpin keys (ipv4_addr . ipv4_addr).
  addrPort4: (7 << 6) | 13,
  addrPort6: (8 << 6) | 13,
  addrPair4: (7 << 6) | 7,
  addrPair6: (8 << 6) | 8,
};
// nft's NFTA_SET_USERDATA for each set shape we create (key byte order, typeof, merge flag), as
// nft 1.0.6 writes them: with them `nft list` prints our sets exactly like sets nft made.
const USERDATA = {
  addrSet: Buffer.from('000402000000', 'hex'),
  dispatchMap: Buffer.from('000400000000010400000000030800040d0000000100060400000000', 'hex'),
  numgenMap: Buffer.from('00040100000001040000000004080004010000000100060400000000', 'hex'),
  interval4: Buffer.from('0004020000000204010000000314000407000000010c00040c00000001040b000000', 'hex'),
  interval6: Buffer.from('0004020000000204010000000314000407000000010c00040d000000010408000000', 'hex'),
  addrPair: Buffer.from('000400000000030800040d0000000100', 'hex'),
};

/**
 * nft's userdata of `typeof numgen random mod 65536 : ip[6] daddr . PROTO dport` (it keeps the
 * typeof expressions: numgen, the network header's daddr, the transport header's dport).
 */
function endpointMapUserdata(v6: boolean, proto: string): Buffer {
  const transport: Record<string, string> = { tcp: '08', udp: '06', sctp: '0a' };
  const t = transport[proto];
  if (t === undefined) throw new NftGrammarError(`unknown protocol ${proto}`);
  return Buffer.from(
    '000401000000010400000000031a0004170000000112000401000000010400000100020400000000043400040d00000001' +
      `2c0014000407000000010c0004${v6 ? '0d000000010409000000' : '0c00000001040c000000'}` +
      `0114000407000000010c0004${t}000000010402000000060400000000`,
    'hex',
  );
}

export class NftGrammarError extends Error {}

// allocUnsafe: from node's small-buffer pool (every byte is written), not an ArrayBuffer each.
const u32host = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const be16 = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v);
  return b;
};
const u8 = (v: number): Buffer => Buffer.from([v]);

interface Fam {
  v6: boolean;
  nfproto: number;
  saddr: number;
  daddr: number;
  len: number;
}
const famOf = (ip: string): Fam =>
  ip === 'ip6'
    ? { v6: true, nfproto: NFPROTO_IPV6, saddr: 8, daddr: 24, len: 16 }
    : { v6: false, nfproto: NFPROTO_IPV4, saddr: 12, daddr: 16, len: 4 };

/** An address (IPv4 by writeIpv4, IPv6 by ipToBytes) as network-order bytes at `at` of `buf`; its length. */
function putAddress(text: string, buf: Buffer, at: number): number {
  if (!text.includes(':')) {
    if (!writeIpv4(text, buf, at)) throw new NftGrammarError(`invalid IP address "${text}"`);
    return 4;
  }
  const b = ipToBytes(text);
  buf.set(b, at);
  return 16;
}
const addrLen = (text: string): number => (text.includes(':') ? 16 : 4);

function addr(text: string, fam: Fam): Buffer {
  const b = ipToBytes(text);
  if (b.length !== fam.len) throw new NftGrammarError(`${text} is not an ${fam.v6 ? 'IPv6' : 'IPv4'} address`);
  return b;
}

const nfproto = (fam: Fam): NftExpr[] => [
  { type: 'meta', key: META.nfproto, dreg: NFT_REG_1 },
  { type: 'cmp', sreg: NFT_REG_1, op: CMP.eq, data: u8(fam.nfproto) },
];
const loadAddr = (fam: Fam, offset: number, len = fam.len, dreg = NFT_REG_1): NftExpr => ({
  type: 'payload',
  dreg,
  base: PAYLOAD_BASE.network,
  offset,
  len,
});
const l4proto = (proto: string): NftExpr[] => [
  { type: 'meta', key: META.l4proto, dreg: NFT_REG_1 },
  { type: 'cmp', sreg: NFT_REG_1, op: CMP.eq, data: u8(protoNumber(proto)) },
];
const verdictExpr = (v: NftVerdict): NftExpr => ({ type: 'immediate', dreg: NFT_REG_VERDICT, data: { verdict: v } });

function protoNumber(p: string): number {
  const n = PROTO[p];
  if (n === undefined) throw new NftGrammarError(`unknown protocol ${p}`);
  return n;
}

/** `goto X`, `jump X`, `drop`, `accept`, `return` → a verdict. */
export function parseVerdict(text: string): NftVerdict {
  const m = /^(jump|goto) (\S+)$/.exec(text);
  if (m) return { code: m[1] as 'jump' | 'goto', chain: m[2]! };
  if (text === 'drop' || text === 'accept' || text === 'return') return { code: text };
  throw new NftGrammarError(`unsupported verdict ${JSON.stringify(text)}`);
}

export function verdictText(v: NftVerdict): string {
  return v.code === 'jump' || v.code === 'goto' ? `${v.code} ${v.chain}` : v.code;
}

/** `ip saddr != 10.0.0.0/8`: byte-aligned prefixes load only their bytes; others are masked. */
function prefixMismatch(fam: Fam, cidr: string, offset: number): NftExpr[] {
  return prefixCompare(fam, cidr, offset, CMP.neq);
}

/** `ip saddr 10.0.0.0/8` (== or !=), encoded as nft encodes it. */
function prefixCompare(fam: Fam, cidr: string, offset: number, op: number): NftExpr[] {
  const [a, p] = cidr.split('/');
  const bytes = addr(a!, fam);
  const bits = p === undefined ? fam.len * 8 : Number(p);
  if (!Number.isInteger(bits) || bits < 1 || bits > fam.len * 8) throw new NftGrammarError(`bad prefix ${cidr}`);
  if (bits % 8 === 0) {
    return [loadAddr(fam, offset, bits / 8), { type: 'cmp', sreg: NFT_REG_1, op, data: bytes.subarray(0, bits / 8) }];
  }
  const mask = Buffer.alloc(fam.len);
  for (let i = 0; i < bits; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  const net = Buffer.from(bytes.map((x, i) => x & mask[i]!));
  return [
    loadAddr(fam, offset),
    { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, len: fam.len, mask, xor: Buffer.alloc(fam.len) },
    { type: 'cmp', sreg: NFT_REG_1, op, data: net },
  ];
}

/** `{ 10.0.0.0/8, 192.168.0.0/16 }` as nft encodes an anonymous interval set (merged, with end marks). */
function intervalElements(fam: Fam, items: string[]): NftElement[] {
  const bitsTotal = BigInt(fam.len * 8);
  const max = (1n << bitsTotal) - 1n;
  const toBig = (b: Buffer) => BigInt(`0x${b.toString('hex') || '0'}`);
  const toBuf = (v: bigint) => Buffer.from(v.toString(16).padStart(fam.len * 2, '0'), 'hex');
  const ranges = items
    .map((it) => {
      const [a, p] = it.split('/');
      const bits = BigInt(p === undefined ? fam.len * 8 : Number(p));
      const host = (1n << (bitsTotal - bits)) - 1n;
      const start = toBig(addr(a!, fam)) & ~host & max;
      return [start, start | host] as [bigint, bigint];
    })
    .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1n) last[1] = r[1] > last[1] ? r[1] : last[1];
    else merged.push([r[0], r[1]]);
  }
  const out: NftElement[] = [];
  if (merged[0] && merged[0][0] > 0n) out.push({ key: toBuf(0n), intervalEnd: true });
  for (const [s, e] of merged) {
    out.push({ key: toBuf(s) });
    if (e < max) out.push({ key: toBuf(e + 1n), intervalEnd: true });
  }
  return out;
}

/** Compiles one rule of our grammar. `alloc` names the anonymous sets it needs. */
export function compileRule(rule: string, alloc: AllocAnonymousSet): NftExpr[] {
  let m: RegExpExecArray | null;
  const mark = (set: string): Buffer => u32host(Number(set));
  if ((m = /^meta mark set meta mark \| (0x[0-9a-f]+)$/.exec(rule))) {
    return [
      { type: 'meta', key: META.mark, dreg: NFT_REG_1 },
      { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, len: 4, mask: u32host(~Number(m[1])), xor: mark(m[1]!) },
      { type: 'meta', key: META.mark, sreg: NFT_REG_1 },
    ];
  }
  if ((m = /^meta mark set meta mark \^ (0x[0-9a-f]+)$/.exec(rule))) {
    return [
      { type: 'meta', key: META.mark, dreg: NFT_REG_1 },
      { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, len: 4, mask: u32host(0xffffffff), xor: mark(m[1]!) },
      { type: 'meta', key: META.mark, sreg: NFT_REG_1 },
    ];
  }
  if ((m = /^meta mark & (0x[0-9a-f]+) == 0 return$/.exec(rule))) {
    return [
      { type: 'meta', key: META.mark, dreg: NFT_REG_1 },
      { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, len: 4, mask: mark(m[1]!), xor: u32host(0) },
      { type: 'cmp', sreg: NFT_REG_1, op: CMP.eq, data: u32host(0) },
      verdictExpr({ code: 'return' }),
    ];
  }
  if (rule === 'masquerade fully-random') return [{ type: 'masq', flags: NF_NAT_RANGE_PROTO_RANDOM_FULLY }];
  if (rule === 'reject')
    return [{ type: 'reject', rejectType: NFT_REJECT_ICMPX_UNREACH, icmpCode: NFT_REJECT_ICMPX_PORT_UNREACH }];
  if (rule === 'meta l4proto tcp reject with tcp reset')
    return [...l4proto('tcp'), { type: 'reject', rejectType: NFT_REJECT_TCP_RST, icmpCode: 0 }];
  if ((m = /^(jump|goto) (\S+)$/.exec(rule))) return [verdictExpr(parseVerdict(rule))];
  if ((m = /^ct state new (jump \S+)$/.exec(rule))) {
    return [
      { type: 'ct', key: NFT_CT_STATE, dreg: NFT_REG_1 },
      { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, len: 4, mask: u32host(CT_STATE_NEW), xor: u32host(0) },
      { type: 'cmp', sreg: NFT_REG_1, op: CMP.neq, data: u32host(0) },
      verdictExpr(parseVerdict(m[1]!)),
    ];
  }
  if ((m = /^fib saddr type local ((?:jump|goto) \S+)$/.exec(rule))) {
    return [
      { type: 'fib', dreg: NFT_REG_1, result: NFT_FIB_RESULT_ADDRTYPE, flags: NFTA_FIB_F_SADDR },
      { type: 'cmp', sreg: NFT_REG_1, op: CMP.eq, data: u32host(RTN_LOCAL) },
      verdictExpr(parseVerdict(m[1]!)),
    ];
  }
  if ((m = /^(ip6?) daddr \. meta l4proto \. th dport vmap @(\S+)$/.exec(rule))) {
    const fam = famOf(m[1]!);
    // Registers as nft allocates them for the concatenation (32-bit register numbering).
    const [protoReg, portReg] = fam.v6 ? [2, 13] : [9, 10];
    return [
      ...nfproto(fam),
      loadAddr(fam, fam.daddr),
      { type: 'meta', key: META.l4proto, dreg: protoReg },
      { type: 'payload', dreg: portReg, base: PAYLOAD_BASE.transport, offset: 2, len: 2 },
      { type: 'lookup', set: m[2]!, sreg: NFT_REG_1, dreg: NFT_REG_VERDICT },
    ];
  }
  if ((m = /^(ip6?) saddr @(\S+) (goto \S+)$/.exec(rule))) {
    const fam = famOf(m[1]!);
    return [
      ...nfproto(fam),
      loadAddr(fam, fam.saddr),
      { type: 'lookup', set: m[2]!, sreg: NFT_REG_1 },
      verdictExpr(parseVerdict(m[3]!)),
    ];
  }
  if ((m = /^(ip6?) saddr != \{ (.+) \} drop$/.exec(rule))) {
    const fam = famOf(m[1]!);
    const items = m[2]!.split(', ');
    // nft turns a one-element set into a plain (prefix) match; so do we.
    if (items.length === 1)
      return [...nfproto(fam), ...prefixMismatch(fam, items[0]!, fam.saddr), verdictExpr({ code: 'drop' })];
    const elements = intervalElements(fam, items);
    const { name, id } = alloc({
      prefix: '__set',
      elements,
      spec: {
        flags: NFT_SET_FLAGS.anonymous | NFT_SET_FLAGS.constant | NFT_SET_FLAGS.interval,
        keyType: fam.v6 ? TYPE.ipv6_addr : TYPE.ipv4_addr,
        keyLen: fam.len,
        size: elements.length,
        userdata: fam.v6 ? USERDATA.interval6 : USERDATA.interval4,
      },
    });
    return [
      ...nfproto(fam),
      loadAddr(fam, fam.saddr),
      { type: 'lookup', set: name, setId: id, sreg: NFT_REG_1, flags: NFT_LOOKUP_F_INV },
      verdictExpr({ code: 'drop' }),
    ];
  }
  if ((m = /^(ip6?) saddr ([0-9a-fA-F.:]+\/\d+) (goto \S+)$/.exec(rule))) {
    const fam = famOf(m[1]!);
    return [...nfproto(fam), ...prefixCompare(fam, m[2]!, fam.saddr, CMP.eq), verdictExpr(parseVerdict(m[3]!))];
  }
  if ((m = /^(ip6?) saddr ([0-9a-fA-F.:]+) (jump \S+)$/.exec(rule))) {
    const fam = famOf(m[1]!);
    return [
      ...nfproto(fam),
      loadAddr(fam, fam.saddr),
      { type: 'cmp', sreg: NFT_REG_1, op: CMP.eq, data: addr(m[2]!, fam) },
      verdictExpr(parseVerdict(m[3]!)),
    ];
  }
  if ((m = /^update @(\S+) \{ (ip6?) saddr \}$/.exec(rule))) {
    const fam = famOf(m[2]!);
    return [
      ...nfproto(fam),
      loadAddr(fam, fam.saddr),
      { type: 'dynset', set: m[1]!, op: DYNSET_OP_UPDATE, sregKey: NFT_REG_1 },
    ];
  }
  if ((m = /^meta l4proto (\w+) dnat (ip6?) to (\S+)$/.exec(rule))) {
    const fam = famOf(m[2]!);
    const t = /^\[?([0-9a-fA-F.:]+?)\]?:(\d+)$/.exec(m[3]!);
    if (!t || Number(t[2]) > 65535) throw new NftGrammarError(`bad dnat target ${m[3]}`);
    return [
      ...l4proto(m[1]!),
      { type: 'immediate', dreg: NFT_REG_1, data: { value: addr(t[1]!, fam) } },
      { type: 'immediate', dreg: 2, data: { value: be16(Number(t[2])) } },
      {
        type: 'nat',
        natType: NAT_DNAT,
        family: fam.nfproto,
        regAddrMin: NFT_REG_1,
        regProtoMin: 2,
        flags: NF_NAT_RANGE_PROTO_SPECIFIED,
      },
    ];
  }
  if ((m = /^(ip6?) daddr ([0-9a-fA-F.:]+) (\w+) dport (\d+)(?: (ip6?) saddr != (\S+))? (jump \S+)$/.exec(rule))) {
    const fam = famOf(m[1]!);
    const out: NftExpr[] = [
      ...nfproto(fam),
      loadAddr(fam, fam.daddr),
      { type: 'cmp', sreg: NFT_REG_1, op: CMP.eq, data: addr(m[2]!, fam) },
      ...l4proto(m[3]!),
      { type: 'payload', dreg: NFT_REG_1, base: PAYLOAD_BASE.transport, offset: 2, len: 2 },
      { type: 'cmp', sreg: NFT_REG_1, op: CMP.eq, data: be16(Number(m[4])) },
    ];
    if (m[6]) {
      if (m[5] !== m[1]) throw new NftGrammarError(`mixed families in ${rule}`);
      out.push(...prefixMismatch(fam, m[6], fam.saddr));
    }
    out.push(verdictExpr(parseVerdict(m[7]!)));
    return out;
  }
  if ((m = /^meta l4proto (\w+) dnat (ip6?) to numgen random mod (\d+) map @(\S+)$/.exec(rule))) {
    const fam = famOf(m[2]!);
    // The data (address . port) lands in reg 1 onwards: the port in the 32-bit register after
    // the address (NFT_REG32_01 = 9 for IPv4; for IPv6, 16 bytes later: NFT_REG_2).
    return [
      ...l4proto(m[1]!),
      { type: 'numgen', dreg: NFT_REG_1, modulus: Number(m[3]), ngType: NG_RANDOM },
      { type: 'byteorder', sreg: NFT_REG_1, dreg: NFT_REG_1, op: NFT_BYTEORDER_HTON, len: 4, size: 4 },
      { type: 'lookup', set: m[4]!, sreg: NFT_REG_1, dreg: NFT_REG_1 },
      {
        type: 'nat',
        natType: NAT_DNAT,
        family: fam.nfproto,
        regAddrMin: NFT_REG_1,
        regProtoMin: fam.v6 ? 2 : 9,
        flags: 0,
      },
    ];
  }
  if ((m = /^ct status dnat (ip6?) saddr \. (ip6?) daddr @(\S+) (jump \S+)$/.exec(rule))) {
    const fam = famOf(m[1]!);
    if (m[2] !== m[1]) throw new NftGrammarError(`mixed families in ${rule}`);
    return [
      { type: 'ct', key: NFT_CT_STATUS, dreg: NFT_REG_1 },
      { type: 'bitwise', sreg: NFT_REG_1, dreg: NFT_REG_1, len: 4, mask: u32host(IPS_DST_NAT), xor: u32host(0) },
      { type: 'cmp', sreg: NFT_REG_1, op: CMP.neq, data: u32host(0) },
      ...nfproto(fam),
      loadAddr(fam, fam.saddr),
      loadAddr(fam, fam.daddr, fam.len, fam.v6 ? 2 : 9),
      { type: 'lookup', set: m[3]!, sreg: NFT_REG_1 },
      verdictExpr(parseVerdict(m[4]!)),
    ];
  }
  if ((m = /^numgen random mod (\d+) vmap \{ (.+) \}$/.exec(rule))) {
    const n = Number(m[1]);
    const elements = m[2]!.split(', ').map((e): NftElement => {
      const em = /^(\d+) : (.+)$/.exec(e);
      if (!em) throw new NftGrammarError(`bad vmap element ${e}`);
      return { key: u32host(Number(em[1])), data: { verdict: parseVerdict(em[2]!) } };
    });
    const { name, id } = alloc({
      prefix: '__map',
      elements,
      spec: {
        flags: NFT_SET_FLAGS.anonymous | NFT_SET_FLAGS.constant | NFT_SET_FLAGS.map,
        keyType: TYPE.integer,
        keyLen: 4,
        dataType: NFT_DATA_VERDICT,
        dataLen: 0,
        size: elements.length,
        userdata: USERDATA.numgenMap,
      },
    });
    return [
      { type: 'numgen', dreg: NFT_REG_1, modulus: n, ngType: NG_RANDOM },
      { type: 'lookup', set: name, setId: id, sreg: NFT_REG_1, dreg: NFT_REG_VERDICT },
    ];
  }
  throw new NftGrammarError(`rule outside the netlink grammar: ${JSON.stringify(rule)}`);
}

/** `type ipv4_addr; flags dynamic,timeout; timeout 60s;` (affinity sets), `type ipv4_addr . ipv4_addr;` (hairpin). */
export function compileSetDecl(decl: string): Omit<NftSetSpec, 'name' | 'id'> {
  const pair = /^type (ipv4_addr|ipv6_addr) \. (ipv4_addr|ipv6_addr);$/.exec(decl.trim());
  if (pair && pair[1] === pair[2]) {
    const v6 = pair[1] === 'ipv6_addr';
    return {
      flags: 0,
      keyType: v6 ? TYPE.addrPair6 : TYPE.addrPair4,
      keyLen: v6 ? 32 : 8,
      userdata: USERDATA.addrPair,
    };
  }
  const m = /^type (ipv4_addr|ipv6_addr); flags dynamic,timeout; timeout (\d+)s;$/.exec(decl.trim());
  if (!m) throw new NftGrammarError(`set declaration outside the netlink grammar: ${JSON.stringify(decl)}`);
  const v6 = m[1] === 'ipv6_addr';
  return {
    flags: NFT_SET_FLAGS.timeout | NFT_SET_FLAGS.eval,
    keyType: v6 ? TYPE.ipv6_addr : TYPE.ipv4_addr,
    keyLen: v6 ? 16 : 4,
    timeoutMs: Number(m[2]) * 1000,
    userdata: USERDATA.addrSet,
  };
}

/**
 * `type ipv4_addr . inet_proto . inet_service : verdict;` (dispatch maps),
 * `typeof numgen random mod 65536 : ip daddr . tcp dport; flags interval;` (endpoint maps).
 */
export function compileMapType(decl: string): Omit<NftSetSpec, 'name' | 'id'> {
  const ep = /^typeof numgen random mod 65536 : (ip6?) daddr \. (tcp|udp|sctp) dport; flags interval;$/.exec(
    decl.trim(),
  );
  if (ep) {
    const v6 = ep[1] === 'ip6';
    return {
      flags: NFT_SET_FLAGS.map | NFT_SET_FLAGS.interval,
      keyType: TYPE.integer,
      keyLen: 4,
      dataType: v6 ? TYPE.addrPort6 : TYPE.addrPort4,
      dataLen: v6 ? 20 : 8,
      userdata: endpointMapUserdata(v6, ep[2]!),
    };
  }
  const m = /^type (ipv4_addr|ipv6_addr) \. inet_proto \. inet_service : verdict;$/.exec(decl.trim());
  if (!m) throw new NftGrammarError(`map type outside the netlink grammar: ${JSON.stringify(decl)}`);
  const v6 = m[1] === 'ipv6_addr';
  return {
    flags: NFT_SET_FLAGS.map,
    keyType: v6 ? TYPE.concat6 : TYPE.concat4,
    keyLen: v6 ? 24 : 12,
    dataType: NFT_DATA_VERDICT,
    dataLen: 0,
    userdata: USERDATA.dispatchMap,
  };
}

/**
 * One element op's key and value as nf_tables elements: a slot range (`0-21845`) of an endpoint
 * map is its start element (with the data) and an interval-end element after its last slot, as
 * nft sends them (also for delete); other keys are one element. Values: verdicts, or an
 * endpoint's `address . port`; none for set elements and deletes.
 */
export function compileElement(key: string, value: string | undefined): NftElement[] {
  const data = value === undefined ? undefined : compileElementValue(value);
  const dash = slotRange(key);
  if (dash !== undefined) {
    const [a, b] = dash;
    if (b < a || b > 65535) throw new NftGrammarError(`slot range outside the grammar: ${key}`);
    const keys = Buffer.allocUnsafe(8);
    keys.writeUInt32BE(a, 0);
    keys.writeUInt32BE(b + 1, 4);
    const start = keys.subarray(0, 4);
    const end = keys.subarray(4, 8);
    return [data ? { key: start, data } : { key: start }, { key: end, intervalEnd: true }];
  }
  const sep = key.indexOf(' . ');
  let k: Buffer;
  if (sep > 0 && key.indexOf(' . ', sep + 3) < 0) {
    // `EP . EP` (hairpin sets): two addresses of one family.
    const left = key.slice(0, sep);
    const right = key.slice(sep + 3);
    const n = addrLen(left);
    if (addrLen(right) !== n)
      throw new NftGrammarError(`element key outside the netlink grammar: ${JSON.stringify(key)}`);
    k = Buffer.allocUnsafe(2 * n);
    putAddress(left, k, 0);
    putAddress(right, k, n);
  } else k = compileElementKey(key);
  return [data ? { key: k, data } : { key: k }];
}

/** `a-b` or `a` of decimal slots, without a regex (undefined for anything else). */
function slotRange(key: string): [number, number] | undefined {
  let a = -1;
  let n = 0;
  let digits = 0;
  for (let c = 0; c < key.length; c++) {
    const ch = key.charCodeAt(c);
    if (ch >= 48 && ch <= 57) {
      n = n * 10 + (ch - 48);
      if (++digits > 6) return undefined;
    } else if (ch === 45 /* - */ && a < 0 && digits > 0) {
      a = n;
      n = 0;
      digits = 0;
    } else return undefined;
  }
  if (digits === 0) return undefined;
  return a < 0 ? [n, n] : [a, n];
}

function compileElementValue(value: string): NftData {
  const sep = value.indexOf(' . ');
  if (sep < 0) return { verdict: parseVerdict(value) };
  const ip = value.slice(0, sep);
  const portText = value.slice(sep + 3);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new NftGrammarError(`bad port in ${value}`);
  // From node's small-buffer pool (Buffer.alloc made an ArrayBuffer per endpoint element: 100k
  // at a 10k × 10 load); every byte is written, the port's register padding included.
  const out = Buffer.allocUnsafe(addrLen(ip) + 4);
  const n = putAddress(ip, out, 0);
  out.writeUInt16BE(port, n);
  out.writeUInt16BE(0, n + 2);
  return { value: out };
}

const u32be = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

/**
 * The inverse of compileElement for a dumped set or map: its elements as our renderer writes
 * them (key → value, '' for set elements). Interval maps pair each start with the next end.
 */
export function elementsText(
  set: { flags: number },
  elements: readonly { key: Buffer; data?: NftData; intervalEnd: boolean }[],
): Map<string, string> {
  const out = new Map<string, string>();
  if (set.flags & NFT_SET_FLAGS.interval) {
    const ends = elements
      .filter((e) => e.intervalEnd)
      .map((e) => e.key.readUInt32BE(0))
      .sort((a, b) => a - b);
    const starts = elements.filter((e) => !e.intervalEnd).sort((a, b) => a.key.readUInt32BE(0) - b.key.readUInt32BE(0));
    for (const e of starts) {
      const a = e.key.readUInt32BE(0);
      const end = ends.find((x) => x > a) ?? 65536;
      out.set(slotRangeText(a, end - 1), dataText(e.data));
    }
    return out;
  }
  for (const e of elements) {
    const half = e.key.length / 2;
    const key =
      set.flags & NFT_SET_FLAGS.map
        ? elementKeyText(e.key)
        : `${bytesToIp(e.key.subarray(0, half), half === 4 ? 'inet' : 'inet6')} . ${bytesToIp(e.key.subarray(half), half === 4 ? 'inet' : 'inet6')}`;
    out.set(key, set.flags & NFT_SET_FLAGS.map ? dataText(e.data) : '');
  }
  return out;
}

function dataText(d: NftData | undefined): string {
  if (!d || 'verdict' in d) return dataVerdictText(d);
  const alen = d.value.length - 4;
  if (alen !== 4 && alen !== 16) return '?';
  return `${bytesToIp(d.value.subarray(0, alen), alen === 4 ? 'inet' : 'inet6')} . ${d.value.readUInt16BE(alen)}`;
}

/** `10.0.0.1 . tcp . 80` → the concatenated key (each part padded to 4 bytes). */
export function compileElementKey(key: string): Buffer {
  const m = /^([0-9a-fA-F.:]+) \. (\w+) \. (\d+)$/.exec(key);
  if (!m || Number(m[3]) > 65535)
    throw new NftGrammarError(`element key outside the netlink grammar: ${JSON.stringify(key)}`);
  const n = addrLen(m[1]!);
  const out = Buffer.alloc(n + 8);
  putAddress(m[1]!, out, 0);
  out.writeUInt32LE(protoNumber(m[2]!) >>> 0, n);
  out.writeUInt16BE(Number(m[3]), n + 4);
  return out;
}

/** The inverse of compileElementKey, for read-back (`10.0.0.1 . tcp . 80`). */
export function elementKeyText(key: Buffer): string {
  const alen = key.length - 8;
  if (alen !== 4 && alen !== 16) throw new Error(`unexpected dispatch map key of ${key.length} bytes`);
  const proto = key.readUInt8(alen);
  return `${bytesToIp(key.subarray(0, alen), alen === 4 ? 'inet' : 'inet6')} . ${PROTO_NAME[proto] ?? String(proto)} . ${key.readUInt16BE(alen + 4)}`;
}

export const dataVerdictText = (d: NftData | undefined): string => (d && 'verdict' in d ? verdictText(d.verdict) : '?');

// Hook spec of our base chains: `type nat hook prerouting priority dstnat; policy accept;`.
const HOOKS: Record<string, number> = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 };
const PRIORITY_NAMES: Record<string, number> = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
};

export function compileHook(spec: string): { type: string; hooknum: number; priority: number; policy: number } {
  const m = /^type (filter|nat) hook (\w+) priority ([\w-]+(?: [+-] \d+)?); policy (accept|drop);$/.exec(spec.trim());
  const hooknum = m ? HOOKS[m[2]!] : undefined;
  if (!m || hooknum === undefined)
    throw new NftGrammarError(`chain hook outside the netlink grammar: ${JSON.stringify(spec)}`);
  const p = /^(-?\d+)$|^(\w+)(?: ([+-]) (\d+))?$/.exec(m[3]!);
  let priority: number | undefined;
  if (p?.[1] !== undefined) priority = Number(p[1]);
  else if (p?.[2] !== undefined && PRIORITY_NAMES[p[2]] !== undefined) {
    priority = PRIORITY_NAMES[p[2]]! + (p[3] ? (p[3] === '-' ? -1 : 1) * Number(p[4]) : 0);
  }
  if (priority === undefined) throw new NftGrammarError(`unknown chain priority ${m[3]}`);
  return { type: m[1]!, hooknum, priority, policy: m[4] === 'accept' ? 1 : 0 };
}
