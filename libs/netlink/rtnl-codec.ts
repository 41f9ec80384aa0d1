// rtnetlink links and addresses (linux/rtnetlink.h, if_link.h, if_addr.h). Pure codec.
// struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; }
// struct ifaddrmsg { u8 family; u8 prefixlen; u8 flags; u8 scope; u32 index; }

import { decodeAttrs, getStr, nlAttr, nlNested, optStr, strAttr, u32Attr } from './netlink-attrs.ts';
import { afName, afNumber, bytesToIp, familyOf, ipToBytes } from './ip-address.ts';
import type { IpFamily } from './ip-address.ts';

export const NETLINK_ROUTE = 0;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const IFF_UP = 0x1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
const IFNAMSIZ = 16;

export interface Link {
  readonly index: number;
  readonly name: string;
  /** IFF_* bits. */
  readonly flags: number;
  readonly up: boolean;
  /** IFLA_INFO_KIND ("dummy", "veth"); undefined for plain devices like lo. */
  readonly kind?: string;
  readonly mtu?: number;
}

export interface LinkAddress {
  readonly family: IpFamily;
  readonly address: string;
  readonly prefixLength: number;
  readonly linkIndex: number;
}

export function checkLinkName(name: string): void {
  if (!name || Buffer.byteLength(name) >= IFNAMSIZ || /[\s/]/.test(name)) {
    throw new Error(`invalid link name "${name}" (1-${IFNAMSIZ - 1} bytes, no spaces or '/')`);
  }
}

function ifinfo(index: number, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(0, 0); // AF_UNSPEC
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** RTM_GETLINK by name (plain request) or, without a name, the dump request. */
export function encodeGetLink(name?: string): Buffer {
  if (name === undefined) return ifinfo(0);
  checkLinkName(name);
  return Buffer.concat([ifinfo(0), strAttr(IFLA_IFNAME, name)]);
}

/** RTM_NEWLINK creating a link of `kind` (use with NLM_F_CREATE | NLM_F_EXCL). */
export function encodeCreateLink(name: string, kind: string, up: boolean): Buffer {
  checkLinkName(name);
  return Buffer.concat([
    ifinfo(0, up ? IFF_UP : 0, up ? IFF_UP : 0),
    strAttr(IFLA_IFNAME, name),
    nlNested(IFLA_LINKINFO, [strAttr(IFLA_INFO_KIND, kind)]),
  ]);
}

/** RTM_NEWLINK changing only IFF_UP of an existing link. */
export const encodeSetLinkUp = (index: number, up: boolean): Buffer => ifinfo(index, up ? IFF_UP : 0, IFF_UP);

export const encodeDelLink = (index: number): Buffer => ifinfo(index);

export function decodeLink(payload: Buffer): Link {
  if (payload.length < 16) throw new Error(`ifinfomsg too short (${payload.length} bytes)`);
  const index = payload.readInt32LE(4);
  const flags = payload.readUInt32LE(8);
  const a = decodeAttrs(payload.subarray(16));
  const info = a.get(IFLA_LINKINFO);
  const kind = info ? optStr(decodeAttrs(info), IFLA_INFO_KIND) : undefined;
  const mtu = a.get(IFLA_MTU);
  return {
    index,
    name: getStr(a, IFLA_IFNAME, 'IFLA_IFNAME'),
    flags,
    up: (flags & IFF_UP) !== 0,
    ...(kind ? { kind } : {}),
    ...(mtu && mtu.length >= 4 ? { mtu: mtu.readUInt32LE(0) } : {}),
  };
}

function ifaddr(family: IpFamily, prefixLength: number, index: number, flags = 0): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(afNumber(family), 0);
  b.writeUInt8(prefixLength, 1);
  b.writeUInt8(flags & 0xff, 2);
  b.writeUInt8(0, 3); // RT_SCOPE_UNIVERSE
  b.writeUInt32LE(index, 4);
  return b;
}

function checkedAddress(
  address: string,
  prefixLength: number | undefined,
): { family: IpFamily; bytes: Buffer; plen: number } {
  const family = familyOf(address);
  if (!family) throw new Error(`invalid IP address "${address}"`);
  const max = family === 'inet' ? 32 : 128;
  const plen = prefixLength ?? max;
  if (!Number.isInteger(plen) || plen < 0 || plen > max)
    throw new Error(`invalid prefix length ${plen} for ${address}`);
  return { family, bytes: ipToBytes(address), plen };
}

/** RTM_NEWADDR / RTM_DELADDR body. IPv6 gets IFA_F_NODAD: a service VIP must work at once. */
export function encodeAddress(linkIndex: number, address: string, prefixLength?: number): Buffer {
  const { family, bytes, plen } = checkedAddress(address, prefixLength);
  const flags = family === 'inet6' ? IFA_F_NODAD : 0;
  const attrs = [nlAttr(IFA_LOCAL, bytes), nlAttr(IFA_ADDRESS, bytes)];
  if (flags) attrs.push(u32Attr(IFA_FLAGS, flags));
  return Buffer.concat([ifaddr(family, plen, linkIndex, flags), ...attrs]);
}

/** RTM_GETADDR dump request for one family (or all). */
export function encodeGetAddresses(family?: IpFamily): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family ? afNumber(family) : 0, 0);
  return b;
}

export function decodeAddress(payload: Buffer): LinkAddress {
  if (payload.length < 8) throw new Error(`ifaddrmsg too short (${payload.length} bytes)`);
  const family = afName(payload.readUInt8(0));
  const a = decodeAttrs(payload.subarray(8));
  // IFA_LOCAL is the interface's own address (differs from IFA_ADDRESS on point-to-point links).
  const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  if (!raw) throw new Error('address message without IFA_LOCAL/IFA_ADDRESS');
  return {
    family,
    address: bytesToIp(raw, family),
    prefixLength: payload.readUInt8(1),
    linkIndex: payload.readUInt32LE(4),
  };
}
