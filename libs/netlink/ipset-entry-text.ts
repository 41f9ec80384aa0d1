// ipset entries ↔ the element text of `ipset save` ("10.0.0.1,tcp:80", "31000",
// "1.2.3.4,tcp:80,10.0.0.0/8"), plus whole save lines. Host-length prefixes (/32, /128)
// are omitted, exactly as ipset prints them.

import { familyOf } from './ip-address.ts';
import type { IpsetEntry, IpsetHeader, IpsetProto, IpsetType } from './ipset-types.ts';

const PROTOS: readonly IpsetProto[] = ['tcp', 'udp', 'sctp', 'udplite'];
const hostLen = (ip: string): number => (familyOf(ip) === 'inet6' ? 128 : 32);

function need<T>(v: T | undefined, what: string, type: IpsetType): T {
  if (v === undefined) throw new Error(`${type} element needs ${what}`);
  return v;
}

function net(ip: string, cidr: number | undefined): string {
  return cidr === undefined || cidr === hostLen(ip) ? ip : `${ip}/${cidr}`;
}

/** Entry → element text as `ipset save` prints it for a set of `type`. */
export function entryToText(type: IpsetType, e: IpsetEntry): string {
  const ip = () => need(e.ip, 'ip', type);
  const pp = () => `${need(e.proto, 'proto', type)}:${need(e.port, 'port', type)}`;
  switch (type) {
    case 'hash:ip':
      return ip();
    case 'hash:net':
      return net(ip(), e.cidr);
    case 'hash:ip,port':
      return `${ip()},${pp()}`;
    case 'hash:ip,port,ip':
      return `${ip()},${pp()},${need(e.ip2, 'ip2', type)}`;
    case 'hash:ip,port,net':
      return `${ip()},${pp()},${net(need(e.ip2, 'ip2', type), e.cidr2)}`;
    case 'bitmap:port':
      return String(need(e.port, 'port', type));
    default:
      throw new Error(`unsupported ipset type "${String(type)}"`);
  }
}

function parseIp(text: string, what: string): string {
  if (!familyOf(text)) throw new Error(`invalid ${what} "${text}"`);
  return text;
}

function parseNet(text: string, what: string): { ip: string; cidr: number } {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined || addr === undefined) throw new Error(`invalid ${what} "${text}"`);
  const ip = parseIp(addr, what);
  const max = hostLen(ip);
  if (len === undefined) return { ip, cidr: max };
  const cidr = Number(len);
  if (!/^\d+$/.test(len) || cidr < 0 || cidr > max) throw new Error(`invalid prefix length in ${what} "${text}"`);
  return { ip, cidr };
}

function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new Error(`invalid port "${text}"`);
  return n;
}

function parseProtoPort(text: string): { proto: IpsetProto; port: number } {
  const i = text.indexOf(':');
  // "80" alone means tcp:80, as in ipset.
  if (i < 0) return { proto: 'tcp', port: parsePort(text) };
  const proto = text.slice(0, i).toLowerCase();
  if (!(PROTOS as readonly string[]).includes(proto)) throw new Error(`unsupported protocol "${proto}" in "${text}"`);
  return { proto: proto as IpsetProto, port: parsePort(text.slice(i + 1)) };
}

/** Element text → entry for a set of `type`. Hash:net-style parts always get a prefix. */
export function entryFromText(type: IpsetType, text: string): IpsetEntry {
  const parts = text.trim().split(',');
  const arity: Record<IpsetType, number> = {
    'hash:ip': 1,
    'hash:net': 1,
    'bitmap:port': 1,
    'hash:ip,port': 2,
    'hash:ip,port,ip': 3,
    'hash:ip,port,net': 3,
  };
  if (arity[type] === undefined) throw new Error(`unsupported ipset type "${String(type)}"`);
  if (parts.length !== arity[type] || parts.some((p) => p === '')) {
    throw new Error(`"${text}" is not a ${type} element`);
  }
  const [a, b, c] = parts as [string, string, string];
  switch (type) {
    case 'hash:ip':
      return { ip: parseIp(a, 'address') };
    case 'hash:net':
      return parseNet(a, 'network');
    case 'bitmap:port':
      return { port: parsePort(a) };
    case 'hash:ip,port':
      return { ip: parseIp(a, 'address'), ...parseProtoPort(b) };
    case 'hash:ip,port,ip': {
      const ip = parseIp(a, 'address');
      const ip2 = parseIp(c, 'second address');
      if (familyOf(ip) !== familyOf(ip2)) throw new Error(`mixed address families in "${text}"`);
      return { ip, ...parseProtoPort(b), ip2 };
    }
    case 'hash:ip,port,net': {
      const ip = parseIp(a, 'address');
      const n = parseNet(c, 'network');
      if (familyOf(ip) !== familyOf(n.ip)) throw new Error(`mixed address families in "${text}"`);
      return { ip, ...parseProtoPort(b), ip2: n.ip, cidr2: n.cidr };
    }
  }
}

const quote = (s: string): string => `"${s.replace(/(["\\])/g, '\\$1')}"`;

/** `add NAME ELEMENT [timeout N] [comment "…"]` */
export function entryToSaveLine(setName: string, type: IpsetType, e: IpsetEntry): string {
  let line = `add ${setName} ${entryToText(type, e)}`;
  if (e.timeout !== undefined) line += ` timeout ${e.timeout}`;
  if (e.comment !== undefined) line += ` comment ${quote(e.comment)}`;
  return line;
}

/** `create NAME TYPE …` in ipset save's option order. */
export function headerToSaveLine(h: IpsetHeader): string {
  const out = [`create ${h.name} ${h.type}`];
  if (h.type === 'bitmap:port') {
    if (h.range) out.push(`range ${h.range.from}-${h.range.to}`);
  } else {
    if (h.family) out.push(`family ${h.family}`);
    if (h.hashSize !== undefined) out.push(`hashsize ${h.hashSize}`);
    if (h.maxElem !== undefined) out.push(`maxelem ${h.maxElem}`);
  }
  if (h.timeout !== undefined) out.push(`timeout ${h.timeout}`);
  if (h.comment) out.push('comment');
  if (h.bucketSize !== undefined) out.push(`bucketsize ${h.bucketSize}`);
  if (h.initval !== undefined) out.push(`initval 0x${h.initval.toString(16).padStart(8, '0')}`);
  return out.join(' ');
}
