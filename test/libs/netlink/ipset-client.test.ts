// IpsetClient against this host's kernel, inside a netns the test creates. The client's
// view (turned into `ipset save` text) must equal what the real ipset tool prints.
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { TestNetns } from './support/netns.ts';

const SCENARIOS = fileURLToPath(new URL('./support/ipset-scenarios.ts', import.meta.url));
const sortLines = (text: string | string[]) =>
  (Array.isArray(text) ? text : text.split('\n'))
    .map((l) => l.trim())
    .filter(Boolean)
    .sort();

let ns: TestNetns | undefined;
afterEach(async () => {
  await ns?.destroy();
  ns = undefined;
});

describe('IpsetClient on the host kernel (netns)', () => {
  test('creates every supported type; list equals `ipset save`', async () => {
    ns = await TestNetns.create('ipset');
    const r = await ns.run<{ saveLines: string[] }>(SCENARIOS, 'createAll');
    const save = await ns.exec('ipset', 'save');
    expect(sortLines(r.saveLines)).toEqual(sortLines(save));
    // Spot-check the formats the dataplane depends on.
    expect(save).toContain('add KUBE-CLUSTER-IP 10.100.0.1,tcp:80');
    expect(save).toContain('add KUBE-LB-SRC 1.2.3.4,tcp:80,10.0.0.0/8 comment "source ranges"');
    expect(save).toContain('add KUBE-NODE-PORT-TCP 31000');
    expect(save).toContain('create KUBE-6-CLUSTER-IP hash:ip,port family inet6 hashsize 2048 maxelem 1000');
  });

  test('reads back what the ipset tool restored', async () => {
    ns = await TestNetns.create('ipset');
    const input = [
      'create A hash:ip,port,ip family inet hashsize 1024 maxelem 65536',
      'add A 10.0.0.1,udp:53,10.0.0.1',
      'create B hash:net family inet6 hashsize 1024 maxelem 65536 comment',
      'add B fd00:5::/64 comment "hello"',
      'create C bitmap:port range 30000-32767',
      'add C 30080',
    ].join('\n');
    await ns.exec('sh', '-c', `printf '%s\\n' '${input.replace(/'/g, "'\\''")}' | ipset restore`);
    const r = await ns.run<{
      saveLines: string[];
      sets: Array<{ header: { name: string; type: string; family?: string }; entries: unknown[] }>;
    }>(SCENARIOS, 'listAll');
    expect(sortLines(r.saveLines)).toEqual(sortLines(await ns.exec('ipset', 'save')));
    expect(r.sets.find((s) => s.header.name === 'B')?.entries).toEqual([
      { ip: 'fd00:5::', cidr: 64, comment: 'hello' },
    ]);
    expect(r.sets.find((s) => s.header.name === 'C')?.header).toMatchObject({
      type: 'bitmap:port',
      range: { from: 30000, to: 32767 },
    });
  });

  test('error cases come back as named, readable errors', async () => {
    ns = await TestNetns.create('ipset');
    const r = await ns.run<Record<string, { ok: boolean; code?: string; message?: string; value?: unknown }>>(
      SCENARIOS,
      'errorCases',
    );
    expect(r.duplicateAdd).toMatchObject({ ok: false, code: 'IPSET_ERR_EXIST' });
    expect(r.duplicateAdd!.message).toMatch(/add to ipset ips: .*already added/);
    expect(r.duplicateAddExist).toMatchObject({ ok: true });
    expect(r.addToMissingSet).toMatchObject({ ok: false, code: 'ENOENT' });
    expect(r.addToMissingSet!.message).toMatch(/does not exist/);
    expect(r.wrongFamilyKnown).toMatchObject({ ok: false, code: 'EAFNOSUPPORT' });
    expect(r.wrongFamilyKnown!.message).toMatch(/fd00::1 is inet6 but set ips is family inet/);
    expect(r.delAbsent).toMatchObject({ ok: false, code: 'IPSET_ERR_EXIST' });
    expect(r.delAbsent!.message).toMatch(/not added/);
    expect(r.delAbsentExist).toMatchObject({ ok: true });
    expect(r.portOutOfRange).toMatchObject({ ok: false, code: 'IPSET_ERR_BITMAP_RANGE' });
    expect(r.missingProto).toMatchObject({ ok: false, code: 'IPSET_ERR_MISSING_PROTO' });
    expect(r.duplicateCreate).toMatchObject({ ok: false, code: 'EEXIST' });
    expect(r.swapTypeMismatch).toMatchObject({ ok: false, code: 'IPSET_ERR_TYPE_MISMATCH' });
    expect(r.destroyMissing).toMatchObject({ ok: false, code: 'ENOENT' });
    expect(r.destroyMissingExist).toMatchObject({ ok: true });
    expect(r.badName).toMatchObject({ ok: false, code: 'NOT_A_NETLINK_ERROR' });
    expect(r.badName!.message).toMatch(/invalid ipset name/);
    expect(r.testPresent).toEqual({ ok: true, value: true });
    expect(r.testAbsent).toEqual({ ok: true, value: false });
  });

  test('several elements per request: a refused one is named, those before it are in, those after it not', async () => {
    ns = await TestNetns.create('ipset');
    const r = await ns.run<Record<string, any>>(SCENARIOS, 'batchCases');
    expect(r.addAll).toEqual({ ok: true });
    expect(r.afterAddAll).toBe(40);
    // The kernel stops at element 3 (already in): 100 and 101 went in, 102 was not tried.
    expect(r.duplicateInMiddle).toMatchObject({ ok: false, code: 'IPSET_ERR_EXIST', index: 2 });
    expect(r.duplicateInMiddle.message).toBe(
      "add to ipset B: element 3 of 4 (10.1.0.3,tcp:80): element cannot be added to the set: it's already added (IPSET_ERR_EXIST)",
    );
    expect(r.afterDuplicate).toContain('10.1.0.100,tcp:80');
    expect(r.afterDuplicate).toContain('10.1.0.101,tcp:80');
    expect(r.afterDuplicate).not.toContain('10.1.0.102,tcp:80');
    expect(r.afterDuplicate).toHaveLength(42);
    expect(r.duplicateExist).toEqual({ ok: true });
    expect(r.delSome).toMatchObject({ ok: false, code: 'IPSET_ERR_EXIST', index: 2 });
    expect(r.delSome.message).toMatch(/^delete from ipset B: element 3 of 4 \(10\.1\.0\.99,tcp:80\): .*not added/);
    expect(r.afterDel).not.toContain('10.1.0.1,tcp:80');
    expect(r.afterDel).not.toContain('10.1.0.2,tcp:80');
    expect(r.afterDel).toContain('10.1.0.4,tcp:80');
    // A refusal of the whole request names no element.
    expect(r.missingSet).toMatchObject({ ok: false, code: 'ENOENT', index: null });
    expect(r.missingSet.message).toMatch(/^add to ipset NOSUCH: the set with the given name does not exist/);
    expect(r.wrongFamily).toMatchObject({ ok: false, code: 'EAFNOSUPPORT', index: 1 });
    expect(r.wrongFamily.message).toMatch(/element 2 of 2: address fd00::1 is inet6 but set B is family inet/);
    expect(await ns.exec('ipset', 'save')).not.toContain('10.1.0.200');
  });

  test('wrong family on a set the client has not seen: the kernel refuses it', async () => {
    ns = await TestNetns.create('ipset');
    await ns.exec('ipset', 'create', 'v4only', 'hash:ip');
    const r = await ns.run(SCENARIOS, 'wrongFamilyUnknownSet');
    expect(r).toMatchObject({ ok: false, code: 'IPSET_ERR_PROTOCOL' });
    expect(await ns.exec('ipset', 'save')).not.toContain('add v4only');
  });

  test('swap, destroy, rename, flush', async () => {
    ns = await TestNetns.create('ipset');
    const r = await ns.run<Record<string, string[]>>(SCENARIOS, 'swapRenameDestroy');
    expect(r.before).toEqual(['KUBE-LIVE:10.0.0.1', 'KUBE-NEW:10.0.0.2']);
    expect(r.swapped).toEqual(['KUBE-LIVE:10.0.0.2', 'KUBE-NEW:10.0.0.1']);
    expect(r.after).toEqual(['KUBE-RENAMED:']);
    expect(await ns.exec('ipset', 'list', '-n')).toBe('KUBE-RENAMED\n');
  });

  test('5000 adds issued at once go through a 64-request window', async () => {
    ns = await TestNetns.create('ipset');
    const r = await ns.run<{
      maxInFlight: number;
      completed: number;
      datagrams: number;
      listed: number;
      recvBuffer: number;
    }>(SCENARIOS, 'windowStress', [5000, 64]);
    expect(r.listed).toBe(5000);
    expect(r.maxInFlight).toBeLessThanOrEqual(64);
    expect(r.maxInFlight).toBeGreaterThan(1); // requests really overlapped
    expect(r.datagrams).toBeLessThan(5000); // and were batched
    expect(await ns.exec('ipset', 'list', '-t', 'STRESS')).toMatch(/Number of entries: 5000/);
  });

  test('5000 failing adds (large error acks) all fail cleanly, none lost', async () => {
    ns = await TestNetns.create('ipset');
    const r = await ns.run<{ failed: number; codes: string[]; maxInFlight: number }>(
      SCENARIOS,
      'windowStressErrors',
      [5000, 64],
    );
    expect(r).toEqual({ failed: 5000, codes: ['ENOENT'], maxInFlight: 64 });
  });
});
