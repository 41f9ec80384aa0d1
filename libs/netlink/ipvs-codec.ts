// IPVS generic netlink codec (family "IPVS", version 1). Pure: plain data ↔ genl payloads.
// Wire facts (net/netfilter/ipvs/ip_vs_ctl.c policies): addresses are a 16-byte union,
// ports are big-endian u16, flags are struct ip_vs_flags { u32 flags; u32 mask; },
// everything else host-order u16/u32, names NUL-terminated.

import {
  align4,
  decodeAttrs,
  findAttr,
  NLA_HDRLEN,
  NLA_TYPE_MASK,
  getBe16,
  getStr,
  getU16,
  getU32,
  getU64,
  optStr,
  u32Attr,
} from './netlink-attrs.ts';
import { GENL_HDRLEN, decodeGenl, encodeGenl } from './genl-family.ts';
import { NlWriter } from './netlink-writer.ts';
import { afName, afNumber, bytesToIp, familyOf, writeIpBytes } from './ip-address.ts';
import type { IpFamily } from './ip-address.ts';
import type {
  IpvsDestination,
  IpvsDestinationKey,
  IpvsForward,
  IpvsInfo,
  IpvsProtocol,
  IpvsService,
  IpvsServiceFlag,
  IpvsServiceKey,
  IpvsStats,
  IpvsTimeouts,
} from './ipvs-types.ts';

export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const IpvsCmd = {
  NEW_SERVICE: 1,
  SET_SERVICE: 2,
  DEL_SERVICE: 3,
  GET_SERVICE: 4,
  NEW_DEST: 5,
  SET_DEST: 6,
  DEL_DEST: 7,
  GET_DEST: 8,
  SET_CONFIG: 12,
  GET_CONFIG: 13,
  SET_INFO: 14,
  GET_INFO: 15,
  ZERO: 16,
  FLUSH: 17,
} as const;

const CMD_ATTR = { SERVICE: 1, DEST: 2, TIMEOUT_TCP: 4, TIMEOUT_TCP_FIN: 5, TIMEOUT_UDP: 6 } as const;
const SVC = {
  AF: 1,
  PROTOCOL: 2,
  ADDR: 3,
  PORT: 4,
  FWMARK: 5,
  SCHED_NAME: 6,
  FLAGS: 7,
  TIMEOUT: 8,
  NETMASK: 9,
  STATS: 10,
  PE_NAME: 11,
  STATS64: 12,
} as const;
const DEST = {
  ADDR: 1,
  PORT: 2,
  FWD_METHOD: 3,
  WEIGHT: 4,
  U_THRESH: 5,
  L_THRESH: 6,
  ACTIVE_CONNS: 7,
  INACT_CONNS: 8,
  PERSIST_CONNS: 9,
  STATS: 10,
  ADDR_FAMILY: 11,
  STATS64: 12,
} as const;
const INFO = { VERSION: 1, CONN_TAB_SIZE: 2 } as const;

const PROTO_NUM: Record<IpvsProtocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };
const PROTO_NAME = new Map<number, IpvsProtocol>([
  [6, 'TCP'],
  [17, 'UDP'],
  [132, 'SCTP'],
]);

const FLAG_BITS: ReadonlyArray<readonly [IpvsServiceFlag, number]> = [
  ['persistent', 0x1],
  ['hashed', 0x2],
  ['one-packet', 0x4],
  ['sched-flag-1', 0x8],
  ['sched-flag-2', 0x10],
  ['sched-flag-3', 0x20],
];
const FWD_NUM: Record<IpvsForward, number> = { masq: 0, local: 1, tunnel: 2, route: 3, bypass: 4 };
const FWD_NAME: readonly IpvsForward[] = ['masq', 'local', 'tunnel', 'route', 'bypass'];
const IP_VS_CONN_F_FWD_MASK = 0x7;
const SCHED_MAXLEN = 16;

export function flagsToBits(flags: readonly IpvsServiceFlag[]): number {
  let bits = 0;
  for (const f of flags) {
    const e = FLAG_BITS.find(([n]) => n === f);
    if (!e) throw new Error(`unknown IPVS service flag "${String(f)}"`);
    bits |= e[1];
  }
  return bits;
}

export const bitsToFlags = (bits: number): IpvsServiceFlag[] => FLAG_BITS.filter(([, b]) => bits & b).map(([n]) => n);

/** Family of a service: explicit for fwmark services, else from its address. */
export function serviceFamily(key: IpvsServiceKey): IpFamily {
  if (key.family) return key.family;
  const f = familyOf(key.address);
  if (!f) throw new Error(`invalid IPVS service address "${key.address}"`);
  return f;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid ${what} port ${port} (0-65535)`);
}
function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff)
    throw new Error(`invalid ${what} ${v} (unsigned 32-bit integer)`);
}

/** Attributes that identify a service (enough for DEL/GET and for addressing its dests). */
function writeServiceKey(w: NlWriter, key: IpvsServiceKey): void {
  const family = serviceFamily(key);
  w.u16(SVC.AF, afNumber(family));
  if (key.fwmark !== undefined) {
    checkU32(key.fwmark, 'fwmark');
    w.u32(SVC.FWMARK, key.fwmark);
    return;
  }
  const proto = PROTO_NUM[key.protocol];
  if (proto === undefined) throw new Error(`invalid IPVS protocol "${String(key.protocol)}" (TCP, UDP or SCTP)`);
  if (familyOf(key.address) !== family) throw new Error(`address "${key.address}" is not ${family}`);
  checkPort(key.port, 'service');
  w.u16(SVC.PROTOCOL, proto);
  writeUnion16(w, SVC.ADDR, key.address);
  w.be16(SVC.PORT, key.port);
}

/** A full service entry (NEW/SET need scheduler, flags, timeout and netmask). */
function writeService(w: NlWriter, svc: IpvsService): void {
  if (!svc.scheduler || Buffer.byteLength(svc.scheduler) >= SCHED_MAXLEN) {
    throw new Error(`invalid IPVS scheduler "${svc.scheduler}" (1-${SCHED_MAXLEN - 1} characters)`);
  }
  checkU32(svc.timeout, 'persistence timeout');
  checkU32(svc.netmask, 'netmask');
  if (serviceFamily(svc) === 'inet6' && (svc.netmask < 1 || svc.netmask > 128)) {
    throw new Error(`invalid IPv6 persistence prefix ${svc.netmask} (1-128)`);
  }
  const bits = flagsToBits(svc.flags) >>> 0;
  writeServiceKey(w, svc);
  w.str(SVC.SCHED_NAME, svc.scheduler);
  w.fixed(SVC.FLAGS, 8, (buf, at) => {
    buf.writeUInt32LE(bits, at);
    // mask = all bits: the listed flags replace the service's flags (ipvsadm does the same).
    buf.writeUInt32LE(0xffffffff, at + 4);
  });
  w.u32(SVC.TIMEOUT, svc.timeout);
  if (serviceFamily(svc) === 'inet') w.be32(SVC.NETMASK, svc.netmask);
  else w.u32(SVC.NETMASK, svc.netmask);
  if (svc.pe) w.str(SVC.PE_NAME, svc.pe);
}

function writeDestKey(w: NlWriter, dest: IpvsDestinationKey): void {
  const fam = familyOf(dest.address);
  if (!fam) throw new Error(`invalid IPVS destination address "${dest.address}"`);
  checkPort(dest.port, 'destination');
  writeUnion16(w, DEST.ADDR, dest.address);
  w.be16(DEST.PORT, dest.port);
  w.u16(DEST.ADDR_FAMILY, afNumber(fam));
}

function writeDest(w: NlWriter, dest: IpvsDestination): void {
  const fwd = FWD_NUM[dest.forward];
  if (fwd === undefined) throw new Error(`invalid IPVS forwarding method "${String(dest.forward)}"`);
  if (!Number.isInteger(dest.weight) || dest.weight < 0 || dest.weight > 0x7fffffff) {
    throw new Error(`invalid IPVS weight ${dest.weight} (0-2147483647)`);
  }
  checkU32(dest.upperThreshold, 'upper threshold');
  checkU32(dest.lowerThreshold, 'lower threshold');
  writeDestKey(w, dest);
  w.u32(DEST.FWD_METHOD, fwd);
  w.u32(DEST.WEIGHT, dest.weight);
  w.u32(DEST.U_THRESH, dest.upperThreshold);
  w.u32(DEST.L_THRESH, dest.lowerThreshold);
}

/** The 16-byte `union nf_inet_addr`: IPv4 in the first 4 bytes, the rest zero. */
function writeUnion16(w: NlWriter, type: number, address: string): void {
  w.fixed(type, 16, (buf, at) => writeIpBytes(address, buf, at));
}

// Every IPVS request is written into this one buffer and copied out once (see netlink-writer.ts).
const writer = new NlWriter(1024);

/** A genl message: header, then the SERVICE nest and, when given, the DEST nest. */
function ipvsMessage(cmd: number, service?: (w: NlWriter) => void, dest?: (w: NlWriter) => void): Buffer {
  const w = writer.reset().raw(genlHeader(cmd));
  if (service) {
    const at = w.nest(CMD_ATTR.SERVICE);
    service(w);
    w.end(at);
  }
  if (dest) {
    const at = w.nest(CMD_ATTR.DEST);
    dest(w);
    w.end(at);
  }
  return w.copy();
}

const GENL_HEADERS = new Map<number, Buffer>();
function genlHeader(cmd: number): Buffer {
  let h = GENL_HEADERS.get(cmd);
  if (!h) GENL_HEADERS.set(cmd, (h = encodeGenl(cmd, IPVS_GENL_VERSION, [])));
  return h;
}
const genl = (cmd: number, attrs: Buffer[] = []): Buffer => encodeGenl(cmd, IPVS_GENL_VERSION, attrs);

export const encodeNewService = (svc: IpvsService): Buffer =>
  ipvsMessage(IpvsCmd.NEW_SERVICE, (w) => writeService(w, svc));
export const encodeSetService = (svc: IpvsService): Buffer =>
  ipvsMessage(IpvsCmd.SET_SERVICE, (w) => writeService(w, svc));
export const encodeDelService = (key: IpvsServiceKey): Buffer =>
  ipvsMessage(IpvsCmd.DEL_SERVICE, (w) => writeServiceKey(w, key));
/** With a key: one service (plain request). Without: the dump request. */
export const encodeGetService = (key?: IpvsServiceKey): Buffer =>
  ipvsMessage(IpvsCmd.GET_SERVICE, key && ((w) => writeServiceKey(w, key)));
export const encodeNewDest = (svc: IpvsServiceKey, d: IpvsDestination): Buffer =>
  ipvsMessage(
    IpvsCmd.NEW_DEST,
    (w) => writeServiceKey(w, svc),
    (w) => writeDest(w, d),
  );
export const encodeSetDest = (svc: IpvsServiceKey, d: IpvsDestination): Buffer =>
  ipvsMessage(
    IpvsCmd.SET_DEST,
    (w) => writeServiceKey(w, svc),
    (w) => writeDest(w, d),
  );
export const encodeDelDest = (svc: IpvsServiceKey, d: IpvsDestinationKey): Buffer =>
  ipvsMessage(
    IpvsCmd.DEL_DEST,
    (w) => writeServiceKey(w, svc),
    (w) => writeDestKey(w, d),
  );
/** Dump request for a service's destinations. */
export const encodeGetDests = (svc: IpvsServiceKey): Buffer =>
  ipvsMessage(IpvsCmd.GET_DEST, (w) => writeServiceKey(w, svc));
export const encodeGetConfig = (): Buffer => genl(IpvsCmd.GET_CONFIG);
export const encodeGetInfo = (): Buffer => genl(IpvsCmd.GET_INFO);
export const encodeFlush = (): Buffer => genl(IpvsCmd.FLUSH);

export function encodeSetConfig(t: Partial<IpvsTimeouts>): Buffer {
  const attrs: Buffer[] = [];
  const put = (type: number, v: number | undefined, what: string) => {
    if (v === undefined) return;
    checkU32(v, `${what} timeout`);
    attrs.push(u32Attr(type, v));
  };
  put(CMD_ATTR.TIMEOUT_TCP, t.tcp, 'tcp');
  put(CMD_ATTR.TIMEOUT_TCP_FIN, t.tcpFin, 'tcpfin');
  put(CMD_ATTR.TIMEOUT_UDP, t.udp, 'udp');
  return genl(IpvsCmd.SET_CONFIG, attrs);
}

function decodeStats(buf: Buffer | undefined, wide: boolean): IpvsStats | undefined {
  if (!buf) return undefined;
  const a = decodeAttrs(buf);
  const n = (t: number): number => {
    if (!a.has(t)) return 0;
    return wide ? Number(getU64(a, t)) : t === 4 || t === 5 ? Number(getU64(a, t)) : getU32(a, t);
  };
  return {
    conns: n(1),
    inPkts: n(2),
    outPkts: n(3),
    inBytes: n(4),
    outBytes: n(5),
    cps: n(6),
    inPps: n(7),
    outPps: n(8),
    inBps: n(9),
    outBps: n(10),
  };
}

/** The attributes inside IPVS_CMD_ATTR_SERVICE → service. */
export function decodeServiceAttrs(buf: Buffer, withStats = true): IpvsService {
  const a = decodeAttrs(buf);
  const family = afName(getU16(a, SVC.AF, 'IPVS_SVC_ATTR_AF'));
  const flagsBuf = a.get(SVC.FLAGS);
  if (!flagsBuf || flagsBuf.length < 4) throw new Error('IPVS service has no flags attribute');
  const netmaskBuf = a.get(SVC.NETMASK);
  const netmask =
    !netmaskBuf || netmaskBuf.length < 4
      ? 0
      : family === 'inet'
        ? netmaskBuf.readUInt32BE(0)
        : netmaskBuf.readUInt32LE(0);
  const base = {
    scheduler: getStr(a, SVC.SCHED_NAME, 'IPVS_SVC_ATTR_SCHED_NAME'),
    flags: bitsToFlags(flagsBuf.readUInt32LE(0)),
    timeout: a.has(SVC.TIMEOUT) ? getU32(a, SVC.TIMEOUT) : 0,
    netmask,
  };
  const pe = optStr(a, SVC.PE_NAME);
  const stats = withStats ? (decodeStats(a.get(SVC.STATS64), true) ?? decodeStats(a.get(SVC.STATS), false)) : undefined;
  const extra = { ...(pe ? { pe } : {}), ...(stats ? { stats } : {}) };
  if (a.has(SVC.FWMARK)) {
    return {
      protocol: PROTO_NAME.get(a.has(SVC.PROTOCOL) ? getU16(a, SVC.PROTOCOL) : 6) ?? 'TCP',
      address: family === 'inet' ? '0.0.0.0' : '::',
      port: 0,
      fwmark: getU32(a, SVC.FWMARK),
      family,
      ...base,
      ...extra,
    };
  }
  const protoNum = getU16(a, SVC.PROTOCOL, 'IPVS_SVC_ATTR_PROTOCOL');
  const protocol = PROTO_NAME.get(protoNum);
  if (!protocol) throw new Error(`IPVS service has unsupported protocol ${protoNum}`);
  const addr = a.get(SVC.ADDR);
  if (!addr) throw new Error('IPVS service has no address attribute');
  return {
    protocol,
    address: bytesToIp(addr, family),
    port: getBe16(a, SVC.PORT, 'IPVS_SVC_ATTR_PORT'),
    ...base,
    ...extra,
  };
}

/**
 * The attributes inside IPVS_CMD_ATTR_DEST → destination. Walks them in place (a listing of
 * every service's destinations decodes 100k of these); the traffic counters (`stats`) are
 * decoded only when asked for.
 */
export function decodeDestAttrs(buf: Buffer, serviceFamily: IpFamily, withStats = true): IpvsDestination {
  let family = serviceFamily;
  let addr: Buffer | undefined;
  let port: number | undefined;
  let fwd: number | undefined;
  let weight = 0,
    upperThreshold = 0,
    lowerThreshold = 0;
  let activeConns: number | undefined, inactiveConns: number | undefined, persistConns: number | undefined;
  let stats64: Buffer | undefined, stats32: Buffer | undefined;
  const u32 = (at: number, size: number, what: string) => {
    if (size < 4) throw new Error(`attribute ${what} is ${size} bytes, expected 4`);
    return buf.readUInt32LE(at);
  };
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < NLA_HDRLEN || off + len > buf.length)
      throw new Error(`malformed netlink attribute at offset ${off}: length ${len}, ${buf.length - off} bytes left`);
    const at = off + NLA_HDRLEN,
      size = len - NLA_HDRLEN;
    switch (buf.readUInt16LE(off + 2) & NLA_TYPE_MASK) {
      case DEST.ADDR:
        addr = buf.subarray(at, at + size);
        break;
      case DEST.PORT:
        if (size < 2) throw new Error(`attribute IPVS_DEST_ATTR_PORT is ${size} bytes, expected 2`);
        port = buf.readUInt16BE(at);
        break;
      case DEST.FWD_METHOD:
        fwd = u32(at, size, 'IPVS_DEST_ATTR_FWD_METHOD') & IP_VS_CONN_F_FWD_MASK;
        break;
      case DEST.WEIGHT:
        weight = u32(at, size, String(DEST.WEIGHT)) | 0;
        break;
      case DEST.U_THRESH:
        upperThreshold = u32(at, size, String(DEST.U_THRESH));
        break;
      case DEST.L_THRESH:
        lowerThreshold = u32(at, size, String(DEST.L_THRESH));
        break;
      case DEST.ACTIVE_CONNS:
        activeConns = u32(at, size, String(DEST.ACTIVE_CONNS));
        break;
      case DEST.INACT_CONNS:
        inactiveConns = u32(at, size, String(DEST.INACT_CONNS));
        break;
      case DEST.PERSIST_CONNS:
        persistConns = u32(at, size, String(DEST.PERSIST_CONNS));
        break;
      case DEST.ADDR_FAMILY:
        if (size < 2) throw new Error(`attribute ${DEST.ADDR_FAMILY} is ${size} bytes, expected 2`);
        family = afName(buf.readUInt16LE(at));
        break;
      case DEST.STATS64:
        stats64 = buf.subarray(at, at + size);
        break;
      case DEST.STATS:
        stats32 = buf.subarray(at, at + size);
        break;
    }
    off += align4(len);
  }
  if (!addr) throw new Error('IPVS destination has no address attribute');
  if (fwd === undefined) throw new Error('missing attribute IPVS_DEST_ATTR_FWD_METHOD');
  const forward = FWD_NAME[fwd];
  if (!forward) throw new Error(`IPVS destination has unknown forwarding method ${fwd}`);
  if (port === undefined) throw new Error('missing attribute IPVS_DEST_ATTR_PORT');
  const stats = withStats ? (decodeStats(stats64, true) ?? decodeStats(stats32, false)) : undefined;
  return {
    address: bytesToIp(addr, family),
    port,
    forward,
    weight,
    upperThreshold,
    lowerThreshold,
    ...(activeConns !== undefined ? { activeConns } : {}),
    ...(inactiveConns !== undefined ? { inactiveConns } : {}),
    ...(persistConns !== undefined ? { persistConns } : {}),
    ...(stats ? { stats } : {}),
  };
}

/** A NEW_SERVICE/GET_SERVICE-reply genl payload → service. */
/** `withStats: false` leaves the traffic counters out (a full listing decodes 10k services). */
export function decodeServiceMessage(payload: Buffer, withStats = true): IpvsService {
  if (payload.length < GENL_HDRLEN) throw new Error(`generic netlink payload too short (${payload.length} bytes)`);
  const svc = findAttr(payload, CMD_ATTR.SERVICE, GENL_HDRLEN);
  if (!svc) throw new Error('IPVS reply has no service attribute');
  return decodeServiceAttrs(svc, withStats);
}

/** A GET_DEST reply genl payload → destination (family falls back to the service's). */
export function decodeDestMessage(payload: Buffer, serviceFamily: IpFamily, withStats = true): IpvsDestination {
  if (payload.length < GENL_HDRLEN) throw new Error(`generic netlink payload too short (${payload.length} bytes)`);
  const dest = findAttr(payload, CMD_ATTR.DEST, GENL_HDRLEN);
  if (!dest) throw new Error('IPVS reply has no destination attribute');
  return decodeDestAttrs(dest, serviceFamily, withStats);
}

export function decodeTimeouts(payload: Buffer): IpvsTimeouts {
  const a = decodeAttrs(decodeGenl(payload).attrs);
  return {
    tcp: getU32(a, CMD_ATTR.TIMEOUT_TCP, 'IPVS_CMD_ATTR_TIMEOUT_TCP'),
    tcpFin: getU32(a, CMD_ATTR.TIMEOUT_TCP_FIN, 'IPVS_CMD_ATTR_TIMEOUT_TCP_FIN'),
    udp: getU32(a, CMD_ATTR.TIMEOUT_UDP, 'IPVS_CMD_ATTR_TIMEOUT_UDP'),
  };
}

export function decodeInfo(payload: Buffer): IpvsInfo {
  const a = decodeAttrs(decodeGenl(payload).attrs);
  const code = getU32(a, INFO.VERSION, 'IPVS_INFO_ATTR_VERSION');
  return {
    version: `${(code >> 16) & 0xff}.${(code >> 8) & 0xff}.${code & 0xff}`,
    versionCode: code,
    connTableSize: getU32(a, INFO.CONN_TAB_SIZE, 'IPVS_INFO_ATTR_CONN_TAB_SIZE'),
  };
}

/** ipvsadm-style label used in error messages: "TCP 10.0.0.1:80", "FWM 5". */
export function serviceLabel(key: IpvsServiceKey): string {
  if (key.fwmark !== undefined) return `FWM ${key.fwmark}`;
  const host = familyOf(key.address) === 'inet6' ? `[${key.address}]` : key.address;
  return `${key.protocol} ${host}:${key.port}`;
}

export function destLabel(d: IpvsDestinationKey): string {
  return familyOf(d.address) === 'inet6' ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`;
}
