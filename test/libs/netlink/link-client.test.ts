// LinkClient on this host's kernel inside a test netns. This kernel has no dummy driver,
// so addresses are tested on a veth and on lo; dummy creation runs in the VM suite.
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { TestNetns } from './support/netns.ts';

const SCENARIOS = fileURLToPath(new URL('./support/link-scenarios.ts', import.meta.url));

let ns: TestNetns | undefined;
afterEach(async () => {
  await ns?.destroy();
  ns = undefined;
});

describe('LinkClient on the host kernel (netns)', () => {
  test.each(['veth0', 'lo'])('addresses on %s: add /32 and /128, list, delete, errors', async (link) => {
    ns = await TestNetns.create('link');
    if (link === 'veth0') await ns.exec('ip', 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1');
    const r = await ns.run<Record<string, any>>(SCENARIOS, 'addressesOn', [link]);
    expect(r.got).toMatchObject({ name: link });
    expect(r.up).toBe(true);
    const mine = (r.listed as Array<{ address: string; prefixLength: number }>)
      .filter((a) => a.address.startsWith('10.96.') || a.address.startsWith('fd00:96'))
      .map((a) => `${a.address}/${a.prefixLength}`)
      .sort();
    expect(mine).toEqual(['10.96.0.10/32', '10.96.0.11/32', 'fd00:96::10/128']);
    expect(r.duplicate).toMatch(/^EEXIST: add address 10\.96\.0\.10 to /);
    expect(r.deleteAbsent).toMatch(/^EADDRNOTAVAIL: /);
    expect(r.noLink).toMatch(/^ENODEV: .*no link named no-such-link/);
    expect(r.badAddr).toMatch(/^other: invalid IP address "10\.96\.0\.300"/);
    expect(r.missing).toBeNull();
    expect((r.afterDelete as Array<{ address: string }>).map((a) => a.address)).not.toContain('10.96.0.11');
    // What iproute2 sees agrees.
    const shown = await ns.exec('ip', '-o', 'addr', 'show', 'dev', link);
    expect(shown).toMatch(/inet 10\.96\.0\.10\/32/);
    expect(shown).toMatch(/inet6 fd00:96::10\/128/);
    expect(shown).not.toMatch(/10\.96\.0\.11/);
  });

  test('ensureDummy without a dummy driver fails with a readable error', async () => {
    ns = await TestNetns.create('link');
    const r = await ns.run<string>(SCENARIOS, 'ensureDummyOutcome');
    // On this host: no dummy module → EOPNOTSUPP. (With the driver it would be 'ok': VM suite.)
    expect(r).toMatch(/^(EOPNOTSUPP: create dummy link kube-ipvs0: link type not supported|ok)/);
    if (r !== 'ok') expect(await ns.exec('ip', '-o', 'link')).not.toContain('kube-ipvs0');
  });
});
