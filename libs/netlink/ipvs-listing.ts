// The kernel's text listing of IPVS, /proc/net/ip_vs (per network namespace; ip_vs_ctl.c
// ip_vs_info_seq_show): every service with its destinations, their forwarding method, weight and
// connection counters, in one read.
//
// Why read it at all: generic netlink has no dump of every destination, only one dump per
// service, and a full read of 10k services was 10k dumps: about 30 s of the 85 s a 10k x 10 load
// from empty took in the VM, against about 1 s for reading this file (bench/applier/read-probe.ts).
// What it lacks (scheduler flags, the exact persistence netmask) comes from the one netlink
// service dump; this file is read for the destinations only.
//
// Lines (the header first):
//   IP Virtual Server version 1.2.1 (size=4096)
//   Prot LocalAddress:Port Scheduler Flags
//     -> RemoteAddress:Port Forward Weight ActiveConn InActConn
//   TCP  0A600001:0050 rr
//     -> 0A800001:1F40      Masq    1      0          0
//   UDP  0A600001:0035 rr persistent 10800 FFFFFFFF
//   TCP  [fd00:0100:0000:0000:0000:0000:0000:0001]:0050 rr
//     -> [fd00:0050:0000:0000:0000:0000:0000:0002]:2328      Masq    1      0          0
//   FWM  00000001 rr
// Addresses in hex (IPv4, host order of the value = dotted order) or bracketed full IPv6; ports hex.

import { bytesToIp, ipToBytes } from './ip-address.ts';
import type { IpvsForward, IpvsProtocol } from './ipvs-types.ts';

export interface IpvsListedDestination {
  readonly address: string;
  readonly port: number;
  readonly forward: IpvsForward;
  readonly weight: number;
  readonly activeConns: number;
  readonly inactiveConns: number;
}

export interface IpvsListedService {
  /** undefined for protocols this codec does not program (fwmark services, AH, ESP...). */
  readonly protocol: IpvsProtocol | undefined;
  /** For address services; fwmark services have neither. */
  readonly address?: string;
  readonly port?: number;
  readonly fwmark?: number;
  readonly scheduler: string;
  readonly destinations: IpvsListedDestination[];
}

/** The default path; /proc/net is the reading process's network namespace. */
export const IPVS_LISTING_PATH = '/proc/self/net/ip_vs';

const FORWARD: Readonly<Record<string, IpvsForward>> = {
  Masq: 'masq',
  Local: 'local',
  Tunnel: 'tunnel',
  Route: 'route',
  Bypass: 'bypass',
};
const PROTOCOLS: ReadonlySet<string> = new Set(['TCP', 'UDP', 'SCTP']);

/**
 * Parses the listing. Throws on any line it does not understand (a kernel that changed the
 * format): the caller falls back to netlink dumps rather than guess. Written as a scanner over
 * the text, without a string per line or per field: it runs over every destination of a full
 * read (100k at 10k x 10), and under emulation a split-based parse cost seconds.
 */
export function parseIpvsListing(text: string): IpvsListedService[] {
  const out: IpvsListedService[] = [];
  const c = new Cursor(text);
  for (const header of HEADER) {
    const line = c.line();
    if (!header.test(line)) throw new Error(`ip_vs listing: unexpected header line: ${line}`);
  }
  let current: IpvsListedService | undefined;
  while (!c.done()) {
    if (c.atNewline()) {
      c.pos++;
      continue;
    }
    if (c.startsWith('  -> ')) {
      if (!current) throw new Error(`ip_vs listing: destination before any service: ${c.line()}`);
      c.pos += 5;
      current.destinations.push(parseDestination(c));
    } else {
      current = parseService(c);
      out.push(current);
    }
  }
  return out;
}

const HEADER = [
  /^IP Virtual Server version /,
  /^Prot LocalAddress:Port Scheduler Flags$/,
  /^ {2}-> RemoteAddress:Port /,
];

class Cursor {
  pos = 0;
  constructor(readonly text: string) {}

  done(): boolean {
    return this.pos >= this.text.length;
  }

  atNewline(): boolean {
    return this.text.charCodeAt(this.pos) === 10;
  }

  startsWith(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  /** The rest of the current line (consumed with its newline); for headers and errors. */
  line(): string {
    let end = this.text.indexOf('\n', this.pos);
    if (end < 0) end = this.text.length;
    const s = this.text.slice(this.pos, end);
    this.pos = end + 1;
    return s;
  }

  /** Skips spaces (not the newline). */
  spaces(): void {
    while (this.text.charCodeAt(this.pos) === 32) this.pos++;
  }

  /** The next space-separated word of the line ('' at its end). */
  word(): string {
    this.spaces();
    const s = this.pos;
    for (let ch = this.text.charCodeAt(this.pos); ch !== 32 && ch !== 10 && this.pos < this.text.length; )
      ch = this.text.charCodeAt(++this.pos);
    return this.text.slice(s, this.pos);
  }

  /** Exactly `digits` hex digits. */
  hex(digits: number): number {
    let n = 0;
    for (let i = 0; i < digits; i++) {
      const ch = this.text.charCodeAt(this.pos++);
      const d = ch >= 48 && ch <= 57 ? ch - 48 : ch >= 65 && ch <= 70 ? ch - 55 : ch >= 97 && ch <= 102 ? ch - 87 : -1;
      if (d < 0) this.fail('bad hex digit');
      n = n * 16 + d;
    }
    return n;
  }

  /** A decimal integer after optional spaces. */
  decimal(): number {
    this.spaces();
    const neg = this.text.charCodeAt(this.pos) === 45;
    if (neg) this.pos++;
    const s = this.pos;
    let n = 0;
    for (let d = this.text.charCodeAt(this.pos) - 48; d >= 0 && d <= 9; d = this.text.charCodeAt(++this.pos) - 48)
      n = n * 10 + d;
    if (this.pos === s) this.fail('number expected');
    return neg ? -n : n;
  }

  expect(ch: string): void {
    if (this.text[this.pos] !== ch) this.fail(`"${ch}" expected`);
    this.pos++;
  }

  /** Consumes trailing spaces and the newline; anything else is an error. */
  endOfLine(): void {
    this.spaces();
    if (this.done()) return;
    if (!this.atNewline()) this.fail('end of line expected');
    this.pos++;
  }

  fail(why: string): never {
    const from = this.text.lastIndexOf('\n', this.pos - 1) + 1;
    let to = this.text.indexOf('\n', this.pos);
    if (to < 0) to = this.text.length;
    throw new Error(`ip_vs listing: ${why} at column ${this.pos - from + 1} of: ${this.text.slice(from, to)}`);
  }
}

function parseService(c: Cursor): IpvsListedService {
  const proto = c.word();
  c.spaces();
  if (proto === 'FWM') {
    const fwmark = c.hex(8);
    const scheduler = c.word();
    c.line(); // flags
    return { protocol: undefined, fwmark, scheduler, destinations: [] };
  }
  if (proto === '') c.fail('protocol expected');
  const [address, port] = addressPort(c);
  const scheduler = c.word();
  if (scheduler === '') c.fail('scheduler expected');
  c.line(); // flags: "ops", "persistent <timeout> <netmask>"; the netlink service dump has them exactly
  return {
    protocol: PROTOCOLS.has(proto) ? (proto as IpvsProtocol) : undefined,
    address,
    port,
    scheduler,
    destinations: [],
  };
}

function parseDestination(c: Cursor): IpvsListedDestination {
  const [address, port] = addressPort(c);
  const forward = FORWARD[c.word()];
  if (!forward) c.fail('unknown forwarding method');
  const weight = c.decimal();
  const activeConns = c.decimal();
  const inactiveConns = c.decimal();
  c.endOfLine();
  return { address, port, forward, weight, activeConns, inactiveConns };
}

/** "0A600001:0050" or "[fd00:0100:...:0001]:0050" → canonical address text and port. */
function addressPort(c: Cursor): [string, number] {
  let address: string;
  if (c.startsWith('[')) {
    const end = c.text.indexOf(']', c.pos);
    if (end < 0) c.fail('"]" expected');
    address = bytesToIp(ipToBytes(c.text.slice(c.pos + 1, end)), 'inet6');
    c.pos = end + 1;
  } else {
    const n = c.hex(8);
    address = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  c.expect(':');
  return [address, c.hex(4)];
}
