// An externalIP that is another node's address, in nftables mode, with real traffic (probe6 P7):
// no node may capture it. Here "node-b" is a lab namespace on node-a's pod network whose address
// node-b's Node object lists, answering on 8080 as itself; a tenant's Service lists that address
// in externalIPs on port 8080. Before the fix every node but node-b DNATed the node's and its
// pods' connections to node-b:8080 to the tenant's pod. The state is rendered from manifests by
// the planner's renderer, as every node renders it. Namespaces and servers are the lab's own,
// removed in afterAll.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NftablesDataplane } from '../../libs/dataplane/index.ts';
import { planFor, service, slice } from '../support/plan-fixture.ts';
import { NetnsLab, type Pod } from './support/netns-lab.ts';

const lab = new NetnsLab();
let tenant: Pod, nodeB: Pod, other: Pod;
let dp: NftablesDataplane | undefined;
let conflicts: string[] = [];

beforeAll(async () => {
  await lab.start();
  [tenant, nodeB, other] = [await lab.addPod('tenant'), await lab.addPod('nodeb'), await lab.addPod('other')];
  const manifests =
    `
apiVersion: v1
kind: Node
metadata: {name: node-a}
status: {addresses: [{type: InternalIP, address: 192.0.2.10}]}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
status: {addresses: [{type: InternalIP, address: ${nodeB.ip}}]}
` +
    service('grab', `clusterIP: 10.96.0.80\n  externalIPs: [${nodeB.ip}]\n  ports: [{name: http, port: 8080}]`) +
    slice('grab', '[{name: http, port: 8080}]', [
      `{addresses: [${tenant.ip}], nodeName: node-a, conditions: {ready: true}}`,
    ]);
  const plan = planFor(manifests, 'node-a', { mode: 'nftables', clusterCIDR: '10.77.1.0/24' });
  conflicts = plan.conflicts;
  dp = new NftablesDataplane({ netns: lab.node });
  expect((await dp.apply(plan.state)).verified).toBe(true);
});
afterAll(async () => {
  await dp?.cleanup();
  await lab.cleanup();
});

const who = (replies: readonly ({ pod: string } | null)[]) =>
  [...new Set(replies.map((r) => (r ? r.pod : 'no answer')))].sort();

describe("externalIP equal to another node's address (nftables, real traffic)", () => {
  it('the node and its pods reach node-b itself on that port, not the tenant pod', async () => {
    expect(who(await lab.probe(lab.node, 'tcp', nodeB.ip, 8080, 3))).toEqual(['nodeb']);
    expect(who(await lab.probe(other.ns, 'tcp', nodeB.ip, 8080, 3))).toEqual(['nodeb']);
  });

  it("the Service's ClusterIP still works, and the rejection names the service, the address and node-b", async () => {
    expect(who(await lab.probe(other.ns, 'tcp', '10.96.0.80', 8080, 3))).toEqual(['tenant']);
    expect(conflicts).toContain(
      `Service default/grab: externalIP ${nodeB.ip} is the address of node node-b: served on no node (a Service may not take a node's address)`,
    );
  });
});
