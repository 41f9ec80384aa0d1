import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 'inet' | 'inet6';
export const AF_INET = 2;
export const AF_INET6 = 10;

export const familyOf = (address: string): IpFamily | undefined =>
  isIPv4(address) ? 'inet' : isIPv6(address) ? 'inet6' : undefined;

export const afNumber = (f: IpFamily): number => (f === 'inet' ? AF_INET : AF_INET6);

export function afName(af: number): IpFamily {
  if (af === AF_INET) return 'inet';
  if (af === AF_INET6) return 'inet6';
  throw new Error(`unsupported address family ${af}`);
}

/**
 * Writes dotted-quad IPv4 text as 4 network-order bytes at `at`, checking it as it goes (four
 * decimal octets ≤ 255, no leading zeros, nothing else, as node's isIPv4): false when the text
 * is not IPv4. No intermediate strings, arrays or Buffers: a 10k-service nftables load compiles
 * ~250k element addresses, and the split/map/Buffer.from this replaced was the largest function
 * of that compile in a CPU profile; ipToBytes uses it too (IPVS and ipset requests).
 */
export function writeIpv4(address: string, buf: Uint8Array, at: number): boolean {
  let octet = 0;
  let digits = 0;
  let parts = 0;
  for (let c = 0; c <= address.length; c++) {
    const ch = c === address.length ? 46 : address.charCodeAt(c);
    if (ch === 46 /* . */) {
      if (digits === 0 || parts === 4) return false;
      buf[at + parts++] = octet;
      octet = 0;
      digits = 0;
    } else if (ch >= 48 && ch <= 57) {
      if (digits > 0 && octet === 0) return false; // leading zero
      octet = octet * 10 + (ch - 48);
      if (++digits > 3 || octet > 255) return false;
    } else return false;
  }
  return parts === 4;
}

/** Address → network-order bytes (4 or 16). Throws a readable error on bad text. */
export function ipToBytes(address: string): Buffer {
  if (!address.includes(':')) {
    const out = Buffer.allocUnsafe(4);
    if (writeIpv4(address, out, 0)) return out;
    throw new Error(`invalid IP address "${address}"`);
  }
  if (!isIPv6(address)) throw new Error(`invalid IP address "${address}"`);
  // An embedded dotted quad becomes two hex groups, then one generic parse.
  const text = address.replace(
    /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
    (_m, a, b, c, d) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
  );
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  let groups: number[];
  if (text.includes('::')) {
    const [h, t] = text.split('::') as [string, string];
    const head = parse(h);
    const rest = parse(t);
    groups = [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  } else {
    groups = parse(text);
  }
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff)))
    throw new Error(`invalid IPv6 address "${address}"`);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(g, i * 2);
  });
  return out;
}

/** Network-order bytes → text. IPv6 in RFC 5952 form (longest zero run → "::"). */
export function bytesToIp(bytes: Uint8Array, family: IpFamily): string {
  if (family === 'inet') {
    if (bytes.length < 4) throw new Error(`IPv4 address needs 4 bytes, got ${bytes.length}`);
    return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  }
  if (bytes.length < 16) throw new Error(`IPv6 address needs 16 bytes, got ${bytes.length}`);
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((bytes[i * 2]! << 8) | bytes[i * 2 + 1]!);
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not compressed (RFC 5952 4.2.2)
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/**
 * Writes an address already known to be valid IPv4 or IPv6 text as network-order bytes at
 * `at` (4 or 16 bytes), IPv4 without building intermediate arrays: this runs for every
 * request of a bulk load.
 */
export function writeIpBytes(address: string, buf: Uint8Array, at: number): void {
  if (address.includes(':')) {
    buf.set(ipToBytes(address), at);
    return;
  }
  let octet = 0,
    i = at;
  for (let c = 0; c < address.length; c++) {
    const ch = address.charCodeAt(c);
    if (ch === 46 /* . */) {
      buf[i++] = octet;
      octet = 0;
    } else octet = octet * 10 + (ch - 48);
  }
  buf[i] = octet;
}

/** The 16-byte `union nf_inet_addr` IPVS uses: IPv4 in the first 4 bytes, rest zero. */
export function ipToUnion16(address: string): Buffer {
  const b = ipToBytes(address);
  const out = Buffer.alloc(16);
  out.set(b, 0);
  return out;
}
