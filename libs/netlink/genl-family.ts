// Generic netlink: struct genlmsghdr { u8 cmd; u8 version; u16 reserved; } + attributes,
// and the controller lookup that turns a family name ("IPVS") into its dynamic id.

import { decodeAttrs, getStr, getU16, getU32, strAttr } from './netlink-attrs.ts';
import type { NetlinkConnection } from './netlink-connection.ts';
import type { NetlinkMessage } from './netlink-message.ts';
import { NetlinkError } from './netlink-error.ts';

export const NETLINK_GENERIC = 16;
export const GENL_ID_CTRL = 16;
export const GENL_HDRLEN = 4;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR_FAMILY_ID = 1;
const CTRL_ATTR_FAMILY_NAME = 2;
const CTRL_ATTR_VERSION = 3;
const CTRL_ATTR_MAXATTR = 5;

export interface GenlMessage {
  readonly cmd: number;
  readonly version: number;
  readonly attrs: Buffer;
}

export function encodeGenl(cmd: number, version: number, attrs: readonly Buffer[]): Buffer {
  const hdr = Buffer.alloc(GENL_HDRLEN);
  hdr.writeUInt8(cmd, 0);
  hdr.writeUInt8(version, 1);
  return Buffer.concat([hdr, ...attrs]);
}

export function decodeGenl(payload: Buffer): GenlMessage {
  if (payload.length < GENL_HDRLEN) throw new Error(`generic netlink payload too short (${payload.length} bytes)`);
  return { cmd: payload.readUInt8(0), version: payload.readUInt8(1), attrs: payload.subarray(GENL_HDRLEN) };
}

export interface GenlFamily {
  readonly id: number;
  readonly name: string;
  readonly version: number;
  readonly maxAttr: number;
}

export const encodeGetFamily = (name: string): Buffer =>
  encodeGenl(CTRL_CMD_GETFAMILY, 1, [strAttr(CTRL_ATTR_FAMILY_NAME, name)]);

export function decodeFamily(msg: NetlinkMessage): GenlFamily {
  const a = decodeAttrs(decodeGenl(msg.payload).attrs);
  return {
    id: getU16(a, CTRL_ATTR_FAMILY_ID, 'CTRL_ATTR_FAMILY_ID'),
    name: getStr(a, CTRL_ATTR_FAMILY_NAME, 'CTRL_ATTR_FAMILY_NAME'),
    version: a.has(CTRL_ATTR_VERSION) ? getU32(a, CTRL_ATTR_VERSION) : 0,
    maxAttr: a.has(CTRL_ATTR_MAXATTR) ? getU32(a, CTRL_ATTR_MAXATTR) : 0,
  };
}

/** Resolves a generic netlink family; ENOENT becomes "family not registered (module not loaded?)". */
export async function resolveGenlFamily(conn: NetlinkConnection, name: string): Promise<GenlFamily> {
  const replies = await conn.request({
    type: GENL_ID_CTRL,
    payload: encodeGetFamily(name),
    operation: `resolve generic netlink family ${name}`,
    mapError: (errno) =>
      errno === 2
        ? new NetlinkError(
            `resolve generic netlink family ${name}`,
            errno,
            'ENOENT',
            `family "${name}" is not registered in this kernel (module not loaded?)`,
          )
        : undefined,
  });
  const first = replies[0];
  if (!first) throw new Error(`resolve generic netlink family ${name}: empty reply`);
  return decodeFamily(first);
}
