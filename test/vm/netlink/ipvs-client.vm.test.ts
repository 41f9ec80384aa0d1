// IpvsClient against a real IPVS kernel (VM only: the host kernel has no IPVS).
// What the client writes must show up in `ipvsadm -Sn`, and what ipvsadm writes must come
// back from the client. Run: bash scripts/test-vm.sh test/vm/netlink
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { TestNetns } from '../../libs/netlink/support/netns.ts';

const SCENARIOS = fileURLToPath(new URL('./ipvs-scenarios.ts', import.meta.url));
const LINK_SCENARIOS = fileURLToPath(new URL('../../libs/netlink/support/link-scenarios.ts', import.meta.url));
const sorted = (xs: string[] | string) =>
  (Array.isArray(xs) ? xs : xs.split('\n'))
    .map((l) => l.trim())
    .filter(Boolean)
    .sort();

beforeAll(() => {
  if (process.env.SWITCHBOARD_VM !== '1') throw new Error('VM-only test: run it with scripts/test-vm.sh');
});

let ns: TestNetns | undefined;
afterEach(async () => {
  await ns?.destroy();
  ns = undefined;
});

/**
 * Known defect, root cause not found yet: the `netlink` package's native code occasionally dies
 * with SIGSEGV in these scenario children under TCG (seen in about 1 of 3 runs of this file, in
 * different scenarios, after our socket close was already moved out of native callbacks; see
 * docs/applier-ipvs.md, "Known issues"). A scenario whose child died of a signal is retried ONCE
 * in a fresh netns, and the crash is printed; a second crash, or any wrong result, fails the test.
 */
async function inFreshNetns<T>(make: () => Promise<TestNetns>, fn: (n: TestNetns) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const n = await make();
    ns = n;
    try {
      return await fn(n);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (attempt >= 2 || !/signal SIG(SEGV|ABRT|BUS)/.test(msg)) throw e;
      console.warn(`NATIVE CRASH in a netlink scenario child, retrying once in a fresh netns: ${msg.slice(0, 400)}`);
      await n.destroy();
      ns = undefined;
    }
  }
}

/** A netns where the real-server networks are routable (IPVS refuses unroutable dests). */
async function ipvsNetns(): Promise<TestNetns> {
  const n = await TestNetns.create('ipvs');
  await n.exec('ip', 'link', 'add', 'rs0', 'type', 'veth', 'peer', 'name', 'rs1');
  await n.exec('ip', 'link', 'set', 'rs0', 'up');
  await n.exec('ip', 'link', 'set', 'rs1', 'up');
  await n.exec('ip', 'addr', 'add', '10.50.0.1/16', 'dev', 'rs0');
  await n.exec('ip', '-6', 'addr', 'add', 'fd00:50::1/64', 'dev', 'rs0', 'nodad');
  return n;
}

const REFERENCE_SAVE = [
  '-A -t 192.0.2.10:31000 -s mh -b mh-fallback,mh-port',
  '-a -t 192.0.2.10:31000 -r 10.50.1.2:9000 -m -w 1',
  '-A -t 10.100.0.1:80 -s rr',
  '-a -t 10.100.0.1:80 -r 10.50.1.2:9000 -m -w 1',
  '-a -t 10.100.0.1:80 -r 10.50.2.2:9000 -m -w 0',
  '-A -u 10.100.0.1:53 -s rr -p 10800',
  '-a -u 10.100.0.1:53 -r 10.50.1.2:53 -m -w 1',
  '-A --sctp-service 10.100.0.1:7000 -s rr',
  '-A -t [fd00:100::1]:80 -s rr',
  '-a -t [fd00:100::1]:80 -r [fd00:50::2]:9000 -m -w 1',
];

describe('IpvsClient in the VM', () => {
  test('client writes → ipvsadm -Sn shows exactly the reference rules; info and timeouts', async () => {
    await inFreshNetns(
      () => ipvsNetns(),
      async (ns) => {
        const r = await ns.run<Record<string, any>>(SCENARIOS, 'programReference');
        expect(sorted(await ns.exec('ipvsadm', '-Sn'))).toEqual(sorted(REFERENCE_SAVE));
        expect(sorted(r.lines)).toEqual(sorted(REFERENCE_SAVE));
        expect(r.info.version).toMatch(/^\d+\.\d+\.\d+$/);
        expect(await ns.exec('ipvsadm', '-Ln')).toContain(
          `IP Virtual Server version ${r.info.version} (size=${r.info.connTableSize})`,
        );
        expect(r.after).toEqual({ tcp: 901, tcpFin: r.before.tcpFin, udp: 301 });
        expect(await ns.exec('ipvsadm', '-L', '--timeout')).toContain(
          `Timeout (tcp tcpfin udp): 901 ${r.before.tcpFin} 301`,
        );
        expect(r.one).toMatchObject({
          protocol: 'UDP',
          address: '10.100.0.1',
          port: 53,
          scheduler: 'rr',
          timeout: 10800,
          netmask: 0xffffffff,
        });
        expect(r.one.flags).toEqual(expect.arrayContaining(['persistent', 'hashed']));
        expect(r.none).toBeNull();
        const v6 = r.services.find((s: any) => s.address === 'fd00:100::1');
        expect(v6).toMatchObject({ protocol: 'TCP', port: 80, netmask: 128 });
      },
    );
  });

  test('ipvsadm writes → the client lists the same rules; client deletes → ipvsadm sees it', async () => {
    await inFreshNetns(
      () => ipvsNetns(),
      async (ns) => {
        await ns.exec('sh', '-c', `printf '%s\\n' ${REFERENCE_SAVE.map((l) => `'${l}'`).join(' ')} | ipvsadm -R`);
        const r = await ns.run<{ lines: string[]; dests: any[][] }>(SCENARIOS, 'listAsIpvsadm');
        expect(sorted(r.lines)).toEqual(sorted(REFERENCE_SAVE));
        expect(r.dests.flat()[0]).toMatchObject({ activeConns: 0, inactiveConns: 0, persistConns: 0, forward: 'masq' });
        const after = await ns.run<string[]>(SCENARIOS, 'deleteSome');
        const expected = REFERENCE_SAVE.filter((l) => !l.includes('10.50.2.2') && !l.includes('7000'));
        expect(sorted(after)).toEqual(sorted(expected));
        expect(sorted(await ns.exec('ipvsadm', '-Sn'))).toEqual(sorted(expected));
      },
    );
  });

  test('kernel refusals come back as named, readable errors; in a datagram of requests sharing one ack, a refused one fails alone; a write contradicting what the kernel holds (add of one it has, edit or delete of one it lacks) is refused by name', async () => {
    await inFreshNetns(
      () => ipvsNetns(),
      async (ns) => {
        // One child for both (each child costs tens of seconds under TCG).
        const { errors: r, coalesced } = await ns.run<{
          errors: Record<string, string>;
          coalesced: Record<string, any>;
        }>(SCENARIOS, 'refusals');
        expect(coalesced.datagrams).toBe(1);
        expect(coalesced.outcomes.map((o: string, i: number) => (i === 4 || i === 11 ? o.split(':')[0] : o))).toEqual([
          ...Array(4).fill('ok'),
          'EEXIST',
          ...Array(6).fill('ok'),
          'ESRCH',
        ]);
        const applied = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10].map((i) => `10.50.4.${i + 1}:80`).sort();
        expect(coalesced.dests).toEqual(applied);
        expect(coalesced.afterRun).toEqual([...applied, '10.50.5.1:80'].sort());
        expect(coalesced.refused).toMatch(/^other: add real server 10\.50\.5\.1:80 .*destination already exists/);
        expect(coalesced.refusedMissing).toMatch(/^other: delete real server 10\.50\.5\.2:80 .*no such destination/);
        expect(coalesced.refusedEdit).toMatch(/^other: edit real server 10\.50\.5\.2:80 .*no such destination/);
        // A refused set element is named (op and element), what its message applied before it
        // stays, the rest of its message was not tried, the next message ran.
        expect(coalesced.setRefused).toEqual({
          message:
            "add 10.1.0.5,tcp:80 in ipset SB-BATCH: add to ipset SB-BATCH: element 5 of 32 (10.1.0.5,tcp:80): element cannot be added to the set: it's already added (IPSET_ERR_EXIST)",
          applied: 12,
        });
        const members = sorted(await ns.exec('ipset', 'save', 'SB-BATCH'))
          .filter((l) => l.startsWith('add '))
          .map((l) => Number(/10\.1\.0\.(\d+),/.exec(l)![1]))
          .sort((a, b) => a - b);
        expect(members).toEqual([1, 2, 3, 4, 5, 33, 34, 35, 36, 37, 38, 39, 40]);
        await ns.exec('ipset', 'destroy', 'SB-BATCH');
        expect(r.duplicateService).toMatch(
          /^EEXIST: add service TCP 10\.100\.0\.50:80: virtual service already exists/,
        );
        expect(r.deleteMissingService).toMatch(/^ESRCH: delete service TCP 10\.100\.0\.51:80: no such virtual service/);
        expect(r.destOnMissingService).toMatch(/^ESRCH: /);
        expect(r.duplicateDest).toMatch(
          /^EEXIST: add destination 10\.50\.1\.2:80 to TCP 10\.100\.0\.50:80: destination already exists/,
        );
        expect(r.deleteMissingDest).toMatch(/^ENOENT: .*no such destination/);
        expect(r.unknownScheduler).toMatch(/^ENOENT: add service TCP 10\.100\.0\.52:80: no such scheduler/);
        expect(r.badPort).toMatch(/^other: invalid service port 70000/);
        expect(r.badAddress).toMatch(/^other: invalid IPVS service address "10\.100\.0\.300"/);
        expect(sorted(await ns.exec('ipvsadm', '-Sn')).filter((l) => l.includes('10.100.0.50'))).toEqual([
          '-A -t 10.100.0.50:80 -s rr',
          '-a -t 10.100.0.50:80 -r 10.50.1.2:80 -m -w 1',
        ]);
      },
    );
  });

  test("1000 services × 2 destinations issued at once: window holds, dumps are complete; 1000 refusals at the applier's window all come back", async () => {
    await inFreshNetns(
      () => ipvsNetns(),
      async (ns) => {
        const r = await ns.run<Record<string, number>>(SCENARIOS, 'bulk', [1000, 2, 64]);
        console.log('ipvs bulk (VM):', JSON.stringify(r));
        expect(r.listedServices).toBe(1000);
        expect(r.listedDests).toBe(2000);
        expect(r.refusedEexist).toBe(1000);
        expect(r.maxInFlight).toBeLessThanOrEqual(64);
        expect(r.maxInFlight).toBeGreaterThan(1);
        const save = (await ns.exec('ipvsadm', '-Sn')).split('\n').filter(Boolean);
        expect(save.filter((l) => l.startsWith('-A '))).toHaveLength(1000);
        expect(save.filter((l) => l.startsWith('-a '))).toHaveLength(2000);
      },
    );
  });

  test("a full read takes the destinations from the kernel's text listing: it parses to what the netlink dumps say, a service it lacks comes from a dump, an unparsable listing falls back to dumps", async () => {
    await inFreshNetns(
      () => ipvsNetns(),
      async (ns) => {
        const extra = [
          '-A -u 10.100.0.2:53 -s rr -o -p 60',
          '-a -u 10.100.0.2:53 -r 10.50.3.2:53 -m -w 2',
          '-A -f 7 -s rr',
          '-a -f 7 -r 10.50.3.3:0 -m -w 1',
        ];
        await ns.exec(
          'sh',
          '-c',
          `printf '%s\\n' ${[...REFERENCE_SAVE, ...extra].map((l) => `'${l}'`).join(' ')} | ipvsadm -R`,
        );
        const r = await ns.run<Record<string, any>>(SCENARIOS, 'listingVsDumps');
        const byService = (xs: any[]) => [...xs].sort((a, b) => (a.service < b.service ? -1 : 1));
        expect(byService(r.listed)).toEqual(byService(r.dumped));
        expect(r.listed).toHaveLength(7);
        expect(r.listed.find((s: any) => s.service === 'TCP/10.100.0.1:80').dests).toEqual([
          '10.50.1.2:9000 masq 1 0/0',
          '10.50.2.2:9000 masq 0 0/0',
        ]);
        expect(r.listed.find((s: any) => s.service === 'TCP/[fd00:100::1]:80').dests).toEqual([
          '[fd00:50::2]:9000 masq 1 0/0',
        ]);
        expect(r.listed.find((s: any) => s.service === 'FWM/7').dests).toEqual(['10.50.3.3:0 masq 1 0/0']);
        // NetlinkKernel: the listing and the dumps give the same services (fwmark ones left out).
        expect(r.withListing).toHaveLength(6);
        expect(r.withListing).toEqual(r.withDumps);
        expect(r.garbage).toEqual(r.withDumps);
        // The doctored listing is what the read used (weight 7), and the service it lacks came
        // from a dump.
        const tcp80 = r.doctored.find((v: any) => v.protocol === 'TCP' && v.address === '10.100.0.1' && v.port === 80);
        expect(tcp80.realServers.map((d: any) => `${d.address}:${d.port}/${d.weight}`)).toEqual([
          '10.50.1.2:9000/1',
          '10.50.2.2:9000/7',
        ]);
        const v6 = r.doctored.find((v: any) => v.address === 'fd00:100::1');
        expect(v6).toEqual(r.withDumps.find((v: any) => v.address === 'fd00:100::1'));
        expect(v6.realServers).toHaveLength(1);
        expect(r.givingWay).toEqual({ outcome: 'AbortError', after: 6 });
      },
    );
  });

  test('dummy kube-ipvs0: ensureDummy creates it up; addresses on it', async () => {
    await inFreshNetns(
      () => TestNetns.create('dummy'),
      async (ns) => {
        expect(await ns.run<string>(LINK_SCENARIOS, 'ensureDummyOutcome')).toBe('ok');
        expect(await ns.exec('ip', '-d', '-o', 'link', 'show', 'kube-ipvs0')).toMatch(/dummy/);
        // Second call is a no-op on the existing device.
        expect(await ns.run<string>(LINK_SCENARIOS, 'ensureDummyOutcome')).toBe('ok');
        const r = await ns.run<Record<string, any>>(LINK_SCENARIOS, 'addressesOn', ['kube-ipvs0']);
        expect(r.got).toMatchObject({ name: 'kube-ipvs0', kind: 'dummy' });
        expect(await ns.exec('ip', '-o', 'addr', 'show', 'dev', 'kube-ipvs0')).toMatch(/inet 10\.96\.0\.10\/32/);
      },
    );
  });
});
