import { fileURLToPath } from 'node:url';
import { type DemoResources, run, sleep } from './demo-resources.ts';
import { readFileSync, existsSync } from 'node:fs';

/**
 * The demo's network: a LAN namespace holding a bridge, three node namespaces and a client on it,
 * pods as namespaces behind their node, and one veth from the root namespace into the LAN so the
 * planner (root namespace) and nodes reach the same NATS address. Traffic between namespaces is
 * bridged inside the LAN namespace, away from the host's own firewall.
 *
 *   root  sb<id>up 10.99.0.1/24 ──┐
 *   node-a eth0 10.99.0.10/24  ───┤  bridge br0 in <p>-lan
 *   node-b eth0 10.99.0.11/24  ───┤
 *   node-c eth0 10.99.0.12/24  ───┤
 *   client eth0 10.99.0.100/24 ───┘  (route to the ClusterIP range via node-a)
 *   pod   eth0 10.50.K.N/32 ── node vpN (gateway 10.50.K.1); nodes route 10.50.K.0/24 via node K
 */
export const HOST_IP = '10.99.0.1';
export const CLIENT_IP = '10.99.0.100';
export const SERVICE_CIDR = '10.100.0.0/16';
export const CLUSTER_CIDR = '10.50.0.0/16';
const POD_SERVER = fileURLToPath(new URL('./pod-server.mjs', import.meta.url));
const PROBE = fileURLToPath(new URL('./http-probe.mjs', import.meta.url));

export interface DemoNode {
  readonly name: string;
  readonly ip: string;
  readonly ns: string;
  readonly podNet: number;
}
export interface DemoPod {
  readonly name: string;
  readonly ip: string;
  readonly node: string;
}
export interface ProbeResult {
  readonly pods: Record<string, number>;
  readonly failed: number;
  readonly errors: string[];
}

export const DEMO_NODES: readonly { name: string; ip: string; podNet: number }[] = [
  { name: 'node-a', ip: '10.99.0.10', podNet: 1 },
  { name: 'node-b', ip: '10.99.0.11', podNet: 2 },
  { name: 'node-c', ip: '10.99.0.12', podNet: 3 },
];

/** Why this host cannot run the demo's namespaces, or undefined when it can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not running as root (network namespaces need CAP_NET_ADMIN)';
  for (const cmd of ['ip', 'nft']) {
    if (!['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((d) => existsSync(`${d}/${cmd}`)))
      return `${cmd} is not installed`;
  }
  const probe = `sbprobe${process.pid}`;
  try {
    await run('ip', ['netns', 'add', probe]);
    await run('ip', ['netns', 'exec', probe, 'nft', 'list', 'tables']);
  } catch (e) {
    return `network namespaces with nftables are not usable here (${(e as Error).message})`;
  } finally {
    await run('ip', ['netns', 'del', probe]).catch(() => undefined);
  }
  return undefined;
}

export class DemoLab {
  readonly prefix = `sbd${process.pid % 100000}`;
  readonly lan = `${this.prefix}-lan`;
  readonly client = `${this.prefix}-client`;
  readonly uplink = `${this.prefix}up`;
  readonly nodes: DemoNode[] = DEMO_NODES.map((n) => ({ ...n, ns: `${this.prefix}-${n.name}` }));
  readonly pods: DemoPod[] = [];
  private links = 0;

  constructor(private readonly res: DemoResources) {}

  private exec(ns: string, ...args: string[]): Promise<string> {
    return run('ip', ['netns', 'exec', ns, ...args]);
  }

  /** A veth from `fromNs` (or the root namespace) into the LAN bridge. */
  private async plugIntoLan(fromNs: string | undefined, ifName: string, cidr: string): Promise<void> {
    const lanSide = `p${this.links++}`;
    const tmp = `${this.prefix}t${this.links}`;
    await run('ip', [
      'link',
      'add',
      tmp,
      'netns',
      this.lan,
      'type',
      'veth',
      'peer',
      'name',
      ifName,
      ...(fromNs ? ['netns', fromNs] : []),
    ]);
    if (!fromNs) this.res.addLink(ifName);
    await this.exec(this.lan, 'ip', 'link', 'set', tmp, 'name', lanSide);
    await this.exec(this.lan, 'ip', 'link', 'set', lanSide, 'master', 'br0', 'up');
    const inNs = fromNs ? ['ip', 'netns', 'exec', fromNs] : [];
    const ipCmd = (...a: string[]) => (inNs.length ? run(inNs[0]!, [...inNs.slice(1), 'ip', ...a]) : run('ip', a));
    await ipCmd('addr', 'add', cidr, 'dev', ifName);
    await ipCmd('link', 'set', ifName, 'up');
  }

  async start(): Promise<void> {
    // The root namespace gets one address on the demo LAN; refuse to shadow a network in use.
    const used = (await run('ip', ['-4', '-o', 'route', 'show', 'root', '10.99.0.0/24'])).trim();
    if (used)
      throw new Error(
        `the demo LAN 10.99.0.0/24 overlaps a route of this host (${used.split('\n')[0]}); remove it or run with --dry-run`,
      );
    await this.res.addNamespace(this.lan);
    await this.exec(this.lan, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
    await this.exec(this.lan, 'ip', 'link', 'set', 'br0', 'up');
    await this.plugIntoLan(undefined, this.uplink, `${HOST_IP}/24`);
    for (const n of this.nodes) {
      await this.res.addNamespace(n.ns);
      await this.plugIntoLan(n.ns, 'eth0', `${n.ip}/24`);
      await this.exec(n.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      for (const o of this.nodes)
        if (o !== n) await this.exec(n.ns, 'ip', 'route', 'add', `10.50.${o.podNet}.0/24`, 'via', o.ip);
    }
    await this.res.addNamespace(this.client);
    await this.plugIntoLan(this.client, 'eth0', `${CLIENT_IP}/24`);
    // The client is outside the cluster; it reaches ClusterIPs through node-a, as a router would.
    await this.exec(this.client, 'ip', 'route', 'add', SERVICE_CIDR, 'via', this.nodes[0]!.ip);
  }

  /** A pod namespace behind `node`, serving HTTP on `port` and answering with its name. */
  async addPod(name: string, nodeName: string, ip: string, port: number): Promise<DemoPod> {
    const node = this.nodes.find((n) => n.name === nodeName)!;
    const ns = `${this.prefix}-${name}`;
    const gw = `10.50.${node.podNet}.1`;
    const hostSide = `vp${ip.split('.')[3]}`;
    await this.res.addNamespace(ns);
    await run('ip', [
      'netns',
      'exec',
      node.ns,
      'ip',
      'link',
      'add',
      hostSide,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns,
    ]);
    await this.exec(node.ns, 'ip', 'addr', 'add', `${gw}/32`, 'dev', hostSide);
    await this.exec(node.ns, 'ip', 'link', 'set', hostSide, 'up');
    await this.exec(node.ns, 'ip', 'route', 'add', `${ip}/32`, 'dev', hostSide);
    await this.exec(ns, 'ip', 'addr', 'add', `${ip}/32`, 'dev', 'eth0');
    await this.exec(ns, 'ip', 'link', 'set', 'eth0', 'up');
    await this.exec(ns, 'ip', 'route', 'add', gw, 'dev', 'eth0');
    await this.exec(ns, 'ip', 'route', 'add', 'default', 'via', gw);
    const p = this.res.spawn(`pod-${name}`, process.execPath, [POD_SERVER, name, String(port)], { netns: ns });
    for (let i = 0; i < 100 && !readFileSync(p.log, 'utf8').includes('ready'); i++) await sleep(100);
    if (!readFileSync(p.log, 'utf8').includes('ready'))
      throw new Error(`pod ${name} did not start serving within 10 s; see ${p.log}`);
    const pod = { name, ip, node: nodeName };
    this.pods.push(pod);
    return pod;
  }

  /** COUNT HTTP requests from the client namespace, each on a new connection. */
  async probe(url: string, count: number): Promise<ProbeResult> {
    const out = await run('ip', ['netns', 'exec', this.client, process.execPath, PROBE, url, String(count), '2000'], {
      timeoutMs: count * 2500 + 5000,
    });
    return JSON.parse(out) as ProbeResult;
  }
}
