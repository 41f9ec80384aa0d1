// Migration from kube-proxy's ipvs mode, in the VM (IPVS is not in the host kernel). The node
// netns first holds what kube-proxy's ipvs mode programs (built with ipvsadm -R, ipset restore,
// addresses on kube-ipvs0 and iptables-restore, in kube-proxy's formats) for a NodePort Service
// and for a Service that no longer exists, next to foreign objects. While requests to the
// ClusterIP and the NodePort run in a loop, `switchboard apply --once --mode ipvs
// --take-over-kube-proxy` adopts what matches its own state and then removes what kube-proxy had
// and it does not render: no request may fail, foreign objects stay. Then back: `cleanup` leaves
// a node kube-proxy's state loads onto and serves from.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn, NetnsLab, tcpRequest, type ClientNs, type NodeNs, type PodNs } from '../support/netns.ts';

const lab = new NetnsLab();
let node: NodeNs, client: ClientNs, pods: PodNs[];
const dir = mkdtempSync(path.join(tmpdir(), 'sb-migrate-ipvs-'));
const manifests = path.join(dir, 'manifests');
const stateDir = path.join(dir, 'state');

function kubeProxyIpvs(): string {
  const rs = (vip: string, ps: PodNs[]) => ps.map((p) => `-a -t ${vip} -r ${p.ip}:8080 -m -w 1`);
  return (
    [
      '-A -t 10.96.0.10:80 -s rr',
      ...rs('10.96.0.10:80', pods),
      `-A -t ${client.nodeIp}:30080 -s rr`,
      ...rs(`${client.nodeIp}:30080`, pods),
      '-A -t 10.96.0.99:80 -s rr',
      ...rs('10.96.0.99:80', pods.slice(0, 1)),
    ].join('\n') + '\n'
  );
}
const KUBE_PROXY_IPSETS = `create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
add KUBE-CLUSTER-IP 10.96.0.10,tcp:80
add KUBE-CLUSTER-IP 10.96.0.99,tcp:80
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
add KUBE-NODE-PORT-TCP 30080
create KUBE-IPVS-IPS hash:ip family inet hashsize 1024 maxelem 65536
add KUBE-IPVS-IPS 10.96.0.10
add KUBE-IPVS-IPS 10.96.0.99
create KUBE-6-CLUSTER-IP hash:ip,port family inet6 hashsize 1024 maxelem 65536
`;
const KUBE_PROXY_IPTABLES = `*mangle
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-CANARY - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-NODE-PORT -p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:FOREIGN-FW - [0:0]
-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT
-A OUTPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -j FOREIGN-FW
-A FOREIGN-FW -p tcp --dport 9 -j DROP
-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
`;

async function loadKubeProxyState(): Promise<void> {
  for (const vip of ['10.96.0.10', '10.96.0.99'])
    await execIn(node.ns, ['ip', 'addr', 'add', `${vip}/32`, 'dev', 'kube-ipvs0']);
  await execIn(node.ns, ['ipset', 'restore', '-exist'], { input: KUBE_PROXY_IPSETS });
  await execIn(node.ns, ['ipvsadm', '-R'], { input: kubeProxyIpvs() });
  await execIn(node.ns, ['iptables-restore', '--noflush'], { input: KUBE_PROXY_IPTABLES });
}

beforeAll(async () => {
  node = await lab.addNode();
  pods = [await lab.addPod(node, { name: 'web-a' }), await lab.addPod(node, { name: 'web-b' })];
  client = await lab.addClient(node);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(manifests);
  mkdirSync(stateDir);
  writeFileSync(
    path.join(manifests, 'cluster.yaml'),
    `
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: ${client.nodeIp}}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080, nodePort: 30080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
${pods.map((p) => `  - {addresses: [${p.ip}], nodeName: node-a, conditions: {ready: true}}`).join('\n')}
`,
  );
  // foreign objects that must survive both directions
  await execIn(node.ns, ['ipvsadm', '-A', '-u', '10.200.0.1:7000', '-s', 'rr']);
  await execIn(node.ns, ['ipset', 'create', 'FOREIGN-SET', 'hash:ip']);
  await loadKubeProxyState();
});
afterAll(async () => {
  await lab.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function switchboard(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', node.ns, 'bin/switchboard', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => {
      stdout += d;
    });
    c.stderr.on('data', (d) => {
      stderr += d;
    });
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

// A generous timeout: under TCG a bash client can take seconds to start while the applier runs.
const failures: string[] = [];
const ask = (ip: string, port: number) => {
  const t0 = Date.now();
  return tcpRequest(client.ns, ip, port, { timeoutMs: 30_000 }).then(
    (r) => r.pod,
    (e: Error) => {
      failures.push(`${ip}:${port} after ${Date.now() - t0} ms: ${e.message.slice(0, 300)}`);
      return null;
    },
  );
};
const ipvs = async () =>
  (await execIn(node.ns, ['ipvsadm', '-Sn']))
    .split('\n')
    .filter((l) => l.startsWith('-A '))
    .sort();
const runEstimation = async () => (await execIn(node.ns, ['cat', '/proc/sys/net/ipv4/vs/run_estimation'])).trim();
const vips = async () =>
  [...(await execIn(node.ns, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'kube-ipvs0'])).matchAll(/inet (\S+?)\//g)]
    .map((m) => m[1])
    .sort();

describe('migration from kube-proxy (ipvs mode) and back, in the VM', () => {
  it("takes the node over with no failed request, removes kube-proxy's leftovers, keeps foreign objects", async () => {
    expect(await ask('10.96.0.99', 80)).toBe('web-a'); // kube-proxy's stale Service serves before
    // (kube-proxy never sets it: the kernel's default; the apply below turns the estimators off)
    expect(await runEstimation()).toBe('1');
    const applied = switchboard([
      'apply',
      '--manifests',
      manifests,
      '--node',
      'node-a',
      '--mode',
      'ipvs',
      '--once',
      '--take-over-kube-proxy',
      '--ipvs-rate-estimation',
      'off',
      '--state-dir',
      stateDir,
      '--json',
    ]);
    let done = false;
    void applied.finally(() => {
      done = true;
    });
    const answers: (string | null)[] = [];
    do {
      answers.push(await ask('10.96.0.10', 80), await ask(client.nodeIp, 30080));
    } while (!done);
    const r = await applied;
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { verified: boolean; notes: string[] };
    expect(summary.verified).toBe(true);
    expect(summary.notes.join('\n')).toMatch(
      /take-over: removed kube-proxy's 1 IPVS services, 1 kube-ipvs0 addresses, \d+ chains, 1 ipsets/,
    );
    answers.push(await ask('10.96.0.10', 80), await ask(client.nodeIp, 30080));
    expect(failures, `${answers.length} requests`).toEqual([]);
    expect(answers.filter((x) => x === null)).toEqual([]);
    expect(answers.length).toBeGreaterThanOrEqual(4);
    expect(await ipvs()).toEqual(
      [`-A -t ${client.nodeIp}:30080 -s rr`, '-A -t 10.96.0.10:80 -s rr', '-A -u 10.200.0.1:7000 -s rr'].sort(),
    );
    expect(await vips()).toEqual(['10.96.0.10']);
    expect(await runEstimation()).toBe('0'); // in this node's netns only: the VM's own netns keeps 1
    expect(readFileSync('/proc/sys/net/ipv4/vs/run_estimation', 'utf8').trim()).toBe('1');
    const save = await execIn(node.ns, ['iptables-save']);
    expect(save).not.toMatch(/KUBE-PROXY-CANARY|KUBE-IPVS-OUT-FILTER/);
    const filter = save.slice(save.indexOf('*filter'));
    expect(filter.slice(0, filter.indexOf('COMMIT'))).not.toContain(':KUBE-NODE-PORT '); // nat has ours of that name
    expect(save).toContain('-A FORWARD -j FOREIGN-FW');
    expect(save).toContain('-A FOREIGN-FW -p tcp -m tcp --dport 9 -j DROP');
    const sets = (await execIn(node.ns, ['ipset', 'list', '-n'])).split('\n');
    expect(sets).toContain('FOREIGN-SET');
    expect(sets).not.toContain('KUBE-6-CLUSTER-IP');
    expect(await ask('10.96.0.99', 80)).toBe(null); // the Service we do not render is gone
    failures.length = 0;
  }, 600_000);

  it("back: cleanup removes ours only, and kube-proxy's state loads and serves again", async () => {
    const r = await switchboard(['cleanup', '--mode', 'ipvs', '--node', 'node-a', '--state-dir', stateDir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await ipvs()).toEqual(['-A -u 10.200.0.1:7000 -s rr']);
    expect((await execIn(node.ns, ['ipset', 'list', '-n'])).split('\n')).toContain('FOREIGN-SET');
    await execIn(node.ns, ['ip', 'addr', 'flush', 'dev', 'kube-ipvs0']);
    await loadKubeProxyState();
    expect(await ask('10.96.0.10', 80)).not.toBe(null);
    expect(await ask(client.nodeIp, 30080)).not.toBe(null);
    expect(await ask('10.96.0.99', 80)).toBe('web-a');
  }, 600_000);
});
