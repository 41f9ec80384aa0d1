import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 'IPv4' | 'IPv6';

/**
 * Canonical text of an IP address (RFC 5952 for IPv6: lower case, longest zero run compressed),
 * or undefined when the text is not an address. Kernel tools print addresses this way (except an
 * IPv6 address with an embedded IPv4 tail: kernelIpText), so rendering canonical text keeps our
 * output byte-comparable with `ipvsadm -Sn` and `ipset save`.
 */
export function canonicalIp(text: string): string | undefined {
  if (typeof text !== 'string') return undefined;
  // Most addresses (every endpoint of an initial list) are dotted quads already in canonical form.
  if (isCanonicalIpv4(text)) return text;
  if (isIPv4(text)) {
    // Reject leading zeros that node:net tolerates in some forms, then normalise.
    const parts = text.split('.');
    if (parts.some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
    return parts.map((p) => String(Number(p))).join('.');
  }
  if (isIPv6(text) && !text.includes('%')) return canonicalIpv6(text);
  return undefined;
}

/** Four decimal parts 0-255 without leading zeros, checked by hand (no regex, no split). */
function isCanonicalIpv4(text: string): boolean {
  const n = text.length;
  if (n < 7 || n > 15) return false;
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 46; // a '.' after the end closes the last part
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && value === 0) return false; // leading zero
      value = value * 10 + (c - 48);
      if (++digits > 3) return false;
    } else return false;
  }
  return parts === 4;
}

export function ipFamily(address: string): IpFamily {
  return address.includes(':') ? 'IPv6' : 'IPv4';
}

function canonicalIpv6(text: string): string {
  const groups = expandIpv6(text);
  // Find the longest run (length >= 2) of zero groups; first one wins on ties.
  let bestStart = -1,
    bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}

/**
 * A canonical address as inet_ntop (glibc) prints it, which is how `ipvsadm -Sn`, `ipset save`
 * and `nft list` show it: the same as canonicalIp except an IPv4-compatible (`::a.b.c.d`) or
 * IPv4-mapped (`::ffff:a.b.c.d`) IPv6 address, which inet_ntop writes with its dotted tail and
 * RFC 5952 text does not (`::a32:102`). Canonical text stays the one in data and hashes (changing
 * it would change recorded versions); this is for output that must match the kernel tools.
 */
export function kernelIpText(ip: string): string {
  // every embedded form starts with its zero run (the only ones inet_ntop abbreviates)
  if (!ip.startsWith('::') || ip.includes('.')) return ip;
  const g = expandIpv6(ip);
  // inet_ntop: the longest zero run is groups 0-5, or 0-4 followed by ffff
  const zeros = g.findIndex((x) => x !== 0);
  const run = zeros < 0 ? 8 : zeros;
  if (run !== 6 && !(run === 5 && g[5] === 0xffff)) return ip;
  const v4 = `${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`;
  return run === 6 ? `::${v4}` : `::ffff:${v4}`;
}

/**
 * The inverse for text read back from a kernel tool: an IPv6 address written with a dotted tail
 * (`::10.50.1.2`) as its canonical text, anything else unchanged. Only a text with both ':' and
 * '.' can be one, so other text costs two scans.
 */
export function canonicalFromKernel(text: string): string {
  return text.includes(':') && text.includes('.') ? (canonicalIp(text) ?? text) : text;
}

/** The 8 16-bit groups of an IPv6 address (accepts an embedded IPv4 tail). */
export function expandIpv6(text: string): number[] {
  let s = text;
  const v4 = s.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    s = s.slice(0, -v4[1]!.length) + ((b[0]! << 8) | b[1]!).toString(16) + ':' + ((b[2]! << 8) | b[3]!).toString(16);
  }
  const [left, right] = s.includes('::') ? s.split('::') : [s, undefined];
  const l = left ? left.split(':') : [];
  const r = right !== undefined && right !== '' ? right.split(':') : [];
  const fill = right === undefined ? [] : new Array(8 - l.length - r.length).fill('0');
  return [...l, ...fill, ...r].map((h) => parseInt(h, 16));
}

export interface Cidr {
  readonly text: string; // canonical "addr/prefix"
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** Parses "addr/prefix" (or a bare address as a host route); undefined when invalid. */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const [addr, prefixText, extra] = text.trim().split('/');
  if (extra !== undefined || addr === undefined) return undefined;
  const ip = canonicalIp(addr);
  if (!ip) return undefined;
  const family = ipFamily(ip);
  const max = family === 'IPv4' ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d+$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  const bytes = ipBytes(ip);
  // Mask host bits so 10.1.2.3/8 and 10.0.0.0/8 are the same network (kernel does the same).
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i]! &= (0xff << (8 - bits)) & 0xff;
  }
  return { text: `${bytesToIp(bytes)}/${prefix}`, family, bytes, prefix };
}

export function cidrContains(cidr: Cidr, address: string): boolean {
  const ip = canonicalIp(address);
  if (!ip || ipFamily(ip) !== cidr.family) return false;
  const b = ipBytes(ip);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, cidr.prefix - i * 8));
    const mask = (0xff << (8 - bits)) & 0xff;
    if ((b[i]! & mask) !== cidr.bytes[i]) return false;
  }
  return true;
}

export function ipBytes(ip: string): Uint8Array {
  if (!ip.includes(':')) return Uint8Array.from(ip.split('.').map(Number));
  const out = new Uint8Array(16);
  expandIpv6(ip).forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return canonicalIpv6(groups.join(':'));
}

/**
 * Why `ip` (canonical) cannot be a Service's external or load balancer address, else undefined:
 * the ranges the API server's ValidateNonSpecialIP refuses (unspecified, loopback, link-local),
 * and like the probe10 H5 fix also broadcast and every multicast range: programmed, such an
 * address captures the node's own traffic (localhost:80 DNATed or rejected). An IPv4-mapped IPv6
 * address is judged as the IPv4 address it carries, as Go's net.IP does.
 */
export function specialIpKind(
  ip: string,
): 'unspecified' | 'loopback' | 'link-local' | 'multicast' | 'broadcast' | undefined {
  let b = ipBytes(ip);
  if (b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)
    b = b.subarray(12);
  const zero = b.every((x) => x === 0);
  if (b.length === 4) {
    if (zero) return 'unspecified';
    if (b[0] === 127) return 'loopback';
    if (b[0] === 169 && b[1] === 254) return 'link-local';
    if (b.every((x) => x === 255)) return 'broadcast';
    if (b[0]! >= 224 && b[0]! <= 239) return 'multicast';
    return undefined;
  }
  if (zero) return 'unspecified';
  if (b.subarray(0, 15).every((x) => x === 0) && b[15] === 1) return 'loopback';
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local';
  if (b[0] === 0xff) return 'multicast';
  return undefined;
}
