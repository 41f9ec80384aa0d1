// struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; } and the control
// messages (NLMSG_ERROR / NLMSG_DONE) that end requests and dumps.

import { align4 } from './netlink-attrs.ts';

export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_ECHO = 0x08;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
/** In an NLMSG_ERROR ack: the original request was not echoed back (capped). */
export const NLM_F_CAPPED = 0x100;
/** In an NLMSG_ERROR ack: extended-ack TLVs follow. */
export const NLM_F_ACK_TLVS = 0x200;

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  readonly payload: Buffer;
}

export function encodeMessage(m: {
  type: number;
  flags: number;
  seq: number;
  pid?: number;
  payload: Uint8Array;
}): Buffer {
  const len = NLMSG_HDRLEN + m.payload.length;
  // allocUnsafe: a small message is a slice of node's shared pool, where Buffer.alloc made a
  // backing store of its own per message (one per request of a 140k-request load); every byte is
  // written below, the alignment padding included.
  const size = align4(len);
  const out = Buffer.allocUnsafe(size);
  for (let i = len; i < size; i++) out[i] = 0;
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(m.type, 4);
  out.writeUInt16LE(m.flags, 6);
  out.writeUInt32LE(m.seq >>> 0, 8);
  out.writeUInt32LE((m.pid ?? 0) >>> 0, 12);
  out.set(m.payload, NLMSG_HDRLEN);
  return out;
}

/** Splits one received datagram into messages. Throws on a truncated header/length. */
export function decodeMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new Error(`malformed netlink message at offset ${off}: length ${len}, ${buf.length - off} bytes left`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  // Up to 3 bytes of alignment padding may end a datagram; more is a cut-off header.
  if (buf.length - off > 3) {
    throw new Error(
      `malformed netlink message at offset ${off}: ${buf.length - off} bytes left, header needs ${NLMSG_HDRLEN}`,
    );
  }
  return out;
}

const NLMSGERR_ATTR_MSG = 1;

export interface NetlinkErrorPayload {
  /** Positive errno, 0 for an ACK. */
  readonly errno: number;
  /** Header of the request that failed (seq/type). */
  readonly requestType: number;
  readonly requestSeq: number;
  /** Extended-ack text when the kernel sent one (NETLINK_EXT_ACK). */
  readonly extMessage?: string;
}

/** struct nlmsgerr { int error; struct nlmsghdr msg; ... } */
export function decodeErrorPayload(payload: Buffer, flags = 0): NetlinkErrorPayload {
  if (payload.length < 4 + NLMSG_HDRLEN) throw new Error(`NLMSG_ERROR payload too short (${payload.length} bytes)`);
  const error = payload.readInt32LE(0);
  const requestType = payload.readUInt16LE(8);
  const requestSeq = payload.readUInt32LE(12);
  let extMessage: string | undefined;
  if (flags & NLM_F_ACK_TLVS) {
    // TLVs start after the echoed request (or just its header when capped).
    const echoed = flags & NLM_F_CAPPED ? NLMSG_HDRLEN : payload.readUInt32LE(4);
    let off = 4 + align4(echoed);
    while (off + 4 <= payload.length) {
      const len = payload.readUInt16LE(off);
      const type = payload.readUInt16LE(off + 2) & 0x3fff;
      if (len < 4 || off + len > payload.length) break;
      if (type === NLMSGERR_ATTR_MSG) {
        extMessage = payload
          .subarray(off + 4, off + len)
          .toString('utf8')
          .replace(/\0+$/, '');
      }
      off += align4(len);
    }
  }
  return { errno: error === 0 ? 0 : -error, requestType, requestSeq, ...(extMessage ? { extMessage } : {}) };
}

export function encodeErrorPayload(
  errno: number,
  request: { type: number; flags: number; seq: number; pid?: number },
): Buffer {
  const out = Buffer.alloc(4 + NLMSG_HDRLEN);
  out.writeInt32LE(-errno, 0);
  out.writeUInt32LE(NLMSG_HDRLEN, 4);
  out.writeUInt16LE(request.type, 8);
  out.writeUInt16LE(request.flags, 10);
  out.writeUInt32LE(request.seq >>> 0, 12);
  out.writeUInt32LE((request.pid ?? 0) >>> 0, 16);
  return out;
}
