import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { KernelTransaction } from '../../../../libs/dataplane/ipvs/kernel-transaction.ts';
import { EMPTY_RECORD, FileOwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { serviceOf, specOf } from '../../../../libs/dataplane/ipvs/netlink-kernel.ts';

const vs = {
  protocol: 'TCP' as const,
  address: '10.96.0.1',
  port: 80,
  scheduler: 'rr',
  schedulerFlags: [],
  persistenceTimeout: 0,
};

describe('KernelTransaction', () => {
  it('queuing an invalid op never throws; run refuses the whole transaction before any write', async () => {
    const k = new FakeIpvsKernel();
    const tx = new KernelTransaction()
      .add({ verb: 'add', kind: 'virtual-server', vs })
      .add({ verb: 'add', kind: 'real-server', vs, rs: { address: 'fd00::1', port: 80, weight: 1 } })
      .add({ verb: 'add', kind: 'address', device: 'kube-ipvs0', address: 'not-an-ip' });
    expect(tx.validate()).toBe(
      'add real server [fd00::1]:80 weight 1 of TCP/10.96.0.1:80: real server family differs from its virtual server',
    );
    await expect(k.run(tx)).rejects.toThrow(/family differs/);
    expect(k.ipvsadmSave()).toBe('');
    expect(k.writes).toBe(0);
  });

  it('the fake applies with kernel semantics and remembers the last transaction', async () => {
    const k = new FakeIpvsKernel();
    const tx = new KernelTransaction()
      .add({ verb: 'add', kind: 'virtual-server', vs })
      .add({ verb: 'add', kind: 'real-server', vs, rs: { address: '10.1.0.1', port: 8080, weight: 1 } });
    await k.run(tx);
    expect(k.lastTransaction).toBe(tx);
    expect(k.ipvsadmSave()).toBe('-A -t 10.96.0.1:80 -s rr\n-a -t 10.96.0.1:80 -r 10.1.0.1:8080 -m -w 1\n');
    const again = new KernelTransaction().add({ verb: 'add', kind: 'virtual-server', vs });
    await expect(k.run(again)).rejects.toThrow(
      'add virtual server TCP/10.96.0.1:80: add virtual server TCP/10.96.0.1:80: already exists (EEXIST)',
    );
    expect(k.lastTransaction).toBe(again);
    expect(k.writes).toBe(2);
  });
});

describe('FakeIpvsKernel netfilter', () => {
  it('refuses, like iptables, a rule matching on a set that does not exist', async () => {
    const k = new FakeIpvsKernel();
    const text = '*nat\n:X - [0:0]\n-A X -m set --match-set NOPE dst -j ACCEPT\nCOMMIT\n';
    await expect(
      k.run(new KernelTransaction().add({ verb: 'restore', kind: 'netfilter', family: 'IPv4', text })),
    ).rejects.toThrow("Set NOPE doesn't exist");
    await k.run(
      new KernelTransaction()
        .add({ verb: 'create', kind: 'ipset', set: { name: 'NOPE', type: 'hash:ip', family: 'inet' } })
        .add({ verb: 'restore', kind: 'netfilter', family: 'IPv4', text }),
    );
    expect(k.iptablesSave()).toContain('-A X -m set --match-set NOPE dst -j ACCEPT');
  });
});

describe('IPVS service mapping', () => {
  it('maps ipvsadm flag names and persistence to kernel flags and back', () => {
    const spec = { ...vs, scheduler: 'mh', schedulerFlags: ['mh-fallback', 'mh-port'], persistenceTimeout: 300 };
    const svc = serviceOf(spec);
    expect([...svc.flags].sort()).toEqual(['persistent', 'sched-flag-1', 'sched-flag-2']);
    expect(svc.netmask).toBe(0xffffffff);
    expect(specOf({ ...svc, flags: [...svc.flags, 'hashed'] })).toEqual(spec);
    expect(specOf({ ...serviceOf(vs), timeout: 0 })).toEqual(vs);
  });
});

describe('FileOwnershipStore', () => {
  it('round-trips, starts empty, and refuses a file it does not understand', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-own-'));
    const store = new FileOwnershipStore(join(dir, 'sub', 'ipvs-n1.json'));
    expect(await store.load()).toEqual(EMPTY_RECORD);
    const rec = {
      ...EMPTY_RECORD,
      virtualServers: ['TCP/10.96.0.1:80'],
      draining: { 'TCP/10.96.0.1:80>10.1.0.1:80': 5 },
    };
    await store.save(rec);
    expect(await store.load()).toEqual(rec);
    writeFileSync(store.path, '{"version":2}');
    await expect(store.load()).rejects.toThrow(/not a switchboard ownership record/);
  });
});
