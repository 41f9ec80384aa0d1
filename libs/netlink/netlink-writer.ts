// Netlink attributes written in place into one growing buffer, for encoders that build many
// messages (a 10k-service nftables load is ~350k of them). Allocating a Buffer per attribute and
// concatenating them (netlink-attrs.ts's nlAttr / nlNested, fine for a few messages) made
// allocation and GC most of that load's JavaScript time. Same bytes as those helpers.

// Local copies of netlink-attrs.ts's constants: an imported binding can cost a getter call
// per use once transpiled, and these are read for every attribute.
const NLA_HDRLEN = 4;
const NLA_F_NESTED = 1 << 15;

/** Copies short byte strings with a loop: cheaper than a native `set` call for a few bytes. */
function put(dst: Buffer, at: number, src: Uint8Array): void {
  if (src.length > 32) dst.set(src, at);
  else for (let i = 0; i < src.length; i++) dst[at + i] = src[i]!;
}

export class NlWriter {
  private buf: Buffer;
  private n = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Bytes written since the last reset. */
  get length(): number {
    return this.n;
  }

  reset(): this {
    this.n = 0;
    return this;
  }

  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }

  /** Zero bytes up to the next multiple of 4. */
  private pad(): void {
    while (this.n & 3) this.buf[this.n++] = 0;
  }

  /** Raw bytes, unaligned (a message's fixed header). */
  raw(bytes: Uint8Array): this {
    this.room(bytes.length);
    put(this.buf, this.n, bytes);
    this.n += bytes.length;
    return this;
  }

  private header(type: number, payloadLen: number): void {
    this.room(NLA_HDRLEN + payloadLen + 3);
    this.buf.writeUInt16LE(NLA_HDRLEN + payloadLen, this.n);
    this.buf.writeUInt16LE(type, this.n + 2);
    this.n += NLA_HDRLEN;
  }

  attr(type: number, payload: Uint8Array): this {
    this.header(type, payload.length);
    put(this.buf, this.n, payload);
    this.n += payload.length;
    this.pad();
    return this;
  }

  u8(type: number, v: number): this {
    this.header(type, 1);
    this.buf[this.n++] = v & 0xff;
    this.pad();
    return this;
  }

  /** Host-order (little-endian) u16, as netlink-attrs.ts's u16Attr (IPVS, rtnetlink). */
  u16(type: number, v: number): this {
    this.header(type, 2);
    this.buf.writeUInt16LE(v, this.n);
    this.n += 2;
    this.pad();
    return this;
  }

  /** Host-order (little-endian) u32, as u32Attr. */
  u32(type: number, v: number): this {
    this.header(type, 4);
    this.buf.writeUInt32LE(v >>> 0, this.n);
    this.n += 4;
    return this;
  }

  be16(type: number, v: number): this {
    this.header(type, 2);
    this.buf.writeUInt16BE(v, this.n);
    this.n += 2;
    this.pad();
    return this;
  }

  /**
   * An attribute of `size` zeroed bytes that `fill` writes in place (an address, a struct),
   * without a Buffer of its own.
   */
  fixed(type: number, size: number, fill: (buf: Buffer, at: number) => void): this {
    this.header(type, size);
    this.buf.fill(0, this.n, this.n + size);
    fill(this.buf, this.n);
    this.n += size;
    this.pad();
    return this;
  }

  be32(type: number, v: number): this {
    this.header(type, 4);
    this.buf.writeUInt32BE(v >>> 0, this.n);
    this.n += 4;
    return this;
  }

  be64(type: number, v: bigint): this {
    this.header(type, 8);
    this.buf.writeBigUInt64BE(v, this.n);
    this.n += 8;
    return this;
  }

  /** NUL-terminated UTF-8 string. */
  str(type: number, s: string): this {
    // Our names are ASCII: written byte by byte; anything else goes through UTF-8 encoding.
    const n = s.length;
    let ascii = true;
    for (let i = 0; i < n; i++) if (s.charCodeAt(i) > 0x7f) ascii = false;
    const len = (ascii ? n : Buffer.byteLength(s, 'utf8')) + 1;
    this.header(type, len);
    const buf = this.buf;
    let at = this.n;
    if (ascii) for (let i = 0; i < n; i++) buf[at++] = s.charCodeAt(i);
    else at += buf.write(s, at, 'utf8');
    buf[at++] = 0;
    this.n = at;
    this.pad();
    return this;
  }

  /** Opens a nested attribute; close it with `end(at)` once its children are written. */
  nest(type: number): number {
    const at = this.n;
    this.header(type | NLA_F_NESTED, 0);
    return at;
  }

  end(at: number): this {
    this.buf.writeUInt16LE(this.n - at, at);
    return this;
  }

  /** A copy of bytes [from, length) (from small-Buffer pool memory when short). */
  copy(from = 0): Buffer {
    const out = Buffer.allocUnsafe(this.n - from);
    this.buf.copy(out, 0, from, this.n);
    return out;
  }
}
