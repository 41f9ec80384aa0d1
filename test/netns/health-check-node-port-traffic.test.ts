// A load balancer's health check against an nftables-mode node, with real processes and real
// traffic (kube-proxy's pkg/proxy/healthcheck): nats-server and the planner (--manifests) in the
// LAN namespace, `switchboard applier --mode nftables` in the node's namespace, and HTTP GETs from
// the LAN namespace (where a load balancer would probe from) to the node's address on the
// Service's healthCheckNodePort and on :10256; the config's nodePortAddresses selects one of the
// node's two addresses, so only that one answers. The node's nftables table is loaded meanwhile, so
// this also shows it lets the probes through. See support/rollout-lab.ts for the topology; the
// lab removes its processes (by PID), namespaces and files in afterAll.
import { renameSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { inNs } from './support/netns-lab.ts';
import { NATS_URL, RolloutLab } from './support/rollout-lab.ts';

const ECHO_CLIENT = fileURLToPath(new URL('./support/echo-client.mjs', import.meta.url));
const lab = new RolloutLab();
const HC_PORT = 32100;
/** A second address of the node, outside the config's nodePortAddresses. */
const OTHER_IP = '10.231.0.111';
const NODE_PORT = 30100;

/** The cluster: node-1, and an ETP=Local LoadBalancer whose one endpoint runs on `endpointNode`. */
const manifests = (endpointNode: string) => {
  const n = lab.nodes[0]!;
  return `apiVersion: v1
kind: Node
metadata: {name: ${n.name}}
status: {addresses: [{type: InternalIP, address: ${n.ip}}, {type: ExternalIP, address: ${OTHER_IP}}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  clusterIP: 10.100.0.50
  clusterIPs: [10.100.0.50]
  externalTrafficPolicy: Local
  healthCheckNodePort: ${HC_PORT}
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: ${NODE_PORT}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints: [{addresses: [${n.podIp}], conditions: {ready: true}, nodeName: ${endpointNode}}]
`;
};

/** Replaced whole by rename, as kubectl-style tools and editors do (the planner's source sees it). */
function writeCluster(dir: string, endpointNode: string): void {
  const tmp = join(dir, '.cluster.yaml.tmp');
  writeFileSync(tmp, manifests(endpointNode));
  renameSync(tmp, join(dir, 'cluster.yaml'));
}

/** An HTTP GET from the LAN namespace with curl: status and body, or 'no answer' (refused, timed out). */
async function probe(
  port: number,
  path = '/',
  host = lab.nodes[0]!.ip,
): Promise<{ status: number; body: any } | 'no answer'> {
  const url = `http://${host}:${port}${path}`;
  try {
    const out = await inNs(lab.lan, 'curl', ['-s', '--max-time', '2', '-w', '\n%{http_code}', url]);
    const nl = out.lastIndexOf('\n');
    return { status: Number(out.slice(nl + 1)), body: JSON.parse(out.slice(0, nl)) };
  } catch {
    return 'no answer';
  }
}

/** Polls until `ok` holds (processes starting on a loaded 2-core machine: a generous bound, no fixed sleep). */
async function until<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end)
      throw new Error(
        `${what}: still ${JSON.stringify(v)}\n--- planner ---\n${lab.log('planner').slice(-2000)}\n--- applier ---\n${lab.log('applier').slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 300));
  }
}
const answered = (status: number) => (v: Awaited<ReturnType<typeof probe>>) => v !== 'no answer' && v.status === status;

let dir = '';
beforeAll(async () => {
  await lab.start(['node-1']);
  await inNs(lab.nodes[0]!.ns, 'ip', ['addr', 'add', `${OTHER_IP}/24`, 'dev', 'eth0']);
  dir = join(lab.work, 'manifests');
  mkdirSync(dir);
  writeCluster(dir, 'node-1');
  // NodePorts and health check node ports on the InternalIP only (kube-proxy's nodePortAddresses)
  writeFileSync(join(lab.work, 'config.yaml'), `mode: nftables\nnodePortAddresses: [${lab.nodes[0]!.ip}/32]\n`);
  lab.startNats();
  lab.startPlanner(dir, join(lab.work, 'config.yaml'));
  const n = lab.nodes[0]!;
  // health check node ports are on by default outside dry-run; :10256 is kube-proxy's default address
  lab.switchboard(n.ns, 'applier', [
    'applier',
    '--node',
    n.name,
    '--nats',
    NATS_URL,
    '--mode',
    'nftables',
    '--state-dir',
    join(lab.work, 'state'),
    '--heartbeat',
    '500',
    '--planner-key',
    join(lab.work, 'log.db.signing-key.pem.pub'),
  ]);
}, 120_000);
afterAll(async () => {
  await lab.cleanup();
}, 60_000);

describe('health check node port, nftables mode, real traffic from another namespace', () => {
  it('200 with the local endpoint count while the node has one, only on the address nodePortAddresses selects; 503 once it has none; :10256/healthz 200', async () => {
    const up = await until('200 on the health check node port', () => probe(HC_PORT), answered(200));
    expect(up).toEqual({
      status: 200,
      body: { service: { namespace: 'default', name: 'web' }, localEndpoints: 1, serviceProxyHealthy: true },
    });
    // the node runs the nftables table of that version: the Service's NodePort reaches the pod
    expect(await inNs(lab.nodes[0]!.ns, 'nft', ['list', 'tables'])).toMatch(/table inet switchboard/);
    const viaNodePort = await inNs(lab.lan, process.execPath, [
      ECHO_CLIENT,
      'tcp',
      lab.nodes[0]!.ip,
      `${NODE_PORT}`,
      '1',
      '2000',
    ]);
    expect(JSON.parse(viaNodePort)).toEqual([expect.stringMatching(/^pod-node-1 /)]);
    expect(await probe(10256, '/healthz')).toMatchObject({ status: 200, body: { nodeEligible: true } });
    // not on the node's address that nodePortAddresses leaves out (neither is the NodePort)
    expect(await probe(HC_PORT, '/', OTHER_IP)).toBe('no answer');

    // the endpoint moves to another node: this node turns the load balancer away
    writeCluster(dir, 'node-2');
    expect(await until('503 on the health check node port', () => probe(HC_PORT), answered(503))).toEqual({
      status: 503,
      body: { service: { namespace: 'default', name: 'web' }, localEndpoints: 0, serviceProxyHealthy: true },
    });
    expect(await probe(10256, '/healthz')).toMatchObject({ status: 200 }); // the proxier itself is fine
  }, 150_000);
});
