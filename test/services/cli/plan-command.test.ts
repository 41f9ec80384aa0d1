import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { NODES, service, slice } from '../../support/plan-fixture.ts';
import { sbIn } from './cli-support.ts';

const run = promisify(execFile);
const bin = path.resolve('bin/switchboard');
const dir = mkdtempSync(path.join(tmpdir(), 'sb-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(path.join(dir, 'nodes.yaml'), NODES);
writeFileSync(
  path.join(dir, 'web.yaml'),
  service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]') +
    slice('web', '[{name: http, port: 8080}]', ['{addresses: [10.244.1.2], nodeName: node-a}']),
);
writeFileSync(
  path.join(dir, 'bad.json'),
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'bad' },
    spec: { clusterIP: 'x', ports: [{ port: 1 }] },
  }),
);

async function sb(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(bin, args);
    return { code: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('switchboard plan', () => {
  it('says on stderr when the directory yields no Service (an empty plan, exit 0)', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'sb-plan-empty-'));
    try {
      const r = await sb('plan', '--manifests', empty, '--node', 'node-a', '--format', 'ipvsadm');
      expect(r).toEqual({ code: 0, stdout: '', stderr: `note: no Service in ${empty}: the plan is empty\n` });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('prints ipvsadm -Sn lines and lists rejected objects on stderr (exit 0 without --strict)', async () => {
    const r = await sb('plan', '--manifests', dir, '--node', 'node-a', '--format', 'ipvsadm');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('-A -t 10.96.0.1:80 -s rr\n-a -t 10.96.0.1:80 -r 10.244.1.2:8080 -m -w 1\n');
    expect(r.stderr).toMatch(
      /^rejected Service default\/bad \(bad\.json\): spec\.clusterIPs\[0\]: invalid IP address "x"$/m,
    );
  });

  it('notes on stderr when the format or scheduler is one the nftables node does not program', async () => {
    const r = await sb(...['plan', '--manifests', dir, '--node', 'node-a', '--mode', 'nftables', '--scheduler', 'sh']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('-A -t 10.96.0.1:80 -s sh\n');
    expect(r.stderr).toMatch(/^note: a node in nftables mode programs no IPVS rules or ipsets; this ipvsadm output/m);
    expect(r.stderr).toMatch(/^note: scheduler sh has no effect in nftables mode \(it balances at random\)$/m);
    const nft = await sb(...['plan', '--manifests', dir, '--node', 'node-a', '--mode', 'nftables', '--format', 'nft']);
    expect(nft.code).toBe(0);
    expect(nft.stderr).not.toMatch(/^note:/m);
    const ipvs = await sb('plan', '--manifests', dir, '--node', 'node-a', '--scheduler', 'sh');
    expect(ipvs.stderr).not.toMatch(/^note:/m);
  });

  it("takes kube-proxy's --nodeport-addresses primary: the Node object's addresses (probe6 P6)", async () => {
    writeFileSync(
      path.join(dir, 'np.yaml'),
      service('np', 'type: NodePort\n  clusterIP: 10.96.0.2\n  ports: [{name: http, port: 80, nodePort: 31000}]'),
    );
    try {
      const r = await sb('plan', '--manifests', dir, '--node', 'node-b', '--nodeport-addresses', 'primary');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('-A -t 192.0.2.11:31000 -s rr\n');
      const mixed = await sb(
        'plan',
        '--manifests',
        dir,
        '--node',
        'node-b',
        '--nodeport-addresses',
        'primary,10.0.0.0/8',
      );
      expect(mixed.code).toBe(2);
      expect(mixed.stderr).toMatch(/nodePortAddresses: "primary" must be the only entry/);
    } finally {
      rmSync(path.join(dir, 'np.yaml'));
    }
  });

  it('exits 1 with --strict when something was rejected', async () => {
    const r = await sb('plan', '--manifests', dir, '--node', 'node-a', '--strict');
    expect(r.code).toBe(1);
  });

  it('says which Service lost a VIP:port claim, and --strict fails on it (review3 K1)', async () => {
    const claims = mkdtempSync(path.join(tmpdir(), 'sb-plan-claims-'));
    try {
      writeFileSync(path.join(claims, 'nodes.yaml'), NODES);
      writeFileSync(
        path.join(claims, 'svc.yaml'),
        service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]') +
          // "a" sorts before "web": name order alone would hand it web's cluster IP
          service('a', 'clusterIP: 10.96.0.9\n  externalIPs: [10.96.0.1]\n  ports: [{name: http, port: 80}]'),
      );
      const args = ['plan', '--manifests', claims, '--node', 'node-a'];
      const r = await sbIn(args); // in-process: spawning costs seconds
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('-A -t 10.96.0.1:80 -s rr\n-A -t 10.96.0.9:80 -s rr\n');
      expect(r.stderr).toBe(
        'rejected Service default/a (VIP claims): external-ip claim on TCP/10.96.0.1:80 (port http) lost to default/web:http (cluster-ip)\n',
      );
      expect((await sbIn([...args, '--strict'])).code).toBe(1);
    } finally {
      rmSync(claims, { recursive: true, force: true });
    }
  });

  it('prints ipset save and json forms', async () => {
    const ipset = await sb('plan', '--manifests', dir, '--node', 'node-a', '--format', 'ipset');
    expect(ipset.stdout).toContain('add KUBE-CLUSTER-IP 10.96.0.1,tcp:80\n');
    const json = await sb('plan', '--manifests', dir, '--node', 'node-a', '--format', 'json');
    expect(JSON.parse(json.stdout).virtualServers[0].address).toBe('10.96.0.1');
  });

  it('exits 2 on usage errors, a missing directory too, one line on stderr', async () => {
    const usage = await sb('plan', '--node', 'node-a');
    expect(usage.code).toBe(2);
    const nope = path.join(dir, 'nope');
    const missing = await sbIn(['plan', '--manifests', nope, '--node', 'node-a']); // in-process: spawning costs seconds
    expect(missing).toEqual({
      code: 2,
      stdout: '',
      stderr: `error: option '--manifests <dir>' argument '${nope}' is invalid. no such directory.\n`,
    });
    const fmt = await sbIn(['plan', '--manifests', dir, '--node', 'node-a', '--format', 'xml']);
    expect(fmt.code).toBe(2);
    expect(fmt.stderr).toMatch(/unknown --format xml/);
  });

  it('refuses a node the manifests do not list (exit 2, one line naming --node)', async () => {
    const node = await sbIn(['plan', '--manifests', dir, '--node', 'node-x']); // in-process: spawning costs seconds
    expect(node).toMatchObject({ code: 2, stdout: '' });
    expect(node.stderr).toMatch(/^switchboard: --node node-x: no Node of that name in .* \(nodes: node-a, node-b\)\n$/);
  });
});
