// probe22 T2: a service without endpoints must refuse every new TCP connection, not only the first
// few. The kernel rate-limits the ICMP errors a reject sends, per destination host
// (net.ipv4.icmp_ratelimit: a burst of 6, then one a second): a client opening connections faster
// than that got 6 refusals and then timeouts. TCP is answered with a reset, which is not limited.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NftablesDataplane } from '../../libs/dataplane/index.ts';
import { nodeState } from './support/node-state-builder.ts';
import { inNs, NetnsLab, type Client } from './support/netns-lab.ts';

const lab = new NetnsLab();
let client: Client;

beforeAll(async () => {
  await lab.start();
  await lab.addPod('web-a');
  client = await lab.addClient();
  // the service range routed on (as a node's default route does): without a route the node answers
  // "network unreachable" before the forward hook, and the reject is never reached
  await inNs(lab.node, 'ip', ['route', 'add', '10.96.0.0/16', 'via', client.ip]);
});
afterAll(async () => {
  await new NftablesDataplane({ netns: lab.node }).cleanup().catch(() => undefined);
  await lab.cleanup();
});

/** `n` TCP connections at once from the client namespace; each one's error code ('timeout': none within 2 s). */
async function connectAll(host: string, port: number, n: number): Promise<string[]> {
  const script = `
    const net = require('node:net');
    const one = () => new Promise((resolve) => {
      const s = net.connect({ host: ${JSON.stringify(host)}, port: ${port} });
      const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, 2000);
      s.on('connect', () => { clearTimeout(t); s.destroy(); resolve('connected'); });
      s.on('error', (e) => { clearTimeout(t); resolve(e.code); });
    });
    Promise.all(Array.from({ length: ${n} }, one)).then((r) => console.log(JSON.stringify(r)));`;
  return JSON.parse(await inNs(client.ns, process.execPath, ['-e', script])) as string[];
}

describe('a service without endpoints under a burst of new connections', () => {
  it('refuses every one of them, through the ClusterIP and the NodePort', async () => {
    const vs = [
      { servicePort: 'default/web:http', address: '10.96.0.10', port: 80, endpoints: [] },
      {
        servicePort: 'default/web:http',
        address: client.nodeIp,
        port: 30080,
        role: 'node-port' as const,
        endpoints: [],
      },
    ];
    await new NftablesDataplane({ netns: lab.node }).apply(nodeState(vs));
    // before: ['ECONNREFUSED' x6, 'timeout' x24] (the ICMP errors past the burst were not sent)
    expect(await connectAll('10.96.0.10', 80, 30)).toEqual(Array(30).fill('ECONNREFUSED'));
    expect(await connectAll(client.nodeIp, 30080, 30)).toEqual(Array(30).fill('ECONNREFUSED'));
  });

  it("an earlier release's reject-chain (ICMP only) is mended in place by a restarted applier", async () => {
    const vs = [{ servicePort: 'default/web:http', address: '10.96.0.10', port: 80, endpoints: [] }];
    await new NftablesDataplane({ netns: lab.node }).apply(nodeState(vs));
    await inNs(lab.node, 'nft', ['flush', 'chain', 'inet', 'switchboard', 'reject-chain']);
    await inNs(lab.node, 'nft', ['add', 'rule', 'inet', 'switchboard', 'reject-chain', 'reject']);
    const r = await new NftablesDataplane({ netns: lab.node }).apply(nodeState(vs));
    expect(r.notes.join('\n')).toMatch(/skeleton repaired in place \(.*reject-chain/);
    expect(await inNs(lab.node, 'nft', ['list', 'chain', 'inet', 'switchboard', 'reject-chain'])).toMatch(
      /meta l4proto tcp reject with tcp reset\n\s*reject\n/,
    );
    expect(await connectAll('10.96.0.10', 80, 30)).toEqual(Array(30).fill('ECONNREFUSED'));
  });
});
