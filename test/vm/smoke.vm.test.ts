// Proves, inside the test VM, the kernel pieces later ipvs/nftables tests rely on: the
// IPVS netlink family, IPVS load-balancing real TCP and UDP between namespaces, dummy
// devices, the ipset types kube-proxy uses, nftables NAT, and kube-proxy-like
// iptables-restore rules. Run with scripts/test-vm.sh.
import { readFileSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { NetnsLab, execIn, run, tcpRequest, tcpSpread, udpRequest } from './support/netns.ts';

const VIP = '10.96.0.10';

beforeAll(() => {
  // Outside the VM these fail for reasons unrelated to the code (no IPVS, no dummy).
  if (process.env.SWITCHBOARD_VM !== '1') throw new Error('VM-only test: run it with scripts/test-vm.sh');
});

let lab: NetnsLab;
afterEach(async () => {
  const problems = await lab.cleanup();
  expect(problems).toEqual([]);
});

describe('kernel modules', () => {
  test('every module in the harness list loaded', () => {
    lab = new NetnsLab();
    const failed = readFileSync('/run/vm/results/modules-failed', 'utf8').split('\n').filter(Boolean);
    expect(failed).toEqual([]);
    for (const m of ['ip_vs', 'ip_vs_rr', 'ip_vs_mh', 'dummy', 'ip_set_hash_ipport', 'nft_numgen', 'xt_set']) {
      expect(readFileSync('/proc/modules', 'utf8')).toMatch(new RegExp(`^${m} `, 'm'));
    }
  });
});

describe('ipvs', () => {
  test('the IPVS generic-netlink family answers (ipvsadm -Ln)', async () => {
    lab = new NetnsLab();
    const ns = await lab.addNamespace('ipvs');
    const out = await execIn(ns, ['ipvsadm', '-Ln']);
    expect(out).toMatch(/^IP Virtual Server version \d+\.\d+\.\d+/);
    const genl = await run(['genl', 'ctrl', 'get', 'name', 'IPVS']);
    expect(genl.stdout).toMatch(/Name: IPVS/);
  });

  test('a virtual server in a node netns balances TCP and UDP from a client across 2 pods', async () => {
    lab = new NetnsLab();
    const node = await lab.addNode();
    const [a, b] = await Promise.all([lab.addPod(node, { name: 'pod-a' }), lab.addPod(node, { name: 'pod-b' })]);
    const client = await lab.addClient(node);
    await execIn(node.ns, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', node.dummy]);
    for (const proto of ['-t', '-u']) {
      await execIn(node.ns, ['ipvsadm', '-A', proto, `${VIP}:80`, '-s', 'rr']);
      for (const pod of [a, b]) {
        await execIn(node.ns, ['ipvsadm', '-a', proto, `${VIP}:80`, '-r', `${pod.ip}:8080`, '-m', '-w', '1']);
      }
    }
    expect(await execIn(node.ns, ['ipvsadm', '-Sn'])).toContain(`-a -t ${VIP}:80 -r ${a.ip}:8080 -m -w 1`);

    // Direct pod traffic works without IPVS, and sees the client's own address.
    expect(await tcpRequest(client.ns, a.ip, 8080)).toEqual({
      pod: 'pod-a',
      peer: expect.stringMatching(`^${client.ip}:`),
    });

    // Round-robin over new connections: an even split, and NAT mode keeps the source.
    const spread = await tcpSpread(client.ns, VIP, 80, 6);
    expect(Object.fromEntries(spread)).toEqual({ 'pod-a': 3, 'pod-b': 3 });
    const reply = await tcpRequest(client.ns, VIP, 80);
    expect(reply.peer.startsWith(`${client.ip}:`)).toBe(true);

    const udpPods = new Set<string>();
    for (let i = 0; i < 4; i++) udpPods.add((await udpRequest(client.ns, VIP, 80)).pod);
    expect([...udpPods].sort()).toEqual(['pod-a', 'pod-b']);

    // Without the virtual server the VIP is just a local address with no listener: the
    // kernel refuses, which shows it was IPVS that answered before.
    await execIn(node.ns, ['ipvsadm', '-D', '-t', `${VIP}:80`]);
    await expect(tcpRequest(client.ns, VIP, 80)).rejects.toThrow(/Connection refused/);
  });
});

describe('devices, ipsets, nftables, iptables', () => {
  test('a dummy device can be created', async () => {
    lab = new NetnsLab();
    const ns = await lab.addNamespace('dummy');
    await execIn(ns, ['ip', 'link', 'add', 'kube-ipvs0', 'type', 'dummy']);
    await execIn(ns, ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'kube-ipvs0']);
    expect(await execIn(ns, ['ip', '-d', 'link', 'show', 'kube-ipvs0'])).toMatch(/\n\s+dummy /);
    expect(await execIn(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'kube-ipvs0'])).toContain(`${VIP}/32`);
  });

  test('ipsets of the kube-proxy types can be created and filled', async () => {
    lab = new NetnsLab();
    const ns = await lab.addNamespace('ipset');
    const restore = [
      'create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536',
      `add KUBE-CLUSTER-IP ${VIP},tcp:80`,
      'create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536',
      'add KUBE-LOOP-BACK 10.50.1.10,tcp:8080,10.50.1.10',
      'create KUBE-NODE-PORT-TCP bitmap:port range 0-65535',
      'add KUBE-NODE-PORT-TCP 30080',
      'create KUBE-LOAD-BALANCER-SOURCE-CIDR hash:ip,port,net family inet hashsize 1024 maxelem 65536',
      'add KUBE-LOAD-BALANCER-SOURCE-CIDR 10.96.1.1,tcp:80,10.0.0.0/8',
      '',
    ].join('\n');
    await execIn(ns, ['ipset', 'restore'], { input: restore });
    const hit = await run(['ip', 'netns', 'exec', ns, 'ipset', 'test', 'KUBE-CLUSTER-IP', `${VIP},tcp:80`], {
      allowFailure: true,
    });
    expect(hit.code).toBe(0);
    const miss = await run(['ip', 'netns', 'exec', ns, 'ipset', 'test', 'KUBE-CLUSTER-IP', `${VIP},tcp:81`], {
      allowFailure: true,
    });
    expect(miss.code).not.toBe(0);
    const saved = await execIn(ns, ['ipset', 'save']);
    expect(saved).toContain('add KUBE-LOOP-BACK 10.50.1.10,tcp:8080,10.50.1.10');
    expect(saved).toContain('add KUBE-NODE-PORT-TCP 30080');
  });

  test('nftables numgen DNAT reaches pods from a client', async () => {
    lab = new NetnsLab();
    const node = await lab.addNode();
    const [a, b] = await Promise.all([lab.addPod(node, { name: 'pod-a' }), lab.addPod(node, { name: 'pod-b' })]);
    const client = await lab.addClient(node);
    const ruleset = `
      table ip sbsmoke {
        chain pre {
          type nat hook prerouting priority dstnat; policy accept;
          ip daddr ${VIP} tcp dport 80 ct state new dnat to numgen inc mod 2 map { 0 : ${a.ip}, 1 : ${b.ip} } : 8080
        }
        chain post {
          type nat hook postrouting priority srcnat; policy accept;
          ip daddr 10.50.1.0/24 fib saddr type local masquerade
        }
      }`;
    await execIn(node.ns, ['nft', ruleset]);
    expect(await execIn(node.ns, ['nft', 'list', 'table', 'ip', 'sbsmoke'])).toContain('numgen inc mod 2');
    const spread = await tcpSpread(client.ns, VIP, 80, 4);
    expect(Object.fromEntries(spread)).toEqual({ 'pod-a': 2, 'pod-b': 2 });
  });

  test('iptables-restore accepts kube-proxy-like rules (set, comment, mark, addrtype, conntrack, masquerade)', async () => {
    lab = new NetnsLab();
    const ns = await lab.addNamespace('ipt');
    await execIn(ns, ['ipset', 'create', 'KUBE-CLUSTER-IP', 'hash:ip,port']);
    const rules = [
      '*nat',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-POSTROUTING - [0:0]',
      ':KUBE-MARK-MASQ - [0:0]',
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
      '-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000',
      '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
      '-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000',
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
      '-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ',
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j ACCEPT',
      'COMMIT',
      '*filter',
      ':KUBE-FORWARD - [0:0]',
      '-A FORWARD -j KUBE-FORWARD',
      '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
      '-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT',
      'COMMIT',
      '',
    ].join('\n');
    await execIn(ns, ['iptables-restore'], { input: rules });
    const saved = await execIn(ns, ['iptables-save', '-t', 'nat']);
    expect(saved).toContain('--match-set KUBE-CLUSTER-IP dst,dst');
    expect(saved).toContain('-j MASQUERADE');
  });
});
