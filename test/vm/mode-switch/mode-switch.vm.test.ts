// ipvs → nftables → ipvs on a live node netns in the VM (IPVS is not in the host kernel): each
// switch programs and verifies the new mode before removing the old one, the old mode leaves
// nothing of ours behind (checked by dumping the kernel), foreign state survives, and service
// traffic keeps flowing over every endpoint in each mode.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeState } from '../../../libs/model/index.ts';
import { IPSET_TABLE, ipsetName } from '../../../libs/planner/index.ts';
import { childNodeArgs } from '../../support/child-node-args.ts';
import { execIn, NetnsLab, tcpSpread, type ClientNs, type NodeNs, type PodNs } from '../support/netns.ts';

const DRIVER = new URL('./switch-driver.ts', import.meta.url).pathname;
const VIP = '10.96.0.10';
const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'sb-mode-switch-'));
const stateFile = join(dir, 'state.json');
let node: NodeNs, client: ClientNs, pods: PodNs[];

function state(): NodeState {
  return {
    node: 'n1',
    virtualServers: [
      {
        protocol: 'TCP',
        address: VIP,
        port: 80,
        scheduler: 'rr',
        schedulerFlags: [],
        persistenceTimeout: 0,
        role: 'cluster-ip',
        servicePort: 'default/web:http',
        localOnly: false,
        sourceRanges: [],
        realServers: pods
          .map((p) => ({ address: p.ip, port: 8080, weight: 1 }))
          .sort((a, b) => (a.address < b.address ? -1 : 1)),
      },
    ],
    boundAddresses: [VIP],
    // Every set kube-proxy keeps, empty ones included (the ipvs glue references them all), as
    // renderNodeState emits them.
    ipsets: IPSET_TABLE.map(([base, type]) => ({
      name: ipsetName(base, 'IPv4'),
      type,
      ...(type === 'bitmap:port' ? {} : { family: 'inet' as const }),
      entries: base === 'KUBE-CLUSTER-IP' ? [`${VIP},tcp:80`] : base === 'KUBE-IPVS-IPS' ? [VIP] : [],
    })).sort((a, b) => (a.name < b.name ? -1 : 1)),
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

function step(name: string): Promise<{ result?: unknown; error?: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('ip', ['netns', 'exec', node.ns, process.execPath, ...childNodeArgs(DRIVER), stateFile, dir, name]);
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.stderr.on('data', (d) => {
      err += d;
    });
    c.on('close', () => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop()!));
      } catch {
        reject(new Error(`driver ${name}: ${err || out}`));
      }
    });
  });
}

/** Everything of ours either mode could leave, as the kernel reports it. */
async function kernelDump() {
  return {
    ipvs: await execIn(node.ns, ['ipvsadm', '-Sn']),
    ipsets: (await execIn(node.ns, ['ipset', 'list', '-n'])).split('\n').filter(Boolean).sort(),
    addrs: await execIn(node.ns, ['ip', '-o', 'addr', 'show']),
    iptables: await execIn(node.ns, ['iptables-save']),
    nft: await execIn(node.ns, ['nft', 'list', 'tables']),
  };
}

beforeAll(async () => {
  node = await lab.addNode();
  pods = [await lab.addPod(node, { name: 'web-a' }), await lab.addPod(node, { name: 'web-b' })];
  client = await lab.addClient(node);
  writeFileSync(stateFile, JSON.stringify(state()));
  await execIn(node.ns, ['ipvsadm', '-A', '-t', '192.0.2.1:443', '-s', 'wlc']);
  await execIn(node.ns, ['ipset', 'create', 'FOREIGN-SET', 'hash:ip']);
  await execIn(node.ns, ['nft', 'add', 'table', 'inet', 'foreign']);
});
afterAll(async () => {
  await lab.cleanup();
});

describe('mode switch on a live node', () => {
  const spread = async () => [...(await tcpSpread(client.ns, VIP, 80, 20)).keys()].sort();
  const foreignSurvives = (d: Awaited<ReturnType<typeof kernelDump>>) => {
    expect(d.ipvs).toContain('-A -t 192.0.2.1:443 -s wlc');
    expect(d.ipsets).toContain('FOREIGN-SET');
    expect(d.nft).toContain('table inet foreign');
  };

  it('ipvs serves first', async () => {
    expect(await step('apply-ipvs')).toMatchObject({ result: { verified: true } });
    expect(await spread()).toEqual(['web-a', 'web-b']);
  });

  it('ipvs → nftables leaves no IPVS service, ipset, address or chain of ours', async () => {
    expect(await step('ipvs-to-nftables')).toMatchObject({
      result: { applied: { verified: true }, removed: { verified: true } },
    });
    const d = await kernelDump();
    expect(d.ipvs).not.toContain(VIP);
    expect(d.ipsets.filter((s) => s.startsWith('KUBE-'))).toEqual([]);
    expect(d.addrs).not.toContain(VIP);
    expect(d.iptables).not.toMatch(/KUBE-/);
    expect(d.nft).toContain('table inet switchboard');
    foreignSurvives(d);
    expect(await spread()).toEqual(['web-a', 'web-b']);
  });

  it('nftables → ipvs removes our table and serves through IPVS again', async () => {
    expect(await step('nftables-to-ipvs')).toMatchObject({
      result: { applied: { verified: true }, removed: { verified: true } },
    });
    const d = await kernelDump();
    expect(d.nft).not.toContain('switchboard');
    expect(d.ipvs).toContain(`-A -t ${VIP}:80`);
    foreignSurvives(d);
    expect(await spread()).toEqual(['web-a', 'web-b']);
  });
});
