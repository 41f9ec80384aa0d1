// externalTrafficPolicy Local in nftables mode, with real traffic (probe6 P2): as kube-proxy's
// nftables mode, traffic from pods (clusterCIDR) and from the node itself to a Local service's
// NodePort / LB IP goes to the cluster-wide endpoints ("short-circuit"), traffic from outside
// only to this node's endpoints (none here: dropped). The state is rendered from manifests by
// the planner's renderer, as every node renders it; "remote" pods are lab pods whose slice says
// they run on node-b. Namespaces and servers are the lab's own, removed in afterAll.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NftablesDataplane } from '../../libs/dataplane/index.ts';
import { planFor, service, slice } from '../support/plan-fixture.ts';
import { inNs, NetnsLab, POD_GATEWAY, tally, type Client, type Pod } from './support/netns-lab.ts';

const lab = new NetnsLab();
let local: Pod, remote: Pod, client: Client;
let dp: NftablesDataplane | undefined;
const LB_REM = '192.0.2.70';
const LB_LOC = '192.0.2.71';

beforeAll(async () => {
  await lab.start();
  [local, remote] = [await lab.addPod('local'), await lab.addPod('remote')];
  client = await lab.addClient();
  // The node's own traffic to an LB IP needs a route before nat output may rewrite it.
  await inNs(lab.node, 'ip', ['route', 'add', 'default', 'via', client.ip]);
  const manifests =
    `
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: ${client.nodeIp}}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
status: {addresses: [{type: InternalIP, address: 192.0.2.11}]}
` +
    lb('rem', '10.96.0.70', 30070, LB_REM) +
    slice('rem', '[{name: http, port: 8080}]', [ep(remote, 'node-b')]) +
    lb('loc', '10.96.0.71', 30071, LB_LOC) +
    slice('loc', '[{name: http, port: 8080}]', [ep(local, 'node-a'), ep(remote, 'node-b')]);
  const { state, rejected } = planFor(manifests, 'node-a', { mode: 'nftables', clusterCIDR: '10.77.1.0/24' });
  expect(rejected).toEqual([]);
  dp = new NftablesDataplane({ netns: lab.node });
  expect((await dp.apply(state)).verified).toBe(true);
});
afterAll(async () => {
  await dp?.cleanup();
  await lab.cleanup();
});

const ep = (p: Pod, node: string) => `{addresses: [${p.ip}], nodeName: ${node}, conditions: {ready: true}}`;
const lb = (name: string, clusterIP: string, nodePort: number, ip: string) =>
  service(
    name,
    `type: LoadBalancer\n  clusterIP: ${clusterIP}\n  externalTrafficPolicy: Local\n  ports: [{name: http, port: 80, nodePort: ${nodePort}}]`,
    `status: {loadBalancer: {ingress: [{ip: ${ip}}]}}`,
  );
const who = (replies: readonly ({ pod: string; peer: string } | null)[]) =>
  [...new Set(replies.map((r) => (r ? `${r.pod} saw ${r.peer}` : 'no answer')))].sort();

describe('externalTrafficPolicy Local without a local endpoint (nftables, real traffic)', () => {
  it('a pod reaches the LB IP and the NodePort: the remote endpoint answers, unmasqueraded', async () => {
    expect(who(await lab.probe(local.ns, 'tcp', LB_REM, 80, 3))).toEqual([`remote saw ${local.ip}`]);
    expect(who(await lab.probe(local.ns, 'tcp', client.nodeIp, 30070, 3))).toEqual([`remote saw ${local.ip}`]);
  });

  it('the node itself reaches the LB IP and the NodePort, masqueraded', async () => {
    expect(who(await lab.probe(lab.node, 'tcp', LB_REM, 80, 3))).toEqual([`remote saw ${POD_GATEWAY}`]);
    expect(who(await lab.probe(lab.node, 'tcp', client.nodeIp, 30070, 3))).toEqual([`remote saw ${POD_GATEWAY}`]);
  });

  it('a client outside the cluster gets no answer on either address', async () => {
    expect(who(await lab.probe(client.ns, 'tcp', LB_REM, 80, 2, 500))).toEqual(['no answer']);
    expect(who(await lab.probe(client.ns, 'tcp', client.nodeIp, 30070, 2, 500))).toEqual(['no answer']);
  });
});

describe('externalTrafficPolicy Local with a local endpoint (nftables, real traffic)', () => {
  it('outside clients reach only the local endpoint, with their address kept', async () => {
    expect(who(await lab.probe(client.ns, 'tcp', LB_LOC, 80, 12))).toEqual([`local saw ${client.ip}`]);
  });

  it('pods and the node itself spread over the cluster-wide endpoints', async () => {
    const fromPod = tally(await lab.probe(remote.ns, 'tcp', LB_LOC, 80, 30));
    expect(Object.keys(fromPod).sort()).toEqual(['local', 'remote']);
    const fromNode = tally(await lab.probe(lab.node, 'tcp', client.nodeIp, 30071, 30));
    expect(Object.keys(fromNode).sort()).toEqual(['local', 'remote']);
  });
});
