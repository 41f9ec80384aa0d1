// probe22 T1: a UDP flow NATed to an endpoint that was removed while the applier was down (or
// killed mid-apply) must move once the restarted applier programs the new endpoints, as when it
// runs throughout (nftables-dataplane.test.ts). The restarted applier is a new NftablesDataplane
// that adopts the table and knows no last state; it filters the conntrack table instead.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NftablesDataplane } from '../../libs/dataplane/index.ts';
import { nodeState, type VsSpec } from './support/node-state-builder.ts';
import { NetnsLab, tally, type Client, type Pod } from './support/netns-lab.ts';

const lab = new NetnsLab();
let a: Pod, b: Pod, client: Client;
const ep = (p: Pod) => `${p.ip}:8080`;
const dns = (endpoints: string[]): VsSpec => ({
  servicePort: 'default/dns:dns',
  address: '10.96.0.53',
  port: 53,
  protocol: 'UDP',
  endpoints,
});
const web = (endpoints: string[]): VsSpec => ({
  servicePort: 'default/web:http',
  address: '10.96.0.10',
  port: 80,
  endpoints,
});

beforeAll(async () => {
  await lab.start();
  [a, b] = [await lab.addPod('web-a'), await lab.addPod('web-b')];
  client = await lab.addClient();
});
afterAll(async () => {
  await new NftablesDataplane({ netns: lab.node }).cleanup().catch(() => undefined);
  await lab.cleanup();
});

describe('a restarted nftables applier and the UDP flows of endpoints removed while it was down', () => {
  it('clears the flow NATed to the removed endpoint: the flow moves to the remaining one', async () => {
    await new NftablesDataplane({ netns: lab.node }).apply(nodeState([dns([ep(b)]), web([ep(a)])]));
    // one flow (fixed source port), NATed to b; and a flow to a that stays valid
    expect(tally(await lab.probe(client.ns, 'udp', '10.96.0.53', 53, 3, 1000, 40053))).toEqual({ 'web-b': 3 });
    // the applier stops; b leaves the service (its pod still answers); a new applier starts
    const restarted = new NftablesDataplane({ netns: lab.node });
    const r = await restarted.apply(nodeState([dns([ep(a)]), web([ep(a)])]));
    expect(r.notes).toContain('adopted existing table');
    expect(r.notes).toContain('conntrack: cleared the entries of 1 stale UDP/SCTP flow(s)');
    // before: the entry kept NATing the flow to b for as long as the client kept sending
    expect(tally(await lab.probe(client.ns, 'udp', '10.96.0.53', 53, 3, 1000, 40053))).toEqual({ 'web-a': 3 });
    // a flow to an endpoint still there is kept: another restart clears nothing
    const again = await new NftablesDataplane({ netns: lab.node }).apply(nodeState([dns([ep(a)]), web([ep(a)])]));
    expect(again.notes.filter((n) => n.startsWith('conntrack:'))).toEqual([]);
  });
});
