// ipset over nfnetlink (subsystem NFNL_SUBSYS_IPSET). Pure: plain data ↔ message payloads.
// Wire facts (net/netfilter/ipset/ip_set_core.c and the type modules): every message is
// struct nfgenmsg + attributes and carries IPSET_ATTR_PROTOCOL; element and create data sit
// in a NESTED IPSET_ATTR_DATA; numbers there are big-endian and must carry
// NLA_F_NET_BYTEORDER (else IPSET_ERR_PROTOCOL); addresses are a nested
// IPSET_ATTR_IPADDR_IPV4/IPV6. "-exist" is the absence of NLM_F_EXCL on the header.

import {
  be16Attr,
  be32Attr,
  decodeAttrList,
  decodeAttrs,
  getStr,
  getU8,
  nlNested,
  optStr,
  strAttr,
  u8Attr,
} from './netlink-attrs.ts';
import type { NlAttribute } from './netlink-attrs.ts';
import { AF_INET, AF_INET6, afName, bytesToIp, familyOf, writeIpBytes } from './ip-address.ts';
import type { IpFamily } from './ip-address.ts';
import { NLM_F_EXCL, NLMSG_HDRLEN } from './netlink-message.ts';
import { NlWriter } from './netlink-writer.ts';
import { IPSET_TYPES } from './ipset-types.ts';
import type {
  IpsetCreate,
  IpsetEntry,
  IpsetHeader,
  IpsetProto,
  IpsetProtocolVersion,
  IpsetSet,
  IpsetType,
  IpsetTypeRevisions,
} from './ipset-types.ts';

export const NETLINK_NETFILTER = 12;
export const NFNL_SUBSYS_IPSET = 6;
export const IPSET_PROTOCOL = 7;
export const IPSET_PROTOCOL_MIN = 6;
export const IPSET_MAXNAMELEN = 32;

export const IpsetCmd = {
  PROTOCOL: 1,
  CREATE: 2,
  DESTROY: 3,
  FLUSH: 4,
  RENAME: 5,
  SWAP: 6,
  LIST: 7,
  SAVE: 8,
  ADD: 9,
  DEL: 10,
  TEST: 11,
  HEADER: 12,
  TYPE: 13,
} as const;

const A = {
  PROTOCOL: 1,
  SETNAME: 2,
  TYPENAME: 3,
  SETNAME2: 3,
  REVISION: 4,
  FAMILY: 5,
  FLAGS: 6,
  DATA: 7,
  ADT: 8,
  LINENO: 9,
  PROTOCOL_MIN: 10,
  REVISION_MIN: 10,
  INDEX: 11,
} as const;
const D = {
  IP: 1,
  IP_TO: 2,
  CIDR: 3,
  PORT: 4,
  PORT_TO: 5,
  TIMEOUT: 6,
  PROTO: 7,
  CADT_FLAGS: 8,
  INITVAL: 17,
  HASHSIZE: 18,
  MAXELEM: 19,
  NETMASK: 20,
  BUCKETSIZE: 21,
  RESIZE: 22,
  SIZE: 23,
  ELEMENTS: 24,
  REFERENCES: 25,
  MEMSIZE: 26,
} as const;
// Element-level attribute numbers overlap the create-level ones (both enums start after 16),
// so keep them apart by name.
const E = { IP2: 20, CIDR2: 21, COMMENT: 26 } as const;
const IPADDR_IPV4 = 1;
const IPADDR_IPV6 = 2;
const FLAG_WITH_COMMENT = 1 << 4;

const PROTO_NUM: Record<IpsetProto, number> = { tcp: 6, udp: 17, sctp: 132, udplite: 136 };
const PROTO_NAME = new Map<number, IpsetProto>(Object.entries(PROTO_NUM).map(([k, v]) => [v, k as IpsetProto]));

export const protoNumber = (p: IpsetProto): number => {
  const n = PROTO_NUM[p];
  if (n === undefined) throw new Error(`unsupported ipset protocol "${String(p)}" (tcp, udp, sctp, udplite)`);
  return n;
};

export const ipsetMsgType = (cmd: number): number => (NFNL_SUBSYS_IPSET << 8) | cmd;

/** A request ready for NetlinkConnection: nlmsg type, extra header flags, payload. */
export interface IpsetRequest {
  readonly cmd: number;
  readonly type: number;
  readonly flags: number;
  readonly payload: Buffer;
  readonly dump: boolean;
}

const NFPROTO_UNSPEC = 0;

function nfgen(family: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0); // nfgen_family
  b.writeUInt8(0, 1); // NFNETLINK_V0
  b.writeUInt16BE(0, 2); // res_id
  return b;
}

const NFGEN: Readonly<Record<number, Buffer>> = {
  [NFPROTO_UNSPEC]: nfgen(NFPROTO_UNSPEC),
  [AF_INET]: nfgen(AF_INET),
  [AF_INET6]: nfgen(AF_INET6),
};
const nfgenHeader = (family: number): Buffer => NFGEN[family] ?? nfgen(family);

function req(
  cmd: number,
  protocol: number,
  attrs: Buffer[],
  opts: { family?: number; flags?: number; dump?: boolean } = {},
): IpsetRequest {
  return {
    cmd,
    type: ipsetMsgType(cmd),
    flags: opts.flags ?? 0,
    dump: opts.dump ?? false,
    payload: Buffer.concat([nfgen(opts.family ?? AF_INET), u8Attr(A.PROTOCOL, protocol), ...attrs]),
  };
}

export function checkSetName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) >= IPSET_MAXNAMELEN) {
    throw new Error(`invalid ipset name "${name}" (1-${IPSET_MAXNAMELEN - 1} bytes)`);
  }
}

function checkType(t: string): asserts t is IpsetType {
  if (!(IPSET_TYPES as readonly string[]).includes(t)) {
    throw new Error(`unsupported ipset type "${t}" (supported: ${IPSET_TYPES.join(', ')})`);
  }
}

function checkRange(v: number, lo: number, hi: number, what: string): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`invalid ${what} ${v} (${lo}-${hi})`);
}

const setFamilyNumber = (type: IpsetType, family: IpFamily | undefined): number =>
  type.startsWith('bitmap:port') ? NFPROTO_UNSPEC : family === 'inet6' ? AF_INET6 : AF_INET;

export const encodeProtocol = (protocol = IPSET_PROTOCOL): IpsetRequest => req(IpsetCmd.PROTOCOL, protocol, []);

/** IPSET_CMD_TYPE: which revisions of a set type the kernel has. */
export function encodeTypeQuery(protocol: number, type: IpsetType, family?: IpFamily): IpsetRequest {
  checkType(type);
  const fam = setFamilyNumber(type, family);
  return req(IpsetCmd.TYPE, protocol, [strAttr(A.TYPENAME, type), u8Attr(A.FAMILY, fam)], { family: fam });
}

export function encodeCreate(protocol: number, revision: number, c: IpsetCreate, exist = false): IpsetRequest {
  checkSetName(c.name);
  checkType(c.type);
  if (c.family !== undefined && c.family !== 'inet' && c.family !== 'inet6')
    throw new Error(`invalid ipset family "${String(c.family)}"`);
  const data: Buffer[] = [];
  let cadt = 0;
  if (c.type === 'bitmap:port') {
    const r = c.range ?? { from: 0, to: 65535 };
    checkRange(r.from, 0, 65535, 'bitmap:port range start');
    checkRange(r.to, r.from, 65535, 'bitmap:port range end');
    data.push(be16Attr(D.PORT, r.from, true), be16Attr(D.PORT_TO, r.to, true));
  } else {
    if (c.range) throw new Error(`range applies only to bitmap:port, not ${c.type}`);
    if (c.hashSize !== undefined) {
      checkRange(c.hashSize, 64, 0x7fffffff, 'hashsize');
      data.push(be32Attr(D.HASHSIZE, c.hashSize, true));
    }
    if (c.maxElem !== undefined) {
      checkRange(c.maxElem, 1, 0xffffffff, 'maxelem');
      data.push(be32Attr(D.MAXELEM, c.maxElem, true));
    }
    if (c.bucketSize !== undefined) {
      checkRange(c.bucketSize, 2, 12, 'bucketsize');
      data.push(u8Attr(D.BUCKETSIZE, c.bucketSize));
    }
    if (c.initval !== undefined) {
      checkRange(c.initval, 0, 0xffffffff, 'initval');
      data.push(be32Attr(D.INITVAL, c.initval, true));
    }
  }
  if (c.timeout !== undefined) {
    checkRange(c.timeout, 0, 2147483, 'timeout');
    data.push(be32Attr(D.TIMEOUT, c.timeout, true));
  }
  if (c.comment) cadt |= FLAG_WITH_COMMENT;
  if (cadt) data.push(be32Attr(D.CADT_FLAGS, cadt, true));
  const fam = setFamilyNumber(c.type, c.family);
  const attrs = [
    strAttr(A.SETNAME, c.name),
    strAttr(A.TYPENAME, c.type),
    u8Attr(A.REVISION, revision),
    u8Attr(A.FAMILY, fam),
    nlNested(A.DATA, data),
  ];
  return req(IpsetCmd.CREATE, protocol, attrs, { family: fam, flags: exist ? 0 : NLM_F_EXCL });
}

/** `exist`: no error when the set is missing (the kernel reads a missing NLM_F_EXCL so). */
export function encodeDestroy(protocol: number, name: string, exist = false): IpsetRequest {
  checkSetName(name); // a DESTROY without a name destroys every set: never send that
  return req(IpsetCmd.DESTROY, protocol, [strAttr(A.SETNAME, name)], { flags: exist ? 0 : NLM_F_EXCL });
}

export function encodeFlush(protocol: number, name: string): IpsetRequest {
  checkSetName(name); // likewise: FLUSH without a name flushes every set
  return req(IpsetCmd.FLUSH, protocol, [strAttr(A.SETNAME, name)], { flags: NLM_F_EXCL });
}

export function encodeRename(protocol: number, from: string, to: string): IpsetRequest {
  checkSetName(from);
  checkSetName(to);
  return req(IpsetCmd.RENAME, protocol, [strAttr(A.SETNAME, from), strAttr(A.SETNAME2, to)], { flags: NLM_F_EXCL });
}

export function encodeSwap(protocol: number, a: string, b: string): IpsetRequest {
  checkSetName(a);
  checkSetName(b);
  return req(IpsetCmd.SWAP, protocol, [strAttr(A.SETNAME, a), strAttr(A.SETNAME2, b)], { flags: NLM_F_EXCL });
}

/** LIST dump: one set by name, or every set. */
export function encodeList(protocol: number, name?: string): IpsetRequest {
  if (name !== undefined) checkSetName(name);
  return req(IpsetCmd.LIST, protocol, name !== undefined ? [strAttr(A.SETNAME, name)] : [], { dump: true });
}

export function encodeHeader(protocol: number, name: string): IpsetRequest {
  checkSetName(name);
  return req(IpsetCmd.HEADER, protocol, [strAttr(A.SETNAME, name)]);
}

const NET_ORDER = 1 << 14; // NLA_F_NET_BYTEORDER

function writeIp(w: NlWriter, type: number, ip: string, what: string): void {
  const fam = familyOf(ip);
  if (!fam) throw new Error(`invalid ${what} "${ip}"`);
  const at = w.nest(type);
  if (fam === 'inet') w.fixed(IPADDR_IPV4 | NET_ORDER, 4, (buf, o) => writeIpBytes(ip, buf, o));
  else w.fixed(IPADDR_IPV6 | NET_ORDER, 16, (buf, o) => writeIpBytes(ip, buf, o));
  w.end(at);
}

/**
 * One element's nested IPSET_ATTR_DATA, with exactly the fields that are set; `lineno` (the
 * element's 1-based place in a multi-element request) is what the kernel reports back when it
 * refuses that element.
 */
function writeEntryData(w: NlWriter, e: IpsetEntry, lineno?: number): void {
  const at = w.nest(A.DATA);
  const start = w.length;
  if (e.ip !== undefined) writeIp(w, D.IP, e.ip, 'element address');
  if (e.cidr !== undefined) {
    checkRange(e.cidr, 0, familyOf(e.ip ?? '') === 'inet6' ? 128 : 32, 'element prefix length');
    w.u8(D.CIDR, e.cidr);
  }
  if (e.port !== undefined) {
    checkRange(e.port, 0, 65535, 'element port');
    w.be16(D.PORT | NET_ORDER, e.port);
  }
  if (e.proto !== undefined) w.u8(D.PROTO, protoNumber(e.proto));
  if (e.ip2 !== undefined) {
    if (e.ip !== undefined && familyOf(e.ip) !== familyOf(e.ip2)) {
      throw new Error(`element addresses "${e.ip}" and "${e.ip2}" are of different families`);
    }
    writeIp(w, E.IP2, e.ip2, 'second element address');
  }
  if (e.cidr2 !== undefined) {
    checkRange(e.cidr2, 0, familyOf(e.ip2 ?? '') === 'inet6' ? 128 : 32, 'second element prefix length');
    w.u8(E.CIDR2, e.cidr2);
  }
  if (e.timeout !== undefined) {
    checkRange(e.timeout, 0, 2147483, 'element timeout');
    w.be32(D.TIMEOUT | NET_ORDER, e.timeout);
  }
  if (e.comment !== undefined) {
    if (Buffer.byteLength(e.comment) > 255) throw new Error('element comment longer than 255 bytes');
    w.str(E.COMMENT, e.comment);
  }
  if (w.length === start) throw new Error('empty ipset element');
  if (lineno !== undefined) w.u32(A.LINENO, lineno);
  w.end(at);
}

const writer = new NlWriter(4096);

/** The nested IPSET_ATTR_DATA of one element; includes exactly the fields that are set. */
export function encodeEntryData(e: IpsetEntry): Buffer {
  writeEntryData(writer.reset(), e);
  return writer.copy();
}

const entryFamily = (e: IpsetEntry): number =>
  e.ip ? (familyOf(e.ip) === 'inet6' ? AF_INET6 : AF_INET) : NFPROTO_UNSPEC;

/** ADD / DEL / TEST of one element. `exist` (add/del): do not fail on already-present/absent. */
export function encodeAdt(
  protocol: number,
  cmd: 9 | 10 | 11,
  name: string,
  entry: IpsetEntry,
  exist = false,
): IpsetRequest {
  checkSetName(name);
  return req(cmd, protocol, [strAttr(A.SETNAME, name), encodeEntryData(entry)], {
    family: entryFamily(entry),
    flags: exist || cmd === IpsetCmd.TEST ? 0 : NLM_F_EXCL,
  });
}

/**
 * ADD / DEL of several elements of one set in ONE message, as `ipset restore` sends them: the
 * elements as IPSET_ATTR_DATA nests inside IPSET_ATTR_ADT, each with its IPSET_ATTR_LINENO (1, 2,
 * ...), and a command-level IPSET_ATTR_LINENO (the kernel requires it with ADT). The kernel
 * (ip_set_core.c ip_set_ad) handles the elements in order and stops at the first it refuses:
 * those before it are in the set, those after it were not tried. It then answers with an
 * NLMSG_ERROR whose echoed request has the command-level LINENO set to that element's
 * (decodeAdtErrorLine), and sends no ack of its own. Every element must be of one family.
 */
export function encodeAdtBatch(
  protocol: number,
  cmd: 9 | 10,
  name: string,
  entries: readonly IpsetEntry[],
  exist = false,
): IpsetRequest {
  checkSetName(name);
  if (entries.length === 0) throw new Error('empty ipset batch');
  const family = entryFamily(entries[0]!);
  const w = writer.reset();
  w.raw(nfgenHeader(family)).u8(A.PROTOCOL, protocol).str(A.SETNAME, name).u32(A.LINENO, 0);
  const adt = w.nest(A.ADT);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (entryFamily(e) !== family) throw new Error(`element ${i + 1} of the batch is of another address family`);
    writeEntryData(w, e, i + 1);
  }
  w.end(adt);
  return { cmd, type: ipsetMsgType(cmd), flags: exist ? 0 : NLM_F_EXCL, dump: false, payload: w.copy() };
}

/**
 * The element a refused multi-element request names (its 1-based LINENO), from the NLMSG_ERROR
 * payload (struct nlmsgerr: errno, then the request echoed in full); undefined when the kernel
 * refused the request as a whole (no such set, a malformed message) or echoed only the header.
 */
export function decodeAdtErrorLine(errorPayload: Buffer): number | undefined {
  if (errorPayload.length < 4 + NLMSG_HDRLEN) return undefined;
  const len = errorPayload.readUInt32LE(4);
  const from = 4 + NLMSG_HDRLEN + 4; // errno, the echoed header, its nfgenmsg
  const to = 4 + len;
  if (len <= NLMSG_HDRLEN + 4 || to > errorPayload.length) return undefined;
  const line = decodeAttrs(errorPayload.subarray(from, to)).get(A.LINENO);
  return line && line.length >= 4 && line.readUInt32LE(0) > 0 ? line.readUInt32LE(0) : undefined;
}

// ---- decoding ----

function nfgenFamily(payload: Buffer): number {
  if (payload.length < 4) throw new Error(`ipset message too short (${payload.length} bytes)`);
  return payload.readUInt8(0);
}

const attrsOf = (payload: Buffer): Map<number, Buffer> => {
  nfgenFamily(payload);
  return decodeAttrs(payload.subarray(4));
};

export function decodeProtocolReply(payload: Buffer): IpsetProtocolVersion {
  const a = attrsOf(payload);
  const protocol = getU8(a, A.PROTOCOL, 'IPSET_ATTR_PROTOCOL');
  return a.has(A.PROTOCOL_MIN) ? { protocol, protocolMin: getU8(a, A.PROTOCOL_MIN) } : { protocol };
}

export function decodeTypeReply(payload: Buffer): IpsetTypeRevisions {
  const a = attrsOf(payload);
  const max = getU8(a, A.REVISION, 'IPSET_ATTR_REVISION');
  return { max, min: a.has(A.REVISION_MIN) ? getU8(a, A.REVISION_MIN) : max };
}

const be32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32BE(0) : undefined);
const be16 = (b: Buffer | undefined): number | undefined => (b && b.length >= 2 ? b.readUInt16BE(0) : undefined);
const u8 = (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b.readUInt8(0) : undefined);

function familyFromNumber(n: number | undefined): IpFamily | undefined {
  return n === AF_INET || n === AF_INET6 ? afName(n) : undefined;
}

function decodeIp(buf: Buffer): string {
  const inner = decodeAttrs(buf);
  const v4 = inner.get(IPADDR_IPV4);
  if (v4) return bytesToIp(v4, 'inet');
  const v6 = inner.get(IPADDR_IPV6);
  if (v6) return bytesToIp(v6, 'inet6');
  throw new Error('ipset address attribute without IPv4/IPv6 payload');
}

/** One element's DATA attributes → entry (only the fields the kernel sent). */
export function decodeEntryData(buf: Buffer): IpsetEntry {
  const a = decodeAttrs(buf);
  const e: { -readonly [K in keyof IpsetEntry]: IpsetEntry[K] } = {};
  if (a.has(D.IP)) e.ip = decodeIp(a.get(D.IP)!);
  if (a.has(D.CIDR)) e.cidr = u8(a.get(D.CIDR));
  const proto = u8(a.get(D.PROTO));
  if (proto !== undefined) {
    const name = PROTO_NAME.get(proto);
    if (!name) throw new Error(`ipset element with unsupported protocol ${proto}`);
    e.proto = name;
  }
  if (a.has(D.PORT)) e.port = be16(a.get(D.PORT));
  if (a.has(E.IP2)) e.ip2 = decodeIp(a.get(E.IP2)!);
  if (a.has(E.CIDR2)) e.cidr2 = u8(a.get(E.CIDR2));
  if (a.has(D.TIMEOUT)) e.timeout = be32(a.get(D.TIMEOUT));
  const comment = optStr(a, E.COMMENT);
  if (comment !== undefined) e.comment = comment;
  return e;
}

export interface IpsetListChunk {
  readonly name: string;
  /** Present in the first message of each set. */
  readonly header?: IpsetHeader;
  readonly entries: IpsetEntry[];
}

function decodeHeaderData(
  name: string,
  type: string,
  family: IpFamily | undefined,
  revision: number,
  buf: Buffer | undefined,
): IpsetHeader {
  const a = buf ? decodeAttrs(buf) : new Map<number, Buffer>();
  const cadt = be32(a.get(D.CADT_FLAGS)) ?? 0;
  const from = be16(a.get(D.PORT));
  const to = be16(a.get(D.PORT_TO));
  const h: { -readonly [K in keyof IpsetHeader]: IpsetHeader[K] } = {
    name,
    type,
    revision,
    comment: (cadt & FLAG_WITH_COMMENT) !== 0,
  };
  if (family) h.family = family;
  const put = <K extends keyof IpsetHeader>(k: K, v: IpsetHeader[K] | undefined) => {
    if (v !== undefined) h[k] = v;
  };
  put('hashSize', be32(a.get(D.HASHSIZE)));
  put('maxElem', be32(a.get(D.MAXELEM)));
  put('bucketSize', u8(a.get(D.BUCKETSIZE)));
  put('initval', be32(a.get(D.INITVAL)));
  if (from !== undefined && to !== undefined) h.range = { from, to };
  put('timeout', be32(a.get(D.TIMEOUT)));
  put('references', be32(a.get(D.REFERENCES)));
  put('memSize', be32(a.get(D.MEMSIZE)));
  put('elements', be32(a.get(D.ELEMENTS)));
  return h;
}

/** One LIST/HEADER reply message → set name, header (first chunk only) and entries. */
export function decodeListMessage(payload: Buffer): IpsetListChunk {
  nfgenFamily(payload);
  const list: NlAttribute[] = decodeAttrList(payload.subarray(4));
  const a = new Map(list.map((x) => [x.type, x.data] as const));
  const name = getStr(a, A.SETNAME, 'IPSET_ATTR_SETNAME');
  const entries: IpsetEntry[] = [];
  const adt = a.get(A.ADT);
  if (adt) for (const item of decodeAttrList(adt)) if (item.type === A.DATA) entries.push(decodeEntryData(item.data));
  if (!a.has(A.TYPENAME)) return { name, entries };
  const header = decodeHeaderData(
    name,
    getStr(a, A.TYPENAME),
    familyFromNumber(u8(a.get(A.FAMILY))),
    u8(a.get(A.REVISION)) ?? 0,
    a.get(A.DATA),
  );
  return { name, header, entries };
}

/** Joins LIST chunks (a big set spans several messages) into sets, in kernel order. */
export function mergeListChunks(chunks: readonly IpsetListChunk[]): IpsetSet[] {
  const sets = new Map<string, { header?: IpsetHeader; entries: IpsetEntry[] }>();
  for (const c of chunks) {
    let s = sets.get(c.name);
    if (!s) sets.set(c.name, (s = { entries: [] }));
    if (c.header) s.header = c.header;
    s.entries.push(...c.entries);
  }
  return [...sets.entries()].map(([name, s]) => {
    if (!s.header) throw new Error(`ipset list: no header received for set "${name}"`);
    return { header: s.header, entries: s.entries };
  });
}
