// Migration from kube-proxy's nftables mode to Switchboard's, and back, on a real kernel in
// namespaces this test makes (support/netns-lab.ts), with traffic running through the switch:
//  1. the node holds what kube-proxy's nftables mode programs (tables ip/ip6 kube-proxy) for a
//     NodePort Service and for a Service Switchboard will not render, plus a foreign table;
//  2. requests to the ClusterIP and the NodePort run in a loop while
//     `switchboard apply --once --mode nftables --take-over-kube-proxy` programs our table and,
//     only after it verified, deletes kube-proxy's two tables: no request may fail;
//  3. kube-proxy's tables are gone (with the Service we do not render), the foreign table stays;
//  4. back: `switchboard cleanup --mode nftables` removes our table only, and kube-proxy's ruleset
//     loads again and serves (a node kube-proxy can take).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNs, NetnsLab, tally, type Client, type Pod, type Reply } from './support/netns-lab.ts';
import { kubeProxyNftRuleset, type KubeProxyService } from './support/kube-proxy-nft.ts';

const lab = new NetnsLab();
let a: Pod, b: Pod, client: Client;
let manifests: string;
const FOREIGN =
  'table inet foreign-fw {\n\tchain forwarded {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tcounter\n\t}\n}\n';

function kubeProxyServices(): KubeProxyService[] {
  const endpoints = [a, b].map((p) => ({ ip: p.ip, port: 8080 }));
  return [
    {
      namespace: 'default',
      name: 'web',
      portName: 'http',
      clusterIP: '10.96.0.10',
      port: 80,
      nodePort: 30080,
      endpoints,
    },
    // a Service that no longer exists in the cluster, still programmed by kube-proxy
    {
      namespace: 'default',
      name: 'stale',
      portName: 'http',
      clusterIP: '10.96.0.99',
      port: 80,
      endpoints: endpoints.slice(0, 1),
    },
  ];
}

beforeAll(async () => {
  await lab.start();
  [a, b] = [await lab.addPod('web-a'), await lab.addPod('web-b')];
  client = await lab.addClient();
  manifests = mkdtempSync(path.join(tmpdir(), 'sb-migrate-'));
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
  - {addresses: [${a.ip}], nodeName: node-a, conditions: {ready: true}}
  - {addresses: [${b.ip}], nodeName: node-a, conditions: {ready: true}}
`,
  );
  await inNs(lab.node, 'nft', ['-f', '-'], FOREIGN);
  await inNs(lab.node, 'nft', ['-f', '-'], kubeProxyNftRuleset(kubeProxyServices()));
});
afterAll(async () => {
  await lab.cleanup();
  if (manifests) rmSync(manifests, { recursive: true, force: true });
});

/** Runs `switchboard ARGS` inside the node namespace. */
function switchboard(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', lab.node, 'bin/switchboard', ...args], {
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

const tables = async () => (await inNs(lab.node, 'nft', ['list', 'tables'])).trim().split('\n').sort();

/** Requests to the ClusterIP and the NodePort, round after round, until `until` settles. */
async function trafficDuring(
  until: Promise<unknown>,
): Promise<{ clusterIP: (Reply | null)[]; nodePort: (Reply | null)[]; rounds: number }> {
  let done = false;
  void until.finally(() => {
    done = true;
  });
  const out = { clusterIP: [] as (Reply | null)[], nodePort: [] as (Reply | null)[], rounds: 0 };
  do {
    out.clusterIP.push(...(await lab.probe(client.ns, 'tcp', '10.96.0.10', 80, 4, 3000)));
    out.nodePort.push(...(await lab.probe(client.ns, 'tcp', client.nodeIp, 30080, 4, 3000)));
    out.rounds++;
  } while (!done);
  return out;
}

describe('migration from kube-proxy (nftables mode) and back, in a network namespace', () => {
  it("kube-proxy's tables serve before the switch (the starting point is real)", async () => {
    expect(await tables()).toEqual(['table inet foreign-fw', 'table ip kube-proxy', 'table ip6 kube-proxy']);
    expect(Object.keys(tally(await lab.probe(client.ns, 'tcp', '10.96.0.10', 80, 30))).sort()).toEqual([
      'web-a',
      'web-b',
    ]);
    expect(tally(await lab.probe(client.ns, 'tcp', '10.96.0.99', 80, 3))).toEqual({ 'web-a': 3 });
  });

  it("take-over: ours first, then kube-proxy's tables removed, no request fails", async () => {
    const applied = switchboard([
      'apply',
      '--manifests',
      manifests,
      '--node',
      'node-a',
      '--mode',
      'nftables',
      '--once',
      '--take-over-kube-proxy',
      '--json',
    ]);
    const traffic = await trafficDuring(applied);
    const r = await applied;
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { verified: boolean; notes: string[] };
    expect(summary.verified).toBe(true);
    expect(summary.notes).toContain("take-over: removed kube-proxy's tables ip kube-proxy, ip6 kube-proxy");
    // and more rounds now that only our table serves
    const after = await trafficDuring(Promise.resolve());
    const all = [...traffic.clusterIP, ...traffic.nodePort, ...after.clusterIP, ...after.nodePort];
    expect(all.filter((x) => x === null)).toEqual([]);
    expect(all.length).toBeGreaterThanOrEqual(16);
    expect(Object.keys(tally(after.clusterIP)).length).toBeGreaterThan(0);
    expect(await tables()).toEqual(['table inet foreign-fw', 'table inet switchboard']);
    // the Service kube-proxy had and we do not render is gone with its table
    expect(await lab.probe(client.ns, 'tcp', '10.96.0.99', 80, 2, 1000)).toEqual([null, null]);
    // served by ours: spread over both endpoints
    expect(Object.keys(tally(await lab.probe(client.ns, 'tcp', '10.96.0.10', 80, 30))).sort()).toEqual([
      'web-a',
      'web-b',
    ]);
  }, 180_000);

  it('a second take-over run finds nothing of kube-proxy and writes nothing', async () => {
    const r = await switchboard([
      'apply',
      '--manifests',
      manifests,
      '--node',
      'node-a',
      '--mode',
      'nftables',
      '--once',
      '--take-over-kube-proxy',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      verified: true,
      writes: 0,
      notes: expect.arrayContaining(['take-over: no kube-proxy tables present']),
    });
  }, 120_000);

  it('back: cleanup removes only our table, and kube-proxy can take the node again', async () => {
    const r = await switchboard(['cleanup', '--mode', 'nftables', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await tables()).toEqual(['table inet foreign-fw']);
    expect(await lab.probe(client.ns, 'tcp', '10.96.0.10', 80, 2, 1000)).toEqual([null, null]); // nothing proxies now
    await inNs(lab.node, 'nft', ['-f', '-'], kubeProxyNftRuleset(kubeProxyServices()));
    expect(Object.keys(tally(await lab.probe(client.ns, 'tcp', '10.96.0.10', 80, 30))).sort()).toEqual([
      'web-a',
      'web-b',
    ]);
    expect(Object.keys(tally(await lab.probe(client.ns, 'tcp', client.nodeIp, 30080, 30))).sort()).toEqual([
      'web-a',
      'web-b',
    ]);
  }, 120_000);
});
