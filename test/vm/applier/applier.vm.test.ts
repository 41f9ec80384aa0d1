// ipvs-mode applier against the real kernel in the VM: pods are netns with TCP/UDP echo servers,
// the applier runs as a child inside the node netns. One lab for the file (pod echo servers take
// long to start under TCG); tests run in order and each leaves the lab as it found it apart from
// the applied state, which the next test replaces. afterAll removes every namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IpsetState, NodeState, VirtualServer } from '../../../libs/model/index.ts';
import { formatIpvsadm } from '../../../libs/planner/index.ts';
import {
  execIn,
  NetnsLab,
  NoReplyError,
  tcpRequest,
  tcpSpread,
  udpRequest,
  type ClientNs,
  type NodeNs,
  type PodNs,
} from '../support/netns.ts';
import { ApplierProcess } from './applier-process.ts';

const VIP = '10.96.0.10';
const lab = new NetnsLab();
let node: NodeNs, client: ClientNs, pods: PodNs[], applier: ApplierProcess;
const stateFile = join(mkdtempSync(join(tmpdir(), 'sb-applier-')), 'ipvs-n1.json');
const holders: ChildProcess[] = [];

function vs(
  address: string,
  port: number,
  podList: PodNs[],
  o: Partial<VirtualServer> = {},
  rsPort = 8080,
): VirtualServer {
  return {
    protocol: 'TCP',
    address,
    port,
    scheduler: 'rr',
    schedulerFlags: [],
    persistenceTimeout: 0,
    role: 'cluster-ip',
    servicePort: 'default/web:http',
    localOnly: false,
    sourceRanges: [],
    realServers: podList
      .map((p) => ({ address: p.ip, port: rsPort, weight: 1 }))
      .sort((a, b) => (a.address < b.address ? -1 : 1)),
    ...o,
  };
}
function state(virtualServers: VirtualServer[]): NodeState {
  const vips = [...new Set(virtualServers.filter((v) => v.role !== 'node-port').map((v) => v.address))].sort();
  return {
    node: 'n1',
    virtualServers: [...virtualServers].sort((a, b) =>
      `${a.protocol}/${a.address}:${a.port}` < `${b.protocol}/${b.address}:${b.port}` ? -1 : 1,
    ),
    boundAddresses: vips,
    ipsets: [
      {
        name: 'KUBE-CLUSTER-IP',
        type: 'hash:ip,port',
        family: 'inet',
        entries: virtualServers
          .filter((v) => v.role === 'cluster-ip')
          .map((v) => `${v.address},${v.protocol.toLowerCase()}:${v.port}`)
          .sort(),
      },
      { name: 'KUBE-IPVS-IPS', type: 'hash:ip', family: 'inet', entries: vips },
      {
        name: 'KUBE-NODE-PORT-TCP',
        type: 'bitmap:port',
        entries: [...new Set(virtualServers.filter((v) => v.role === 'node-port').map((v) => String(v.port)))].sort(),
      },
    ],
    settings: {
      strictARP: false,
      masqueradeAll: false,
      clusterCIDR: '',
      tcpTimeout: 0,
      tcpFinTimeout: 0,
      udpTimeout: 0,
      excludeCIDRs: [],
    },
  };
}
const ipvsadm = async () =>
  (await execIn(node.ns, ['ipvsadm', '-Sn']))
    .split('\n')
    .filter(Boolean)
    .sort()
    .map((l) => l + '\n')
    .join('');

const t0 = Date.now();
const step = (what: string) => console.log(`[applier.vm] ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);

beforeAll(async () => {
  // Outside the VM these fail for reasons unrelated to the code (no IPVS, no dummy).
  if (process.env.SWITCHBOARD_VM !== '1') throw new Error('VM-only test: run it with scripts/test-vm.sh');
  node = await lab.addNode();
  // Foreign objects the applier must never touch, present before it first runs.
  await execIn(node.ns, ['ipvsadm', '-A', '-t', '192.0.2.1:443', '-s', 'wlc']);
  await execIn(node.ns, ['ip', 'addr', 'add', '192.0.2.1/32', 'dev', 'kube-ipvs0']);
  await execIn(node.ns, ['ipset', 'create', 'FOREIGN-SET', 'hash:ip']);
  await execIn(node.ns, ['iptables', '-A', 'INPUT', '-s', '192.0.2.99/32', '-j', 'DROP']);
  // Not the kernel's default: a dataplane not told otherwise (--ipvs-rate-estimation keep) leaves it.
  await execIn(node.ns, ['sh', '-c', 'echo 0 > /proc/sys/net/ipv4/vs/run_estimation']);
  step('node ready');
  // Everything that starts a node process goes in parallel: each costs tens of seconds under TCG.
  const [a, b, c, cl, ap] = await Promise.all([
    lab.addPod(node, { name: 'web-a' }),
    lab.addPod(node, { name: 'web-b' }),
    lab.addPod(node, { name: 'web-c' }),
    lab.addClient(node),
    ApplierProcess.start(node.ns, stateFile, 300_000),
  ]);
  pods = [a, b, c];
  client = cl;
  applier = ap;
  step('pods, client and applier ready');
}, 900_000);

afterAll(async () => {
  for (const h of holders) h.kill('SIGKILL');
  await applier?.stop();
  const problems = await lab.cleanup();
  if (problems.length) console.warn(problems.join('\n'));
});

async function foreignIntact(): Promise<void> {
  expect(await execIn(node.ns, ['ipvsadm', '-Sn'])).toContain('-A -t 192.0.2.1:443 -s wlc');
  expect(await execIn(node.ns, ['ip', '-o', 'addr', 'show', 'dev', 'kube-ipvs0'])).toContain('192.0.2.1/32');
  expect(await execIn(node.ns, ['ipset', 'list', '-n'])).toContain('FOREIGN-SET');
  expect(await execIn(node.ns, ['iptables', '-S', 'INPUT'])).toContain('-A INPUT -s 192.0.2.99/32 -j DROP');
  expect((await execIn(node.ns, ['cat', '/proc/sys/net/ipv4/vs/run_estimation'])).trim()).toBe('0');
}

describe('ipvs applier in a node netns', () => {
  it('ClusterIP TCP spreads over endpoints, UDP answers, text equals the rendering, second apply writes nothing', async () => {
    const s = state([vs(VIP, 80, pods), vs(VIP, 53, pods, { protocol: 'UDP' })]);
    const r = await applier.apply(s);
    expect(r.notes.filter((n) => n.startsWith('verify'))).toEqual([]);
    expect(r.verified).toBe(true);
    expect(r.kernelWrites).toBeGreaterThan(0);
    // Our rules, byte for byte as the planner renders them (the foreign service sorts in between).
    expect(
      (await ipvsadm())
        .split('\n')
        .filter((l) => l.includes(VIP))
        .map((l) => l + '\n')
        .join(''),
    ).toBe(formatIpvsadm(s));
    const spread = await tcpSpread(client.ns, VIP, 80, 9);
    expect([...spread.keys()].sort()).toEqual(['web-a', 'web-b', 'web-c']);
    expect(['web-a', 'web-b', 'web-c']).toContain((await udpRequest(client.ns, VIP, 53)).pod);
    const again = await applier.apply(s);
    expect(again.kernelWrites).toBe(0);
    await foreignIntact();
  });

  // probe23: KUBE-IPVS-FILTER dropped these, so a client of a port no service serves (a service
  // port changed or removed) hung until its connect timeout; kube-proxy REJECTs them.
  it('a port of a bound VIP that no service serves is refused (TCP reset, UDP port unreachable), not dropped', async () => {
    await expect(tcpRequest(client.ns, VIP, 81, { timeoutMs: 8000 })).rejects.toThrow(/Connection refused/);
    await expect(udpRequest(client.ns, VIP, 54, { timeoutMs: 8000 })).rejects.toThrow(/Connection refused/);
    // the served ports still answer
    expect(['web-a', 'web-b', 'web-c']).toContain((await tcpRequest(client.ns, VIP, 80)).pod);
  });

  it('NodePort answers from the client netns; affinity sticks to one pod', async () => {
    const s = state([
      vs(VIP, 80, pods, { persistenceTimeout: 600 }),
      vs(client.nodeIp, 30080, pods, { role: 'node-port' }),
    ]);
    expect((await applier.apply(s)).verified).toBe(true);
    expect(['web-a', 'web-b', 'web-c']).toContain((await tcpRequest(client.ns, client.nodeIp, 30080)).pod);
    const sticky = await tcpSpread(client.ns, VIP, 80, 6);
    expect(sticky.size).toBe(1);
  });

  it('endpoint removal drains: the removed TCP real server goes to weight 0 and an open connection through it keeps working', async () => {
    for (const p of pods) {
      const h = spawn(
        'ip',
        [
          'netns',
          'exec',
          p.ns,
          process.execPath,
          '-e',
          "require('net').createServer((s)=>s.pipe(s)).listen(9090,'0.0.0.0',()=>console.log('ready'))",
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      holders.push(h);
      await new Promise<void>((r) => h.stdout!.once('data', () => r()));
    }
    const s = state([vs(VIP, 9090, pods, {}, 9090)]);
    expect((await applier.apply(s)).verified).toBe(true);
    // One long-lived client connection: writes a line per stdin line and prints the echo.
    const conn = spawn(
      'ip',
      [
        'netns',
        'exec',
        client.ns,
        process.execPath,
        '-e',
        `const s=require('net').connect(9090,'${VIP}',()=>console.log('up '+s.localPort));s.on('data',d=>process.stdout.write(d));process.stdin.on('data',d=>s.write(d));s.on('close',()=>{console.log('closed');process.exit(0)})`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    holders.push(conn);
    let out = '';
    conn.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const waitFor = async (text: string) => {
      for (let i = 0; i < 600 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 100));
      expect(out).toContain(text);
    };
    await waitFor('up ');
    // Which pod holds the connection: the one IPVS shows an active connection for.
    const listing = await execIn(node.ns, ['ipvsadm', '-Ln', '-t', `${VIP}:9090`]);
    const holder = pods.find((p) => new RegExp(`${p.ip.replace(/\./g, '\\.')}:9090\\s+Masq\\s+1\\s+1`).test(listing));
    expect(holder, listing).toBeDefined();
    const rest = pods.filter((p) => p !== holder);
    const r = await applier.apply(state([vs(VIP, 9090, rest, {}, 9090)]));
    expect(r.notes).toContain('1 real server(s) draining');
    expect(await execIn(node.ns, ['ipvsadm', '-Sn'])).toContain(`-a -t ${VIP}:9090 -r ${holder!.ip}:9090 -m -w 0`);
    conn.stdin!.write('still-there\n');
    await waitFor('still-there');
    expect(out).not.toContain('closed');
    conn.stdin!.end();
  });

  it('drift behind our back (ipvsadm -D, ipset del) is repaired by resync', async () => {
    const s = state([vs(VIP, 80, pods), vs(VIP, 53, pods, { protocol: 'UDP' })]);
    await applier.apply(s);
    await execIn(node.ns, ['ipvsadm', '-D', '-t', `${VIP}:80`]);
    await execIn(node.ns, ['ipset', 'del', 'KUBE-CLUSTER-IP', `${VIP},udp:53`]);
    const r = await applier.resync();
    expect(r.kernelWrites).toBe(1 + pods.length + 1);
    expect(r.verified).toBe(true);
    expect(['web-a', 'web-b', 'web-c']).toContain((await tcpRequest(client.ns, VIP, 80)).pod);
    expect((await applier.resync()).kernelWrites).toBe(0);
  });

  it('a restarted applier (new process, same state file) changes nothing', async () => {
    const s = state([vs(VIP, 80, pods), vs(VIP, 53, pods, { protocol: 'UDP' })]);
    await applier.apply(s);
    await applier.stop();
    applier = await ApplierProcess.start(node.ns, stateFile);
    const r = await applier.apply(s);
    expect(r.kernelWrites).toBe(0);
    expect(r.verified).toBe(true);
  });

  // probe6 P3: the IPv6 half of the glue on a real IPVS kernel. One pod gets an IPv6 address and
  // an IPv6 listener, the client an IPv6 link; the pod reports the source it saw.
  it('IPv6: NodePort traffic is masqueraded by the ip6tables glue; an IPv6 LB address enforces loadBalancerSourceRanges', async () => {
    const pod = pods[0]!;
    const [NODE6, CLIENT6, POD6, POD_GW6, LB6] = [
      '2001:db8:50::1',
      '2001:db8:50::2',
      'fd50::a',
      'fd50::1',
      '2001:db8:1::19',
    ];
    await execIn(node.ns, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
    await execIn(node.ns, ['ip', '-6', 'addr', 'add', `${NODE6}/64`, 'dev', 'vc0', 'nodad']);
    await execIn(node.ns, ['ip', '-6', 'addr', 'add', `${POD_GW6}/128`, 'dev', 'vp0', 'nodad']);
    await execIn(node.ns, ['ip', '-6', 'route', 'add', `${POD6}/128`, 'dev', 'vp0']);
    await execIn(client.ns, ['ip', '-6', 'addr', 'add', `${CLIENT6}/64`, 'dev', 'eth0', 'nodad']);
    await execIn(client.ns, ['ip', '-6', 'route', 'add', 'default', 'via', NODE6]);
    await execIn(pod.ns, ['ip', '-6', 'addr', 'add', `${POD6}/128`, 'dev', 'eth0', 'nodad']);
    await execIn(pod.ns, ['ip', '-6', 'route', 'add', POD_GW6, 'dev', 'eth0']);
    await execIn(pod.ns, ['ip', '-6', 'route', 'add', 'default', 'via', POD_GW6, 'dev', 'eth0']);
    const h = spawn(
      'ip',
      [
        ...['netns', 'exec', pod.ns, process.execPath, '-e'],
        "require('net').createServer((s)=>s.end('v6pod '+s.remoteAddress+'\\n')).listen(8443,'::',()=>console.log('ready'))",
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    holders.push(h);
    await new Promise<void>((r) => h.stdout!.once('data', () => r()));
    const v6 = (ranges: string): NodeState => {
      const base = state([vs(VIP, 80, pods)]);
      const rs = [{ address: POD6, port: 8443, weight: 1 }];
      const lb = vs(LB6, 80, [], { role: 'load-balancer', realServers: rs });
      const np = vs(NODE6, 30443, [], { role: 'node-port', realServers: rs });
      return {
        ...base,
        virtualServers: [...base.virtualServers, lb, np],
        boundAddresses: [...base.boundAddresses, LB6],
        ipsets: [
          ...base.ipsets,
          ...([
            { name: 'KUBE-6-IPVS-IPS', type: 'hash:ip', family: 'inet6', entries: [LB6] },
            { name: 'KUBE-6-LOAD-BALANCER', type: 'hash:ip,port', family: 'inet6', entries: [`${LB6},tcp:80`] },
            { name: 'KUBE-6-LOAD-BALANCER-FW', type: 'hash:ip,port', family: 'inet6', entries: [`${LB6},tcp:80`] },
            {
              name: 'KUBE-6-LOAD-BALANCER-SOURCE-CID',
              type: 'hash:ip,port,net',
              family: 'inet6',
              entries: [`${LB6},tcp:80,${ranges}`],
            },
            { name: 'KUBE-6-NODE-PORT-TCP', type: 'bitmap:port', entries: ['30443'] },
          ] satisfies IpsetState[]),
        ].sort((a, b) => (a.name < b.name ? -1 : 1)),
      };
    };
    const r = await applier.apply(v6('2001:db8:50::/64'));
    expect(r.notes.filter((n) => n.startsWith('verify') || n.startsWith('IPv6'))).toEqual([]);
    expect(r.verified).toBe(true);
    expect(await execIn(node.ns, ['ip6tables-save', '-t', 'nat'])).toContain('--match-set KUBE-6-NODE-PORT-TCP dst');
    // NodePort: masqueraded to the node's address on the pod's link (without the glue the pod saw the client).
    expect(await tcpRequest(client.ns, NODE6, 30443)).toEqual({ pod: 'v6pod', peer: POD_GW6 });
    // The LB address answers the allowed source, not masqueraded (its KUBE-FIREWALL RETURN is before the mark)...
    expect((await tcpRequest(client.ns, LB6, 80)).pod).toBe('v6pod');
    // ...and drops every other one.
    expect((await applier.apply(v6('2001:db8:aaaa::/48'))).verified).toBe(true);
    await expect(tcpRequest(client.ns, LB6, 80, { timeoutMs: 5000 })).rejects.toThrow(NoReplyError);
  });

  // A service of more real servers than NARROW_MIN_REAL_SERVERS: its changes are planned on the
  // real servers they touch and checked by the kernel's answer to each write, not read back
  // (narrowed-service.ts); the kernel's EEXIST/ENOENT are what that relies on.
  it('a service of 150 real servers changes one endpoint at a time (added, reweighted, removed: drained until the resync): each verified, the listing equal to the rendering; a real server deleted behind our back makes the kernel refuse the edit, one added is removed by the resync', async () => {
    const many = (extra: { address: string; port: number; weight: number }[]) =>
      [
        ...Array.from({ length: 150 }, (_, i) => ({ address: `10.250.0.${i + 1}`, port: 8080, weight: 1 })),
        ...extra,
      ].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
    const at = (extra: { address: string; port: number; weight: number }[]) =>
      state([{ ...vs(VIP, 8443, []), realServers: many(extra) }, vs(VIP, 80, pods)]);
    const ours = async () =>
      (await ipvsadm())
        .split('\n')
        .filter((l) => l.includes(VIP))
        .map((l) => l + '\n')
        .join('');
    expect((await applier.apply(at([]))).verified).toBe(true);
    for (const extra of [
      [{ address: '10.250.1.1', port: 8080, weight: 1 }],
      [{ address: '10.250.1.1', port: 8080, weight: 2 }],
    ]) {
      const s = at(extra);
      const r = await applier.apply(s);
      expect(r.notes.filter((n) => n.startsWith('verify'))).toEqual([]);
      expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
      expect(await ours()).toBe(formatIpvsadm(s));
    }
    // removed: a change does not read the service's counters, so it drains at weight 0; the
    // resync reads them and deletes it (no connection)
    const removed = at([]);
    const r = await applier.apply(removed);
    expect(r.notes.filter((n) => n.startsWith('verify'))).toEqual([]);
    expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(await ours()).toContain(`-a -t ${VIP}:8443 -r 10.250.1.1:8080 -m -w 0\n`);
    expect(await applier.resync()).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(await ours()).toBe(formatIpvsadm(removed));
    // gone behind our back, then reweighted by us: IPVS refuses to edit what it lacks
    await execIn(node.ns, ['ipvsadm', '-d', '-t', `${VIP}:8443`, '-r', '10.250.0.7:8080']);
    const reweighted = state([
      {
        ...vs(VIP, 8443, []),
        realServers: many([]).map((r) => (r.address === '10.250.0.7' ? { ...r, weight: 2 } : r)),
      },
      vs(VIP, 80, pods),
    ]);
    await expect(applier.apply(reweighted)).rejects.toThrow(/10\.250\.0\.7/);
    expect(await applier.apply(reweighted)).toMatchObject({ verified: true, kernelWrites: 1 }); // full: put back
    expect(await ours()).toBe(formatIpvsadm(reweighted));
    // added behind our back: a change elsewhere in the service does not see it, the resync does
    await execIn(node.ns, ['ipvsadm', '-a', '-t', `${VIP}:8443`, '-r', '10.250.9.9:8080', '-m', '-w', '1']);
    const next = at([{ address: '10.250.1.2', port: 8080, weight: 1 }]);
    expect(await applier.apply(next)).toMatchObject({ verified: true });
    expect(await applier.resync()).toMatchObject({ verified: true, kernelWrites: 1 });
    expect(await ours()).toBe(formatIpvsadm(next));
  });

  it('cleanup removes what we created and leaves foreign rules', async () => {
    const r = await applier.cleanup();
    expect(r.kernelWrites).toBeGreaterThan(0);
    expect(await ipvsadm()).toBe('-A -t 192.0.2.1:443 -s wlc\n');
    expect(await execIn(node.ns, ['ipset', 'list', '-n'])).not.toContain('KUBE-');
    expect(await execIn(node.ns, ['iptables-save'])).not.toContain('KUBE-');
    expect(await execIn(node.ns, ['ip6tables-save'])).not.toContain('KUBE-');
    await foreignIntact();
  });
});
