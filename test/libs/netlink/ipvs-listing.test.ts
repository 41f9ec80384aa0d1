// parseIpvsListing against text written with the kernel's own printf formats (ip_vs_ctl.c,
// ip_vs_info_seq_show); the VM test (test/vm/netlink/ipvs-client.vm.test.ts) checks it against
// the real /proc/net/ip_vs and the netlink dumps.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { bytesToIp, ipToBytes } from '../../../libs/netlink/ip-address.ts';
import { parseIpvsListing } from '../../../libs/netlink/ipvs-listing.ts';

const HEADER =
  'IP Virtual Server version 1.2.1 (size=4096)\n' +
  'Prot LocalAddress:Port Scheduler Flags\n' +
  '  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n';

const hex = (n: number, digits: number) => n.toString(16).toUpperCase().padStart(digits, '0');
const padEnd = (s: string | number, n: number) => String(s).padEnd(n);
/** %pI6: eight 4-digit lowercase groups. */
const pI6 = (a: string) => {
  const b = ipToBytes(a);
  return Array.from({ length: 8 }, (_, i) =>
    b
      .readUInt16BE(i * 2)
      .toString(16)
      .padStart(4, '0'),
  ).join(':');
};
const v4hex = (a: string) => hex(ipToBytes(a).readUInt32BE(0), 8);
const addr = (a: string) => (a.includes(':') ? `[${pI6(a)}]` : v4hex(a));

interface Dest {
  address: string;
  port: number;
  fwd: 'Masq' | 'Local' | 'Tunnel' | 'Route';
  weight: number;
  active: number;
  inactive: number;
}
interface Svc {
  proto: 'TCP' | 'UDP' | 'SCTP';
  address: string;
  port: number;
  sched: string;
  ops: boolean;
  persistent?: number;
  dests: Dest[];
}

/** The kernel's lines for one service (seq_printf formats of ip_vs_info_seq_show). */
function kernelLines(s: Svc): string {
  let out = s.address.includes(':')
    ? `${s.proto}  [${pI6(s.address)}]:${hex(s.port, 4)} ${s.sched} `
    : `${s.proto}  ${v4hex(s.address)}:${hex(s.port, 4)} ${s.sched} ${s.ops ? 'ops ' : ''}`;
  out += s.persistent !== undefined ? `persistent ${s.persistent} FFFFFFFF\n` : '\n';
  for (const d of s.dests)
    out += `  -> ${addr(d.address)}:${hex(d.port, 4)}      ${padEnd(d.fwd, 7)} ${padEnd(d.weight, 6)} ${padEnd(d.active, 10)} ${padEnd(d.inactive, 10)}\n`;
  return out;
}

describe('parseIpvsListing', () => {
  test('services with their destinations; IPv6 in canonical text; fwmark and unknown protocols kept apart', () => {
    const text =
      HEADER +
      kernelLines({
        proto: 'TCP',
        address: '10.96.0.1',
        port: 80,
        sched: 'rr',
        ops: false,
        dests: [
          { address: '10.128.0.5', port: 8080, fwd: 'Masq', weight: 1, active: 3, inactive: 12 },
          { address: '10.128.0.6', port: 8080, fwd: 'Route', weight: 0, active: 0, inactive: 0 },
        ],
      }) +
      kernelLines({
        proto: 'UDP',
        address: '10.96.0.10',
        port: 53,
        sched: 'sh',
        ops: true,
        persistent: 10800,
        dests: [],
      }) +
      kernelLines({
        proto: 'TCP',
        address: 'fd00:100::1',
        port: 443,
        sched: 'wrr',
        ops: false,
        dests: [{ address: 'fd00:50::2', port: 9000, fwd: 'Tunnel', weight: 65535, active: 0, inactive: 1 }],
      }) +
      'FWM  00000007 rr \n' +
      '  -> 0A320303:0000      Local   1      0          0         \n' +
      'AH  0A600002:0000 rr \n';
    const parsed = parseIpvsListing(text);
    expect(parsed).toEqual([
      {
        protocol: 'TCP',
        address: '10.96.0.1',
        port: 80,
        scheduler: 'rr',
        destinations: [
          { address: '10.128.0.5', port: 8080, forward: 'masq', weight: 1, activeConns: 3, inactiveConns: 12 },
          { address: '10.128.0.6', port: 8080, forward: 'route', weight: 0, activeConns: 0, inactiveConns: 0 },
        ],
      },
      { protocol: 'UDP', address: '10.96.0.10', port: 53, scheduler: 'sh', destinations: [] },
      {
        protocol: 'TCP',
        address: 'fd00:100::1',
        port: 443,
        scheduler: 'wrr',
        destinations: [
          { address: 'fd00:50::2', port: 9000, forward: 'tunnel', weight: 65535, activeConns: 0, inactiveConns: 1 },
        ],
      },
      {
        protocol: undefined,
        fwmark: 7,
        scheduler: 'rr',
        destinations: [
          { address: '10.50.3.3', port: 0, forward: 'local', weight: 1, activeConns: 0, inactiveConns: 0 },
        ],
      },
      { protocol: undefined, address: '10.96.0.2', port: 0, scheduler: 'rr', destinations: [] },
    ]);
    expect(parseIpvsListing(HEADER)).toEqual([]);
  });

  test('any line it does not understand is refused, not guessed at', () => {
    const svc = 'TCP  0A600001:0050 rr \n';
    const dest = (s: string) => `${HEADER}${svc}  -> ${s}\n`;
    expect(() => parseIpvsListing('IP Virtual Server version 1.2.1 (size=4096)\n')).toThrow(/header/);
    expect(() => parseIpvsListing(`garbage\n${HEADER}`)).toThrow(/header/);
    expect(() => parseIpvsListing(`${HEADER}  -> 0A800001:1F40      Masq    1      0          0\n`)).toThrow(
      /before any service/,
    );
    expect(() => parseIpvsListing(dest('0A800001:1F40      Bogus   1      0          0'))).toThrow(/forwarding/);
    expect(() => parseIpvsListing(dest('0A80001:1F40      Masq    1      0          0'))).toThrow(/hex|expected/);
    expect(() => parseIpvsListing(dest('0A800001:1F40      Masq    x      0          0'))).toThrow(/number/);
    expect(() => parseIpvsListing(dest('0A800001:1F40      Masq    1      0'))).toThrow(/number/);
    expect(() => parseIpvsListing(dest('0A800001:1F40      Masq    1      0          0   7'))).toThrow(/end of line/);
    expect(() => parseIpvsListing(`${HEADER}TCP  0A600001-0050 rr\n`)).toThrow(/":" expected/);
  });

  test('parses back whatever the kernel formats would print', () => {
    const ip4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
    const ip6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => bytesToIp(b, 'inet6'));
    const dest = (ip: fc.Arbitrary<string>) =>
      fc.record({
        address: ip,
        port: fc.nat(65535),
        fwd: fc.constantFrom('Masq' as const, 'Local' as const, 'Tunnel' as const, 'Route' as const),
        weight: fc.nat(65535),
        active: fc.nat(2 ** 31 - 1),
        inactive: fc.nat(2 ** 31 - 1),
      });
    const svc = fc.oneof(ip4, ip6).chain((address) =>
      fc.record({
        proto: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const),
        address: fc.constant(address),
        port: fc.nat(65535),
        sched: fc.constantFrom('rr', 'wrr', 'sh', 'mh', 'lc'),
        ops: fc.boolean(),
        persistent: fc.option(fc.nat(100000), { nil: undefined }),
        dests: fc.array(dest(address.includes(':') ? ip6 : ip4), { maxLength: 5 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(svc, { maxLength: 8 }), (svcs) => {
        const parsed = parseIpvsListing(HEADER + svcs.map(kernelLines).join(''));
        expect(parsed).toEqual(
          svcs.map((s) => ({
            protocol: s.proto,
            address: s.address,
            port: s.port,
            scheduler: s.sched,
            destinations: s.dests.map((d) => ({
              address: d.address,
              port: d.port,
              forward: d.fwd.toLowerCase(),
              weight: d.weight,
              activeConns: d.active,
              inactiveConns: d.inactive,
            })),
          })),
        );
      }),
    );
  });
});
