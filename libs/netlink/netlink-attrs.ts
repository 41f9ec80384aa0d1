// Netlink attribute (TLV) codec: struct nlattr { u16 nla_len; u16 nla_type; } + payload,
// each attribute padded to 4 bytes. Host byte order is little-endian on every machine we
// target (x86_64/arm64), so "host order" below means LE.

export const NLA_F_NESTED = 1 << 15;
export const NLA_F_NET_BYTEORDER = 1 << 14;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;
export const NLA_HDRLEN = 4;

export const align4 = (n: number): number => (n + 3) & ~3;

/** One encoded attribute, already padded. */
export function nlAttr(type: number, payload: Uint8Array): Buffer {
  const len = NLA_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  out.set(payload, NLA_HDRLEN);
  return out;
}

export const nlNested = (type: number, children: readonly Buffer[]): Buffer =>
  nlAttr(type | NLA_F_NESTED, Buffer.concat(children));

export function u8Attr(type: number, v: number): Buffer {
  return nlAttr(type, Buffer.from([v & 0xff]));
}
export function u16Attr(type: number, v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return nlAttr(type, b);
}
export function u32Attr(type: number, v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return nlAttr(type, b);
}
/** Big-endian u16 payload; `netFlag` also sets NLA_F_NET_BYTEORDER (ipset insists on it). */
export function be16Attr(type: number, v: number, netFlag = false): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return nlAttr(netFlag ? type | NLA_F_NET_BYTEORDER : type, b);
}
export function be32Attr(type: number, v: number, netFlag = false): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return nlAttr(netFlag ? type | NLA_F_NET_BYTEORDER : type, b);
}
/** NUL-terminated string (NLA_NUL_STRING / NLA_STRING both accept it). */
export function strAttr(type: number, s: string): Buffer {
  return nlAttr(type, Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]));
}

export interface NlAttribute {
  /** Type with the NESTED / NET_BYTEORDER flags stripped. */
  readonly type: number;
  readonly nested: boolean;
  readonly netByteOrder: boolean;
  readonly data: Buffer;
}

/**
 * The length of the attribute at `off` among the attributes in buf[start, end), checked: throws
 * on one shorter than its header or running past `end` (offsets in the message count from
 * `start`). Hot decoders walk attributes in place with it, without a list or view per attribute.
 */
export function attrLength(buf: Buffer, off: number, start: number, end: number): number {
  const len = buf.readUInt16LE(off);
  if (len < NLA_HDRLEN || off + len > end) {
    throw new Error(`malformed netlink attribute at offset ${off - start}: length ${len}, ${end - off} bytes left`);
  }
  return len;
}

/** The attribute type at `off`, without the NESTED / NET_BYTEORDER flags. */
export const attrType = (buf: Buffer, off: number): number => buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;

/** Splits a buffer into attributes; throws on a length that runs past the end. */
export function decodeAttrList(buf: Buffer): NlAttribute[] {
  const out: NlAttribute[] = [];
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = attrLength(buf, off, 0, buf.length);
    const rawType = buf.readUInt16LE(off + 2);
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      netByteOrder: (rawType & NLA_F_NET_BYTEORDER) !== 0,
      data: buf.subarray(off + NLA_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/**
 * The payload of the attribute `type` in `buf` from `from` on, without splitting the others out
 * (the last one wins, as in decodeAttrs; same malformed-length errors). For hot decode paths.
 */
export function findAttr(buf: Buffer, type: number, from = 0): Buffer | undefined {
  let found: Buffer | undefined;
  let off = from;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = attrLength(buf, off, 0, buf.length);
    if ((buf.readUInt16LE(off + 2) & NLA_TYPE_MASK) === type) found = buf.subarray(off + NLA_HDRLEN, off + len);
    off += align4(len);
  }
  return found;
}

/** Attributes by type; the last one wins when a type repeats (as in the kernel's nla_parse). */
export function decodeAttrs(buf: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const a of decodeAttrList(buf)) m.set(a.type, a.data);
  return m;
}

function need(data: Buffer | undefined, size: number, what: string): Buffer {
  if (!data) throw new Error(`missing attribute ${what}`);
  if (data.length < size) throw new Error(`attribute ${what} is ${data.length} bytes, expected ${size}`);
  return data;
}
export const getU8 = (m: Map<number, Buffer>, t: number, what = String(t)): number =>
  need(m.get(t), 1, what).readUInt8(0);
export const getU16 = (m: Map<number, Buffer>, t: number, what = String(t)): number =>
  need(m.get(t), 2, what).readUInt16LE(0);
export const getU32 = (m: Map<number, Buffer>, t: number, what = String(t)): number =>
  need(m.get(t), 4, what).readUInt32LE(0);
export const getBe16 = (m: Map<number, Buffer>, t: number, what = String(t)): number =>
  need(m.get(t), 2, what).readUInt16BE(0);
export const getBe32 = (m: Map<number, Buffer>, t: number, what = String(t)): number =>
  need(m.get(t), 4, what).readUInt32BE(0);
export const getU64 = (m: Map<number, Buffer>, t: number, what = String(t)): bigint =>
  need(m.get(t), 8, what).readBigUInt64LE(0);
export function getStr(m: Map<number, Buffer>, t: number, what = String(t)): string {
  const d = need(m.get(t), 0, what);
  const z = d.indexOf(0);
  return d.subarray(0, z < 0 ? d.length : z).toString('utf8');
}
export function optStr(m: Map<number, Buffer>, t: number): string | undefined {
  return m.has(t) ? getStr(m, t) : undefined;
}
