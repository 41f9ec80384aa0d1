// In-VM scenarios for ipvs-client.vm.test.ts; each runs inside a test netns through
// TestNetns.run and returns plain data. Also: an ipvsadm -Sn formatter for comparisons.
import { openIpvs } from '../../../libs/netlink/index.ts';
import { NetlinkError } from '../../../libs/netlink/index.ts';
import type { IpvsDestination, IpvsService, IpvsServiceKey } from '../../../libs/netlink/index.ts';
import { KernelTransaction, NetlinkKernel, type KernelOp } from '../../../libs/dataplane/index.ts';

const PROTO_FLAG = { TCP: '-t', UDP: '-u', SCTP: '--sctp-service' } as const;
const FWD_FLAG = { masq: '-m', route: '-g', tunnel: '-i', local: '-m', bypass: '-m' } as const;

const hostPort = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

/** The lines `ipvsadm -Sn` prints for a service and its destinations. */
export function ipvsadmLines(svc: IpvsService, dests: readonly IpvsDestination[]): string[] {
  const id =
    svc.fwmark !== undefined ? `-f ${svc.fwmark}` : `${PROTO_FLAG[svc.protocol]} ${hostPort(svc.address, svc.port)}`;
  let line = `-A ${id} -s ${svc.scheduler}`;
  const sched = svc.scheduler === 'sh' || svc.scheduler === 'mh' ? svc.scheduler : 'flag';
  const f = [
    svc.flags.includes('sched-flag-1') ? (sched === 'flag' ? 'flag-1' : `${sched}-fallback`) : undefined,
    svc.flags.includes('sched-flag-2') ? (sched === 'flag' ? 'flag-2' : `${sched}-port`) : undefined,
  ].filter(Boolean);
  if (f.length) line += ` -b ${f.join(',')}`;
  if (svc.flags.includes('persistent')) line += ` -p ${svc.timeout}`;
  return [
    line,
    ...dests.map((d) => `-a ${id} -r ${hostPort(d.address, d.port)} ${FWD_FLAG[d.forward]} -w ${d.weight}`),
  ];
}

async function dumpAll(c: Awaited<ReturnType<typeof openIpvs>>): Promise<string[]> {
  const out: string[] = [];
  for (const s of await c.listServices()) out.push(...ipvsadmLines(s, await c.listDestinations(s)));
  return out;
}

const svc = (over: Partial<IpvsService> & IpvsServiceKey): IpvsService => ({
  scheduler: 'rr',
  flags: [],
  timeout: 0,
  netmask: over.address.includes(':') ? 128 : 0xffffffff,
  ...over,
});
const dest = (address: string, port: number, weight = 1): IpvsDestination => ({
  address,
  port,
  forward: 'masq',
  weight,
  upperThreshold: 0,
  lowerThreshold: 0,
});

export const REFERENCE: ReadonlyArray<{ svc: IpvsService; dests: IpvsDestination[] }> = [
  {
    svc: svc({
      protocol: 'TCP',
      address: '192.0.2.10',
      port: 31000,
      scheduler: 'mh',
      flags: ['sched-flag-1', 'sched-flag-2'],
    }),
    dests: [dest('10.50.1.2', 9000)],
  },
  {
    svc: svc({ protocol: 'TCP', address: '10.100.0.1', port: 80 }),
    dests: [dest('10.50.1.2', 9000), dest('10.50.2.2', 9000, 0)],
  },
  {
    svc: svc({ protocol: 'UDP', address: '10.100.0.1', port: 53, flags: ['persistent'], timeout: 10800 }),
    dests: [dest('10.50.1.2', 53)],
  },
  { svc: svc({ protocol: 'SCTP', address: '10.100.0.1', port: 7000 }), dests: [] },
  { svc: svc({ protocol: 'TCP', address: 'fd00:100::1', port: 80 }), dests: [dest('fd00:50::2', 9000)] },
];

/** Programs REFERENCE through the client; returns info, timeouts and the client's own listing. */
export async function programReference(): Promise<Record<string, unknown>> {
  const c = await openIpvs();
  try {
    const info = await c.info();
    const before = await c.getTimeouts();
    await c.setTimeouts({ tcp: 901, udp: 301 });
    const after = await c.getTimeouts();
    await Promise.all(REFERENCE.map((r) => c.addService(r.svc)));
    await Promise.all(REFERENCE.flatMap((r) => r.dests.map((d) => c.addDestination(r.svc, d))));
    // Edit: weight change of an existing destination and flags of a service.
    await c.editDestination(REFERENCE[1]!.svc, dest('10.50.2.2', 9000, 3));
    await c.editDestination(REFERENCE[1]!.svc, dest('10.50.2.2', 9000, 0));
    const one = await c.getService(REFERENCE[2]!.svc);
    const none = await c.getService({ protocol: 'TCP', address: '10.9.9.9', port: 1 });
    const services = await c.listServices();
    return {
      info,
      before,
      after,
      lines: await dumpAll(c),
      one,
      none: none ?? null,
      services,
      window: c.window,
      buffers: c.bufferSizes(),
    };
  } finally {
    c.close();
  }
}

/** Lists whatever is programmed (e.g. by ipvsadm -R) as ipvsadm -Sn lines, plus raw objects. */
export async function listAsIpvsadm(): Promise<{
  lines: string[];
  services: IpvsService[];
  dests: IpvsDestination[][];
}> {
  const c = await openIpvs();
  try {
    const services = await c.listServices();
    const dests = await Promise.all(services.map((s) => c.listDestinations(s)));
    return { lines: services.flatMap((s, i) => ipvsadmLines(s, dests[i]!)), services, dests };
  } finally {
    c.close();
  }
}

/** Deletes one dest and one service through the client. */
export async function deleteSome(): Promise<string[]> {
  const c = await openIpvs();
  try {
    await c.deleteDestination(REFERENCE[1]!.svc, { address: '10.50.2.2', port: 9000 });
    await c.deleteService(REFERENCE[3]!.svc);
    return await dumpAll(c);
  } finally {
    c.close();
  }
}

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof NetlinkError ? `${e.code}: ${e.message}` : `other: ${(e as Error).message}`;
  }
}

/** errorCases and coalescedWrites in one child. */
export async function refusals(): Promise<{ errors: Record<string, string>; coalesced: Record<string, unknown> }> {
  return { errors: await errorCases(), coalesced: await coalescedWrites() };
}

export async function errorCases(): Promise<Record<string, string>> {
  const c = await openIpvs();
  try {
    const s = svc({ protocol: 'TCP', address: '10.100.0.50', port: 80 });
    await c.addService(s);
    await c.addDestination(s, dest('10.50.1.2', 80));
    return {
      duplicateService: await outcome(c.addService(s)),
      deleteMissingService: await outcome(c.deleteService({ protocol: 'TCP', address: '10.100.0.51', port: 80 })),
      destOnMissingService: await outcome(
        c.addDestination({ protocol: 'UDP', address: '10.100.0.50', port: 80 }, dest('10.50.1.2', 80)),
      ),
      duplicateDest: await outcome(c.addDestination(s, dest('10.50.1.2', 80))),
      deleteMissingDest: await outcome(c.deleteDestination(s, { address: '10.50.1.3', port: 80 })),
      unknownScheduler: await outcome(
        c.addService(svc({ protocol: 'TCP', address: '10.100.0.52', port: 80, scheduler: 'nosuch' })),
      ),
      badPort: await outcome(c.addService(svc({ protocol: 'TCP', address: '10.100.0.53', port: 70000 }))),
      badAddress: await outcome(c.addService(svc({ protocol: 'TCP', address: '10.100.0.300', port: 80 }))),
    };
  } finally {
    c.close();
  }
}

/**
 * Issues `services` service adds and `dests` destination adds per service all at once
 * (thousands of requests) through a window; returns stats and the dump size.
 */
export async function bulk(services: number, destsPer: number, window: number): Promise<Record<string, number>> {
  const c = await openIpvs({ window });
  try {
    const t0 = performance.now();
    const svcs = Array.from({ length: services }, (_, i) =>
      svc({ protocol: 'TCP', address: `10.101.${(i >> 8) & 255}.${i & 255}`, port: 80 }),
    );
    await Promise.all(svcs.map((s) => c.addService(s)));
    await Promise.all(
      svcs.flatMap((s) =>
        Array.from({ length: destsPer }, (_, j) => c.addDestination(s, dest(`10.50.3.${j + 1}`, 8080))),
      ),
    );
    const t1 = performance.now();
    const listed = await c.listServices();
    let listedDests = 0;
    for (const s of listed) listedDests += (await c.listDestinations(s)).length;
    const t2 = performance.now();
    // The applier's settings (NetlinkKernel: 256 in flight, 128 per datagram, one ack each),
    // every request refused: each error echoes its request, and all of them must still arrive
    // (no receive-buffer overflow) with their own errno.
    const wide = await openIpvs({ window: 256, batch: 128, recvBufferSize: 8 << 20 });
    let refusedEexist = 0;
    try {
      const again = await Promise.allSettled(svcs.map((s) => wide.addDestination(s, dest('10.50.3.1', 8080))));
      for (const r of again)
        if (r.status === 'rejected' && r.reason instanceof NetlinkError && r.reason.code === 'EEXIST') refusedEexist++;
    } finally {
      wide.close();
    }
    return {
      refusedEexist,
      requests: services * (1 + destsPer),
      listedServices: listed.length,
      listedDests,
      maxInFlight: c.stats.maxInFlight,
      datagrams: c.stats.datagrams,
      writeMs: Math.round(t1 - t0),
      readMs: Math.round(t2 - t1),
    };
  } finally {
    c.close();
  }
}

/**
 * Requests issued in one tick go out in one datagram with one ack (coalesceAcks), and the
 * NetlinkKernel's read-back rides behind its writes. Against the real kernel: a refused message
 * in the middle fails alone (errno kept) and the ones around it are applied; the read-back sees
 * every write before it; a refused write fails the transaction.
 */
export async function coalescedWrites(): Promise<Record<string, unknown>> {
  const c = await openIpvs();
  const s = svc({ protocol: 'TCP', address: '10.100.0.60', port: 80 });
  const key = { protocol: 'TCP' as const, address: s.address, port: s.port };
  try {
    await c.addService(s);
    const sentBefore = c.stats.datagrams;
    const requests = Array.from({ length: 12 }, (_, i) =>
      i === 4
        ? c.addDestination(s, dest('10.50.4.1', 80)) // the same as request 0: EEXIST
        : i === 11
          ? c.addDestination({ protocol: 'UDP', address: s.address, port: 80 }, dest('10.50.4.99', 80)) // ESRCH
          : c.addDestination(s, dest(`10.50.4.${i + 1}`, 80)),
    );
    const outcomes = await Promise.all(requests.map(outcome));
    const datagrams = c.stats.datagrams - sentBefore;
    const dests = (await c.listDestinations(s)).map((d) => `${d.address}:${d.port}`).sort();

    const kernel = await NetlinkKernel.open();
    try {
      const rs = (address: string) => ({ address, port: 80, weight: 1 });
      const add = (address: string): KernelOp => ({ kind: 'real-server', verb: 'add', vs: key, rs: rs(address) });
      await kernel.run(new KernelTransaction().add(add('10.50.5.1')));
      const afterRun = (await c.listDestinations(s)).map((d) => `${d.address}:${d.port}`).sort();
      // What checks a change's writes (the dataplane reads no real server back): the kernel
      // refuses to add a destination it has and to edit or delete one it lacks, by name.
      const refused = await outcome(kernel.run(new KernelTransaction().add(add('10.50.5.1'))));
      const refusedMissing = await outcome(
        kernel.run(new KernelTransaction().add({ kind: 'real-server', verb: 'delete', vs: key, rs: rs('10.50.5.2') })),
      );
      const refusedEdit = await outcome(
        kernel.run(
          new KernelTransaction().add({
            kind: 'real-server',
            verb: 'edit',
            vs: key,
            rs: { ...rs('10.50.5.2'), weight: 3 },
          }),
        ),
      );
      // Set entries go 32 to a message: 40 adds are two messages; the 5th element is already in,
      // so the kernel stops the first message there (1-4 in, 6-32 not tried) and runs the second.
      const entry = (i: number): KernelOp => ({
        kind: 'ipset-entry',
        verb: 'add',
        set: 'SB-BATCH',
        type: 'hash:ip,port',
        entry: `10.1.0.${i},tcp:80`,
      });
      await kernel.run(
        new KernelTransaction()
          .add({ kind: 'ipset', verb: 'create', set: { name: 'SB-BATCH', type: 'hash:ip,port', family: 'inet' } })
          .add(entry(5)),
      );
      let setRefused: Record<string, unknown> = { ok: true };
      try {
        await kernel.run(new KernelTransaction().addAll(Array.from({ length: 40 }, (_, i) => entry(i + 1))));
      } catch (e) {
        setRefused = { message: (e as Error).message, applied: (e as { applied?: number }).applied };
      }
      return { outcomes, datagrams, dests, afterRun, refused, refusedMissing, refusedEdit, setRefused };
    } finally {
      await kernel.close();
    }
  } finally {
    c.close();
  }
}

/**
 * The kernel's text listing (/proc/self/net/ip_vs) against per-service netlink dumps, on what
 * the test programmed with ipvsadm (REFERENCE_SAVE plus an fwmark service and a persistent,
 * one-packet UDP service): the parsed listing, and NetlinkKernel.read() with the listing, with a
 * doctored copy of it (a weight changed, one service left out) and with an unparsable file.
 */
export async function listingVsDumps(): Promise<Record<string, unknown>> {
  const { readFileSync, writeFileSync } = await import('node:fs');
  const { parseIpvsListing, IPVS_LISTING_PATH } = await import('../../../libs/netlink/index.ts');
  const c = await openIpvs();
  try {
    const text = readFileSync(IPVS_LISTING_PATH, 'latin1');
    const listed = parseIpvsListing(text).map((s) => ({
      service: s.fwmark !== undefined ? `FWM/${s.fwmark}` : `${s.protocol ?? '?'}/${hostPort(s.address!, s.port!)}`,
      scheduler: s.scheduler,
      dests: s.destinations
        .map((d) => `${hostPort(d.address, d.port)} ${d.forward} ${d.weight} ${d.activeConns}/${d.inactiveConns}`)
        .sort(),
    }));
    const services = await c.listServices();
    const dumped = await Promise.all(
      services.map(async (s) => ({
        service: s.fwmark ? `FWM/${s.fwmark}` : `${s.protocol}/${hostPort(s.address, s.port)}`,
        scheduler: s.scheduler,
        dests: (await c.listDestinations(s))
          .map((d) => `${hostPort(d.address, d.port)} ${d.forward} ${d.weight} ${d.activeConns}/${d.inactiveConns}`)
          .sort(),
      })),
    );
    const opts = { ipsets: [], device: 'kube-ipvs0', sysctls: [], netfilterChains: {} };
    const read = async (ipvsListing: string | false) => {
      const k = await NetlinkKernel.open({ ipvsListing });
      try {
        return (await k.read(opts)).virtualServers
          .map((v) => ({ ...v, realServers: [...v.realServers].sort((a, b) => (a.address < b.address ? -1 : 1)) }))
          .sort((a, b) => (`${a.protocol}${a.address}${a.port}` < `${b.protocol}${b.address}${b.port}` ? -1 : 1));
      } finally {
        await k.close();
      }
    };
    // Doctored: the weight-0 destination of TCP 10.100.0.1:80 reads as weight 7, and the IPv6
    // service is left out (its destinations must then come from a dump).
    const lines = text.split('\n');
    const v6 = lines.findIndex((l) => l.startsWith('TCP  ['));
    const doctored = lines
      .filter((_, i) => i !== v6 && i !== v6 + 1)
      .map((l) => (l.startsWith('  -> 0A320202:2328') ? l.replace(/Masq {4}0 /, 'Masq    7 ') : l))
      .join('\n');
    writeFileSync('/tmp/ip_vs.doctored', doctored);
    // A read asked to give way (a resync yielding to an apply): it rejects, it does not fall back
    // to a dump per service; the same kernel then reads everything.
    const givingWay = async () => {
      const k = await NetlinkKernel.open({ ipvsListing: IPVS_LISTING_PATH });
      try {
        const fired = new AbortController();
        fired.abort();
        const outcome = await k.read(opts, fired.signal).then(
          () => 'read',
          (e: Error) => e.name,
        );
        return { outcome, after: (await k.read(opts)).virtualServers.length };
      } finally {
        await k.close();
      }
    };
    writeFileSync('/tmp/ip_vs.garbage', 'not a listing\n');
    return {
      listed,
      dumped,
      withListing: await read(IPVS_LISTING_PATH),
      withDumps: await read(false),
      doctored: await read('/tmp/ip_vs.doctored'),
      garbage: await read('/tmp/ip_vs.garbage'),
      givingWay: await givingWay(),
    };
  } finally {
    c.close();
  }
}
