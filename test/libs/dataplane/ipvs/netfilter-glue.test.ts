// The netfilter glue against the real kernel: iptables-restore / ip6tables-restore --noflush inside
// a network namespace this test creates (the host kernel has netfilter and ipset; IPVS is not
// needed), for each family, and real IPv6 traffic through the IPv6 half.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  glueChains,
  netfilterGlue,
  observeNetfilter,
  withGlueSets,
} from '../../../../libs/dataplane/ipvs/netfilter-glue.ts';
import { planNetfilter } from '../../../../libs/dataplane/ipvs/plan-netfilter.ts';
import type { IpFamily, NodeState } from '../../../../libs/model/index.ts';
import { ipPortNetEntry } from '../../../../libs/planner/index.ts';
import { childNodeArgs } from '../../../support/child-node-args.ts';

const ns = `sbglue${process.pid}`;
const inNs = (argv: string[], input?: string) =>
  execFileSync('ip', ['netns', 'exec', ns, ...argv], { input: input ?? '' }).toString();
const tool = (family: IpFamily, t: 'iptables' | 'iptables-save' | 'iptables-restore') =>
  family === 'IPv4' ? t : t.replace('iptables', 'ip6tables');
const settings = { masqueradeAll: false, clusterCIDR: '10.244.0.0/16' };
const v6settings = { masqueradeAll: false, clusterCIDR: 'fd00:10:244::/56' };
const BOTH = ['IPv4', 'IPv6'] as const;

/** Creates in the namespace every set the glue of both families matches on (iptables refuses a rule on a missing one). */
function createSets(): void {
  const glue = netfilterGlue(settings, BOTH);
  const empty: NodeState = { ipsets: [] } as unknown as NodeState;
  const lines = withGlueSets(empty, glue).ipsets.map(
    (s) => `create ${s.name} ${s.type} ${s.type === 'bitmap:port' ? 'range 0-65535' : `family ${s.family}`}`,
  );
  inNs(['ipset', 'restore'], lines.join('\n') + '\n');
}

const observe = async (ours: Record<string, string[]>) => ({
  tables: await observeNetfilter(ours, (family, table) => inNs([tool(family, 'iptables-save'), '-t', table])),
});
/** Applies the glue's restore of `family` (as the dataplane does), when there is one. */
async function restore(
  family: IpFamily,
  glue: ReturnType<typeof netfilterGlue> | undefined,
  owned: Record<string, string[]>,
) {
  const ours = { ...owned, ...(glue ? glueChains(glue) : {}) };
  const text = planNetfilter(glue, await observe(ours), owned, family);
  if (text) inNs([tool(family, 'iptables-restore'), '--noflush'], text);
  return text;
}

const FOREIGN: Record<IpFamily, string[]> = {
  IPv4: ['-A INPUT -s 192.0.2.99/32 -j DROP', '-A FOREIGN-CHAIN -j ACCEPT'],
  IPv6: ['-A INPUT -s 2001:db8::99/128 -j DROP', '-A FOREIGN-CHAIN -j ACCEPT'],
};

beforeEach(() => {
  execFileSync('ip', ['netns', 'add', ns]);
  createSets();
  for (const family of BOTH) {
    inNs([tool(family, 'iptables'), '-N', 'FOREIGN-CHAIN']);
    inNs([tool(family, 'iptables'), '-A', 'FOREIGN-CHAIN', '-j', 'ACCEPT']);
    const src = family === 'IPv4' ? '192.0.2.99/32' : '2001:db8::99/128';
    inNs([tool(family, 'iptables'), '-A', 'INPUT', '-s', src, '-j', 'DROP']);
  }
});
afterEach(() => {
  execFileSync('ip', ['netns', 'del', ns]);
});

describe.each(BOTH)('netfilter glue on a real kernel (%s)', (family) => {
  const glue = netfilterGlue(family === 'IPv4' ? settings : v6settings, [family]);
  const ours = glueChains(glue);
  const save = (table?: string) => inNs([tool(family, 'iptables-save'), ...(table ? ['-t', table] : [])]);
  const cidr = family === 'IPv4' ? '10.244.0.0/16' : 'fd00:10:244::/56';

  it('applies in one restore, reads back equal (no second write), and keeps foreign rules', async () => {
    expect(await restore(family, glue, {})).toBeDefined();
    expect(await restore(family, glue, ours)).toBeUndefined();
    const filter = save('filter');
    for (const f of FOREIGN[family]) expect(filter).toContain(f);
    // Our jumps sit first in INPUT, the foreign rule after them.
    expect(
      inNs([tool(family, 'iptables'), '-S', 'INPUT'])
        .split('\n')
        .filter(Boolean),
    ).toEqual([
      '-P INPUT ACCEPT',
      '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER',
      '-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL',
      FOREIGN[family][0],
    ]);
    const nat = save('nat');
    expect(nat).toContain(`-A KUBE-SERVICES ! -s ${cidr} -m comment`);
    // The family's own sets: KUBE-6-* for IPv6, as kube-proxy's IPv6 proxier (probe6 P3).
    const v6 = family === 'IPv6';
    expect(nat).toContain(`--match-set ${v6 ? 'KUBE-6-LOOP-BACK' : 'KUBE-LOOP-BACK'} dst,dst,src -j MASQUERADE`);
    expect(nat).toContain(`--match-set ${v6 ? 'KUBE-6-LOAD-BALANCER-SOURCE-CID' : 'KUBE-LOAD-BALANCER-SOURCE-CIDR'} `);
    // probe23: refused, not dropped (a TCP reset first, ICMP for the rest), as read back in this text.
    const ips = v6 ? 'KUBE-6-IPVS-IPS' : 'KUBE-IPVS-IPS';
    expect(filter).toContain(
      `-p tcp -m conntrack --ctstate NEW -m set --match-set ${ips} dst -j REJECT --reject-with tcp-reset`,
    );
    expect(filter).toContain(
      `--ctstate NEW -m set --match-set ${ips} dst -j REJECT --reject-with ${v6 ? 'icmp6' : 'icmp'}-port-unreachable`,
    );
    expect(filter).not.toContain(`--match-set ${ips} dst -j DROP`);
    expect(/--match-set KUBE-(?!6-)/.test(nat + filter)).toBe(!v6);
  });

  it('repairs drift (a deleted rule, a deleted jump) and changes with settings', async () => {
    await restore(family, glue, {});
    inNs([tool(family, 'iptables'), '-t', 'nat', '-D', 'KUBE-MARK-MASQ', '-j', 'MARK', '--set-xmark', '0x4000/0x4000']);
    inNs([
      tool(family, 'iptables'),
      ...['-t', 'nat', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'kubernetes service portals'],
      ...['-j', 'KUBE-SERVICES'],
    ]);
    const repair = (await restore(family, glue, ours))!;
    expect(repair).toContain('-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES');
    expect(repair).not.toContain('*filter');
    expect(await restore(family, glue, ours)).toBeUndefined();
    const all = netfilterGlue({ masqueradeAll: true, clusterCIDR: '' }, [family]);
    expect(await restore(family, all, ours)).toBeDefined();
    expect(inNs([tool(family, 'iptables'), '-t', 'nat', '-S', 'KUBE-SERVICES'])).not.toContain(cidr);
    expect(await restore(family, all, ours)).toBeUndefined();
  });

  // probe7 C2: the CNI portmap plugin (externalSetMarkChain: KUBE-MARK-MASQ), kubelet's hostport
  // chains and kube-proxy write such jumps; the glue deleted them at every apply and resync.
  it("leaves another program's chain that jumps to KUBE-MARK-MASQ alone: apply, resync, cleanup", async () => {
    const x = (...argv: string[]) => inNs([tool(family, 'iptables'), '-t', 'nat', ...argv]);
    const pod = family === 'IPv4' ? '10.244.1.5/32' : 'fd00:10:244::5/128';
    const cni = `-A CNI-DN-1234 -s ${pod} -p tcp -m tcp --dport 8080 -j KUBE-MARK-MASQ`;
    // As the plugin does on a node where kube-proxy made KUBE-MARK-MASQ before us.
    x('-N', 'KUBE-MARK-MASQ');
    x('-A', 'KUBE-MARK-MASQ', '-j', 'MARK', '--set-xmark', '0x4000/0x4000');
    x('-N', 'CNI-DN-1234');
    x(...cni.split(' '));
    x('-A', 'PREROUTING', '-j', 'CNI-DN-1234');
    expect(await restore(family, glue, {})).not.toContain('CNI-DN-1234');
    expect(save('nat')).toContain(cni);
    expect(await restore(family, glue, ours)).toBeUndefined();
    expect(await restore(family, glue, ours)).toBeUndefined();
    expect(save('nat')).toContain(cni);
    // Cleanup removes every chain of ours but the one still referenced (its -X would fail the
    // whole table's restore), which keeps setting the mark the plugin relies on.
    await restore(family, undefined, ours);
    const left = save();
    expect(left).toContain(cni);
    expect(left).toContain('-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000');
    expect(left.match(/^:KUBE-\S+/gm)).toEqual([':KUBE-MARK-MASQ']);
    expect(await restore(family, undefined, ours)).toBeUndefined();
  });

  it('a host-length loadBalancerSourceRanges entry is rendered as the kernel reads it back', () => {
    const set = family === 'IPv4' ? 'KUBE-LOAD-BALANCER-SOURCE-CIDR' : 'KUBE-6-LOAD-BALANCER-SOURCE-CID';
    const [lb, host, net] =
      family === 'IPv4'
        ? ['203.0.113.21', '198.51.100.7/32', '192.0.2.0/24']
        : ['2001:db8:1::21', '2001:db8:aaaa::7/128', '2001:db8:bbbb::/48'];
    const entries = [host, net].map((r) => ipPortNetEntry(lb, 'TCP', 80, r));
    for (const e of entries) inNs(['ipset', 'add', set, e]);
    const back = inNs(['ipset', 'save', set])
      .split('\n')
      .filter((l) => l.startsWith('add '));
    expect(back.sort()).toEqual(entries.map((e) => `add ${set} ${e}`).sort());
  });

  it('cleanup removes only our chains and jumps', async () => {
    await restore(family, glue, {});
    await restore(family, undefined, ours);
    const text = save();
    expect(text).not.toContain('KUBE-');
    for (const f of FOREIGN[family]) expect(text).toContain(f);
    expect(await restore(family, undefined, ours)).toBeUndefined();
  });
});

describe('both families', () => {
  it("each family's restore leaves the other's tables alone; a clusterCIDR of one family adds no rule to the other", async () => {
    const glue = netfilterGlue(v6settings, BOTH);
    const ours = glueChains(glue);
    await restore('IPv4', glue, {});
    expect(inNs(['ip6tables-save'])).not.toContain('KUBE-');
    await restore('IPv6', glue, {});
    for (const f of BOTH) expect(await restore(f, glue, ours)).toBeUndefined();
    // The IPv6 pod CIDR is the IPv6 glue's only (iptables-restore refuses an IPv6 source).
    expect(inNs(['iptables-save', '-t', 'nat'])).not.toContain('! -s');
    expect(inNs(['ip6tables-save', '-t', 'nat'])).toContain('-A KUBE-SERVICES ! -s fd00:10:244::/56 -m comment');
    // Removing the IPv6 half (the node's last IPv6 service gone) keeps the IPv4 one.
    await restore('IPv6', netfilterGlue(v6settings, ['IPv4']), ours);
    expect(inNs(['ip6tables-save'])).not.toContain('KUBE-');
    expect(await restore('IPv4', netfilterGlue(v6settings, ['IPv4']), ours)).toBeUndefined();
    expect(inNs(['iptables-save'])).toContain('KUBE-SERVICES');
  });
});

// Whether a node can have the IPv6 half, asked in a real namespace (NetlinkKernel asks it once).
describe('probeIpv6Netfilter', () => {
  const probe = (...tools: string[]) =>
    JSON.parse(
      inNs([
        process.execPath,
        ...childNodeArgs(fileURLToPath(new URL('./ipv6-probe-driver.ts', import.meta.url))),
        ...tools,
      ]),
    ) as (string | null)[];
  it('says yes where IPv6 and ip6tables work, and why not where the tool is missing or IPv6 is disabled', () => {
    const [yes, noTool] = probe('ip6tables-save', '/nonexistent/ip6tables-save');
    expect(yes).toBeNull();
    expect(noTool).toMatch(/^\/nonexistent\/ip6tables-save -t nat: .*ENOENT/);
    inNs(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    expect(probe('ip6tables-save')).toEqual(['IPv6 is disabled here (net.ipv6.conf.all.disable_ipv6=1)']);
  });
});

// Real IPv6 connections through the IPv6 half (probe6 P3 (a), (d)); no IPVS here, so the
// service addresses are local to the node namespace and a server there answers on every port.
describe('IPv6 traffic through the glue', () => {
  const client = `${ns}c`;
  const LB = '2001:db8:1::13';
  const CLUSTER_IP = 'fd99:96::1';
  const ALLOWED = '2001:db8:77::2';
  const OTHER = '2001:db8:77::3';
  let server: ChildProcess | undefined;

  beforeEach(() => {
    execFileSync('ip', ['netns', 'add', client]);
    const c = (argv: string[]) => execFileSync('ip', ['netns', 'exec', client, ...argv]);
    inNs(['ip', 'link', 'add', 'n0', 'type', 'veth', 'peer', 'name', 'c0', 'netns', client]);
    inNs(['ip', 'link', 'set', 'lo', 'up']);
    inNs(['ip', 'link', 'set', 'n0', 'up']);
    inNs(['ip', '-6', 'addr', 'add', '2001:db8:77::1/64', 'dev', 'n0', 'nodad']);
    for (const a of [LB, CLUSTER_IP]) inNs(['ip', '-6', 'addr', 'add', `${a}/128`, 'dev', 'lo']);
    c(['ip', 'link', 'set', 'lo', 'up']);
    c(['ip', 'link', 'set', 'c0', 'up']);
    for (const a of [ALLOWED, OTHER]) c(['ip', '-6', 'addr', 'add', `${a}/64`, 'dev', 'c0', 'nodad']);
    c(['ip', '-6', 'route', 'add', 'default', 'via', '2001:db8:77::1']);
  });
  afterEach(() => {
    server?.kill();
    server = undefined;
    execFileSync('ip', ['netns', 'del', client]);
  });

  /**
   * Connects, in the client namespace, from each [source, address, port]: per probe the address
   * the server saw, or null when no answer came within 4 s. One process for all of them, in
   * parallel, so the wait is paid once; 1.5 s was too short under CI load (an allowed IPv6
   * connection whose first SYN or neighbour solicitation was retried came back null).
   */
  function connect(probes: [string, string, number][]): (string | null)[] {
    const script = `const net=require('net');const one=([src,host,port])=>new Promise(r=>{
      const s=net.connect({host,port,localAddress:src});let b='';const t=setTimeout(()=>{s.destroy();r(null)},4000);
      s.on('data',d=>b+=d);s.on('end',()=>{clearTimeout(t);r(b.trim()||null)});s.on('error',()=>{clearTimeout(t);r(null)})});
      Promise.all(${JSON.stringify(probes)}.map(one)).then(x=>console.log(JSON.stringify(x)));`;
    return JSON.parse(execFileSync('ip', ['netns', 'exec', client, process.execPath, '-e', script]).toString());
  }

  it('drops a source outside IPv6 loadBalancerSourceRanges and new connections to a bound IPv6 VIP on a port no service has', async () => {
    await restore('IPv6', netfilterGlue(v6settings, BOTH), {});
    const add = (set: string, entry: string) => inNs(['ipset', 'add', set, entry]);
    for (const a of [LB, CLUSTER_IP]) add('KUBE-6-IPVS-IPS', a);
    add('KUBE-6-CLUSTER-IP', `${CLUSTER_IP},tcp:80`);
    add('KUBE-6-LOAD-BALANCER', `${LB},tcp:443`);
    add('KUBE-6-LOAD-BALANCER-FW', `${LB},tcp:443`);
    add('KUBE-6-LOAD-BALANCER-SOURCE-CID', `${LB},tcp:443,${ALLOWED}/128`);
    // A host daemon listening on [::] on these ports, answering with the peer's address.
    const script = `const net=require('net');for(const p of [80,443,2222])net.createServer(s=>s.end(s.remoteAddress+'\\n')).listen(p,'::');console.log('ready')`;
    server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.once('data', () => resolve());
      server!.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
    expect(
      connect([
        [ALLOWED, LB, 443],
        [OTHER, LB, 443],
        [OTHER, CLUSTER_IP, 80],
        [OTHER, CLUSTER_IP, 2222],
        [OTHER, '2001:db8:77::1', 2222], // not a VIP: not ours to filter
      ]),
    ).toEqual([ALLOWED, null, OTHER, null, OTHER]);
  });
});
