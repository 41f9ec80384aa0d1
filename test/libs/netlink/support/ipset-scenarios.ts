// Kernel scenarios for ipset-client.test.ts. Each runs inside a test netns (via
// TestNetns.run) and returns plain data for the test to check.
import { openIpset } from '../../../../libs/netlink/ipset-client.ts';
import { NetlinkError } from '../../../../libs/netlink/netlink-error.ts';
import { entryToSaveLine, headerToSaveLine } from '../../../../libs/netlink/ipset-entry-text.ts';
import type { IpsetCreate, IpsetEntry, IpsetSet, IpsetType } from '../../../../libs/netlink/ipset-types.ts';

export const SETS: ReadonlyArray<{ create: IpsetCreate; entries: IpsetEntry[] }> = [
  {
    create: { name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port' },
    entries: [
      { ip: '10.100.0.1', proto: 'tcp', port: 80 },
      { ip: '10.100.0.1', proto: 'udp', port: 53 },
      { ip: '10.100.0.2', proto: 'sctp', port: 7000 },
    ],
  },
  {
    create: { name: 'KUBE-6-CLUSTER-IP', type: 'hash:ip,port', family: 'inet6', hashSize: 2048, maxElem: 1000 },
    entries: [{ ip: 'fd00:100::1', proto: 'tcp', port: 80 }],
  },
  {
    create: { name: 'KUBE-LOOP-BACK', type: 'hash:ip,port,ip' },
    entries: [{ ip: '10.50.1.2', proto: 'tcp', port: 9000, ip2: '10.50.1.2' }],
  },
  {
    create: { name: 'KUBE-LB-SRC', type: 'hash:ip,port,net', comment: true },
    entries: [
      { ip: '1.2.3.4', proto: 'tcp', port: 80, ip2: '10.0.0.0', cidr2: 8, comment: 'source ranges' },
      { ip: '1.2.3.4', proto: 'tcp', port: 80, ip2: '192.168.1.1', cidr2: 32 },
    ],
  },
  {
    create: { name: 'KUBE-LB-SRC6', type: 'hash:ip,port,net', family: 'inet6' },
    entries: [{ ip: 'fd00::1', proto: 'udp', port: 53, ip2: 'fd00:1::', cidr2: 64 }],
  },
  { create: { name: 'KUBE-EXTERNAL-IP', type: 'hash:ip' }, entries: [{ ip: '192.0.2.10' }, { ip: '192.0.2.11' }] },
  {
    create: { name: 'KUBE-NET', type: 'hash:net' },
    entries: [
      { ip: '10.0.0.0', cidr: 8 },
      { ip: '10.1.2.3', cidr: 32 },
    ],
  },
  { create: { name: 'KUBE-NET6', type: 'hash:net', family: 'inet6' }, entries: [{ ip: 'fd00::', cidr: 48 }] },
  {
    create: { name: 'KUBE-NODE-PORT-TCP', type: 'bitmap:port', range: { from: 0, to: 65535 } },
    entries: [{ port: 31000 }, { port: 30001 }],
  },
  {
    create: { name: 'KUBE-NODE-PORT-SMALL', type: 'bitmap:port', range: { from: 30000, to: 32767 }, comment: true },
    entries: [{ port: 30500, comment: 'x y' }],
  },
];

/** Creates every set in SETS with its entries; returns the client's view as save lines + raw sets. */
export async function createAll(): Promise<{ saveLines: string[]; sets: IpsetSet[] }> {
  const c = await openIpset();
  try {
    for (const s of SETS) {
      await c.create(s.create);
      await Promise.all(s.entries.map((e) => c.add(s.create.name, e)));
    }
    const sets = await c.list();
    return { saveLines: toSaveLines(sets), sets };
  } finally {
    c.close();
  }
}

export function toSaveLines(sets: readonly IpsetSet[]): string[] {
  return sets.flatMap((s) => [
    headerToSaveLine(s.header),
    ...s.entries.map((e) => entryToSaveLine(s.header.name, s.header.type as IpsetType, e)),
  ]);
}

/** Lists whatever is in the netns (e.g. what `ipset restore` put there). */
export async function listAll(): Promise<{ saveLines: string[]; sets: IpsetSet[] }> {
  const c = await openIpset();
  try {
    const sets = await c.list();
    return { saveLines: toSaveLines(sets), sets };
  } finally {
    c.close();
  }
}

async function outcome(
  p: Promise<unknown>,
): Promise<{ ok: true; value: unknown } | { ok: false; code: string; message: string }> {
  try {
    return { ok: true, value: (await p) ?? null };
  } catch (e) {
    return {
      ok: false,
      code: e instanceof NetlinkError ? e.code : 'NOT_A_NETLINK_ERROR',
      message: (e as Error).message,
    };
  }
}

/** Error paths; returns the outcome of each labelled step. */
export async function errorCases(): Promise<Record<string, unknown>> {
  const c = await openIpset();
  try {
    await c.create({ name: 'ips', type: 'hash:ip,port' });
    await c.create({ name: 'ports', type: 'bitmap:port', range: { from: 1000, to: 2000 } });
    await c.add('ips', { ip: '10.0.0.1', proto: 'tcp', port: 80 });
    const r: Record<string, unknown> = {};
    r.duplicateAdd = await outcome(c.add('ips', { ip: '10.0.0.1', proto: 'tcp', port: 80 }));
    r.duplicateAddExist = await outcome(c.add('ips', { ip: '10.0.0.1', proto: 'tcp', port: 80 }, { exist: true }));
    r.addToMissingSet = await outcome(c.add('nosuch', { ip: '10.0.0.1', proto: 'tcp', port: 80 }));
    r.wrongFamilyKnown = await outcome(c.add('ips', { ip: 'fd00::1', proto: 'tcp', port: 80 }));
    r.delAbsent = await outcome(c.del('ips', { ip: '10.0.0.9', proto: 'tcp', port: 80 }));
    r.delAbsentExist = await outcome(c.del('ips', { ip: '10.0.0.9', proto: 'tcp', port: 80 }, { exist: true }));
    r.portOutOfRange = await outcome(c.add('ports', { port: 5 }));
    r.missingProto = await outcome(c.add('ips', { ip: '10.0.0.2', port: 80 }));
    r.duplicateCreate = await outcome(c.create({ name: 'ips', type: 'hash:ip' }));
    r.swapTypeMismatch = await outcome(c.swap('ips', 'ports'));
    r.destroyMissing = await outcome(c.destroy('nosuch'));
    r.destroyMissingExist = await outcome(c.destroy('nosuch', { exist: true }));
    r.badName = await outcome(c.create({ name: 'x'.repeat(40), type: 'hash:ip' }));
    r.testPresent = await outcome(c.test('ips', { ip: '10.0.0.1', proto: 'tcp', port: 80 }));
    r.testAbsent = await outcome(c.test('ips', { ip: '10.0.0.1', proto: 'udp', port: 80 }));
    return r;
  } finally {
    c.close();
  }
}

/** The kernel's own wrong-family answer: a fresh client does not know the set's family. */
export async function wrongFamilyUnknownSet(): Promise<unknown> {
  const c = await openIpset();
  try {
    return await outcome(c.add('v4only', { ip: 'fd00::1' }));
  } finally {
    c.close();
  }
}

/** Builds KUBE-NEW, swaps it with KUBE-LIVE, destroys the old one, renames; returns set names/entries per step. */
export async function swapRenameDestroy(): Promise<Record<string, string[]>> {
  const c = await openIpset();
  const names = async () => (await c.list()).map((s) => `${s.header.name}:${s.entries.map((e) => e.ip).join('|')}`);
  try {
    await c.create({ name: 'KUBE-LIVE', type: 'hash:ip' });
    await c.add('KUBE-LIVE', { ip: '10.0.0.1' });
    await c.create({ name: 'KUBE-NEW', type: 'hash:ip' });
    await c.add('KUBE-NEW', { ip: '10.0.0.2' });
    const before = await names();
    await c.swap('KUBE-LIVE', 'KUBE-NEW');
    const swapped = await names();
    await c.destroy('KUBE-NEW');
    await c.rename('KUBE-LIVE', 'KUBE-RENAMED');
    await c.flush('KUBE-RENAMED');
    const after = await names();
    return { before, swapped, after };
  } finally {
    c.close();
  }
}

/** Pushes `count` adds through the window at once; returns stats and what the kernel holds. */
export async function windowStress(
  count: number,
  window: number,
): Promise<{
  maxInFlight: number;
  completed: number;
  datagrams: number;
  listed: number;
  recvBuffer: number;
}> {
  const c = await openIpset({ window });
  try {
    await c.create({ name: 'STRESS', type: 'hash:ip,port', maxElem: count * 2, hashSize: 4096 });
    const adds: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      adds.push(c.add('STRESS', { ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, proto: 'tcp', port: 80 }));
    }
    await Promise.all(adds);
    const [set] = await c.list('STRESS');
    const s = c.stats;
    return {
      maxInFlight: s.maxInFlight,
      completed: s.completed,
      datagrams: s.datagrams,
      listed: set?.entries.length ?? -1,
      recvBuffer: c.bufferSizes().recv,
    };
  } finally {
    c.close();
  }
}

/** Same, but every request fails (set missing): error acks echo the request, so they are bigger. */
export async function windowStressErrors(
  count: number,
  window: number,
): Promise<{ failed: number; codes: string[]; maxInFlight: number }> {
  const c = await openIpset({ window });
  try {
    const results = await Promise.allSettled(
      Array.from({ length: count }, (_, i) => c.add('MISSING', { ip: `10.0.${(i >> 8) & 255}.${i & 255}` })),
    );
    const codes = new Set<string>();
    let failed = 0;
    for (const r of results) {
      if (r.status === 'rejected') {
        failed++;
        codes.add(r.reason instanceof NetlinkError ? r.reason.code : String(r.reason));
      }
    }
    return { failed, codes: [...codes], maxInFlight: c.stats.maxInFlight };
  } finally {
    c.close();
  }
}

/**
 * Multi-element requests (addBatch/delBatch): what a refused element does to its message, and
 * how the error names it. `saves` are `ipset save` lines of set B after each step.
 */
export async function batchCases(): Promise<Record<string, unknown>> {
  const c = await openIpset();
  const names = async () => ((await c.list('B'))[0]?.entries ?? []).map((e) => `${e.ip},${e.proto}:${e.port}`).sort();
  const el = (i: number) => ({ ip: `10.1.0.${i}`, proto: 'tcp' as const, port: 80 });
  const detail = async (p: Promise<unknown>) => {
    try {
      await p;
      return { ok: true };
    } catch (e) {
      return {
        ok: false,
        code: e instanceof NetlinkError ? e.code : 'NOT_A_NETLINK_ERROR',
        index: (e as { index?: number }).index ?? null,
        message: (e as Error).message,
      };
    }
  };
  try {
    await c.create({ name: 'B', type: 'hash:ip,port' });
    const r: Record<string, unknown> = {};
    // 40 elements in one request, then the same 5 again with a new one in the middle.
    r.addAll = await detail(
      c.addBatch(
        'B',
        Array.from({ length: 40 }, (_, i) => el(i + 1)),
      ),
    );
    r.afterAddAll = (await names()).length;
    r.duplicateInMiddle = await detail(c.addBatch('B', [el(100), el(101), el(3), el(102)]));
    r.afterDuplicate = await names();
    r.duplicateExist = await detail(c.addBatch('B', [el(3), el(103)], { exist: true }));
    r.delSome = await detail(c.delBatch('B', [el(1), el(2), el(99), el(4)]));
    r.afterDel = await names();
    r.missingSet = await detail(c.addBatch('NOSUCH', [el(1), el(2)]));
    r.wrongFamily = await detail(c.addBatch('B', [el(200), { ip: 'fd00::1', proto: 'tcp', port: 80 }]));
    return r;
  } finally {
    c.close();
  }
}

/**
 * A hash set's maxelem as the kernel holds it: one made with the default takes 65,536 entries
 * and refuses the next; one made with room takes more; a swap exchanges the sets under the names,
 * each keeping its own maxelem. Entries go in batches of 100, as the applier sends them.
 */
export async function setRoom(): Promise<Record<string, unknown>> {
  const c = await openIpset();
  const el = (i: number) => ({
    ip: `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
    proto: 'tcp' as const,
    port: 80,
  });
  const fill = async (name: string, from: number, to: number) => {
    for (let i = from; i < to; i += 100)
      await c.addBatch(
        name,
        Array.from({ length: Math.min(100, to - i) }, (_, k) => el(i + k)),
      );
  };
  const head = async (name: string) => {
    const [s] = await c.list(name);
    return { maxElem: s?.header.maxElem, entries: s?.entries.length };
  };
  try {
    await c.create({ name: 'DEFAULT-SIZE', type: 'hash:ip,port' });
    await fill('DEFAULT-SIZE', 0, 65_536);
    let refused: unknown = 'none';
    let taken = 65_536;
    for (; taken < 70_000; taken++) {
      try {
        await c.add('DEFAULT-SIZE', el(taken));
      } catch (e) {
        refused = e instanceof NetlinkError ? e.code : String(e);
        break;
      }
    }
    await c.create({ name: 'WITH-ROOM', type: 'hash:ip,port', maxElem: 262_144 });
    await fill('WITH-ROOM', 0, 70_000);
    const before = { defaultSize: await head('DEFAULT-SIZE'), withRoom: await head('WITH-ROOM') };
    await c.swap('DEFAULT-SIZE', 'WITH-ROOM');
    const swapped = { defaultSize: await head('DEFAULT-SIZE'), withRoom: await head('WITH-ROOM') };
    return { refused, taken, before, swapped };
  } finally {
    c.close();
  }
}
