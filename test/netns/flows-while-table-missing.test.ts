// probe22 T4: connection attempts made while our table was missing (`nft flush ruleset`, a firewall
// reload, the table deleted) are not NATed, and when conntrack is active meanwhile (here: a
// firewall table of the node's own that uses it) it keeps them so after the table is back: a UDP
// flow stays unanswered for as long as it keeps sending, and a TCP 5-tuple stays black-holed for
// its SYN_SENT entry's 120 s, refreshed by every reuse (measured with ~190 new connections/s: the 4
// source ports that timed out in a 0.45 s flush failed every time they were reused, 100 s on).
// The repair (a resync, or a restarted applier's first apply) clears those entries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NftablesDataplane } from '../../libs/dataplane/index.ts';
import { nodeState, type VsSpec } from './support/node-state-builder.ts';
import { inNs, NetnsLab, tally, type Client, type Pod } from './support/netns-lab.ts';

const lab = new NetnsLab();
let a: Pod, client: Client;
const services = (): VsSpec[] => [
  { servicePort: 'default/web:http', address: '10.96.0.10', port: 80, endpoints: [`${a.ip}:8080`] },
  { servicePort: 'default/dns:dns', address: '10.96.0.53', port: 53, protocol: 'UDP', endpoints: [`${a.ip}:8080`] },
];
const FIREWALL =
  'table inet node-fw {\n\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state invalid drop\n\t}\n}\n';

beforeAll(async () => {
  await lab.start();
  a = await lab.addPod('web-a');
  client = await lab.addClient();
  await inNs(lab.node, 'nft', ['-f', '-'], FIREWALL);
  // the service range routed on (a node's default route): without our table, service traffic is
  // forwarded out unanswered, and conntrack records it un-NATed
  await inNs(lab.node, 'ip', ['route', 'add', '10.96.0.0/16', 'via', client.ip]);
});
afterAll(async () => {
  await new NftablesDataplane({ netns: lab.node }).cleanup().catch(() => undefined);
  await lab.cleanup();
});

/** One TCP connection from `localPort`: the pod that answered, or null (none within 600 ms). */
async function tcpFrom(localPort: number): Promise<string | null> {
  const script = `
    const s = require('node:net').connect({ host: '10.96.0.10', port: 80, localPort: ${localPort} });
    const done = (v) => { clearTimeout(t); s.destroy(); console.log(JSON.stringify(v)); };
    const t = setTimeout(() => done(null), 600);
    let buf = '';
    s.on('data', (d) => { buf += d; });
    s.on('end', () => done(buf.trim().split(' ')[0] || null));
    s.on('error', () => done(null));`;
  return JSON.parse(await inNs(client.ns, process.execPath, ['-e', script])) as string | null;
}

describe('connection attempts made while the nftables table was missing', () => {
  it.each([
    ['a resync repairs the table', 45000],
    ['a restarted applier reloads it', 45100],
  ])('are NATed again once %s', async (how, port) => {
    const d = new NftablesDataplane({ netns: lab.node });
    await d.apply(nodeState(services()));
    expect(await tcpFrom(port)).toBe('web-a');
    await inNs(lab.node, 'nft', ['delete', 'table', 'inet', 'switchboard']);
    // while it is missing: a connection attempt and a UDP flow, both unanswered
    expect(await tcpFrom(port + 1)).toBe(null);
    expect(await lab.probe(client.ns, 'udp', '10.96.0.53', 53, 1, 300, port + 2)).toEqual([null]);
    const r = how.includes('resync')
      ? await d.resync()
      : await new NftablesDataplane({ netns: lab.node }).apply(nodeState(services()));
    expect(r.kernelWrites).toBeGreaterThan(0);
    expect(r.notes).toContain(
      'conntrack: cleared the entries of 2 stale flow(s), 1 of them un-NATed TCP connection attempts',
    );
    // before: the same 5-tuples matched their un-NATed entries: no answer
    expect(await tcpFrom(port + 1)).toBe('web-a');
    expect(tally(await lab.probe(client.ns, 'udp', '10.96.0.53', 53, 2, 1000, port + 2))).toEqual({ 'web-a': 2 });
    await d.cleanup();
  });
});
