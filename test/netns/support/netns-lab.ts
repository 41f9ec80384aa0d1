// Host-side network-namespace lab for nftables-mode tests (this kernel has netfilter, nftables,
// veth and netns, but no IPVS and no dummy device). Every address lives only inside
// namespaces the lab created; cleanup() kills the servers it started and deletes its
// namespaces, and is safe after a partial setup.
//
//   client eth0 10.77.(100+k).2/24 ── node vc<k> 10.77.(100+k).1/24   (node IPs)
//   pod    eth0 10.77.1.N/32       ── node vp<N> 10.77.0.1/32 + route 10.77.1.N/32
//          default via 10.77.0.1                  ip_forward=1 in the node
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const pexec = promisify(execFile);
const SERVER = fileURLToPath(new URL('./echo-server.mjs', import.meta.url));
const CLIENT = fileURLToPath(new URL('./echo-client.mjs', import.meta.url));
export const POD_GATEWAY = '10.77.0.1';

export async function sh(cmd: string, args: readonly string[], input?: string): Promise<string> {
  if (input === undefined) return (await pexec(cmd, [...args], { maxBuffer: 256 << 20 })).stdout;
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, [...args]);
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.stderr.on('data', (d) => {
      err += d;
    });
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: ${err.trim()}`))));
    c.stdin.end(input);
  });
}

export function inNs(ns: string, cmd: string, args: readonly string[], input?: string): Promise<string> {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args], input);
}

export interface Pod {
  ns: string;
  name: string;
  ip: string;
}
export interface Client {
  ns: string;
  ip: string;
  nodeIp: string;
}
export interface Reply {
  pod: string;
  peer: string;
}

let labs = 0;

export class NetnsLab {
  /** Unique per process and lab, short enough for interface-free ns names. */
  readonly prefix = `sbn${process.pid % 100000}x${labs++}`;
  readonly node = `${this.prefix}-node`;
  readonly pods: Pod[] = [];
  readonly clients: Client[] = [];
  private readonly namespaces: string[] = [];
  private readonly servers: ChildProcess[] = [];

  private async addNs(name: string): Promise<string> {
    await sh('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
    return name;
  }

  async start(): Promise<void> {
    await this.addNs(this.node);
    await inNs(this.node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  }

  /** A pod namespace on its own veth, serving TCP and UDP on `port`, answering with `name`. */
  async addPod(name: string, port = 8080): Promise<Pod> {
    const n = this.pods.length + 10;
    const ns = await this.addNs(`${this.prefix}-${name}`);
    const ip = `10.77.1.${n}`;
    await inNs(this.node, 'ip', ['link', 'add', `vp${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await inNs(this.node, 'ip', ['addr', 'add', `${POD_GATEWAY}/32`, 'dev', `vp${n}`]);
    await inNs(this.node, 'ip', ['link', 'set', `vp${n}`, 'up']);
    await inNs(this.node, 'ip', ['route', 'add', `${ip}/32`, 'dev', `vp${n}`]);
    await inNs(ns, 'ip', ['addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    await inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    await inNs(ns, 'ip', ['route', 'add', POD_GATEWAY, 'dev', 'eth0']);
    await inNs(ns, 'ip', ['route', 'add', 'default', 'via', POD_GATEWAY]);
    const server = spawn('ip', ['netns', 'exec', ns, process.execPath, SERVER, name, String(port)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (c) => reject(new Error(`echo server ${name} exited ${String(c)}`)));
    });
    const pod = { ns, name, ip };
    this.pods.push(pod);
    return pod;
  }

  /** A client namespace on its own link; the node's address on that link is a node IP. */
  async addClient(): Promise<Client> {
    const k = this.clients.length;
    const ns = await this.addNs(`${this.prefix}-client${k}`);
    const [ip, nodeIp] = [`10.77.${100 + k}.2`, `10.77.${100 + k}.1`];
    await inNs(this.node, 'ip', ['link', 'add', `vc${k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await inNs(this.node, 'ip', ['addr', 'add', `${nodeIp}/24`, 'dev', `vc${k}`]);
    await inNs(this.node, 'ip', ['link', 'set', `vc${k}`, 'up']);
    await inNs(ns, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    await inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    await inNs(ns, 'ip', ['route', 'add', 'default', 'via', nodeIp]);
    const c = { ns, ip, nodeIp };
    this.clients.push(c);
    return c;
  }

  /**
   * `count` fresh TCP connections or UDP exchanges from `ns`; null entries got no answer. With
   * `udpSourcePort`, every datagram leaves from that port (one flow, one conntrack entry).
   */
  async probe(
    ns: string,
    proto: 'tcp' | 'udp',
    host: string,
    port: number,
    count: number,
    timeoutMs = 1000,
    udpSourcePort?: number,
  ): Promise<(Reply | null)[]> {
    const args = [CLIENT, proto, host, String(port), String(count), String(timeoutMs)];
    if (udpSourcePort !== undefined) args.push(String(udpSourcePort));
    const out = await inNs(ns, process.execPath, args);
    return (JSON.parse(out) as (string | null)[]).map((l) => {
      if (l === null) return null;
      const [pod, peer] = l.split(' ');
      return { pod: pod!, peer: peer! };
    });
  }

  /**
   * One TCP connection or UDP exchange (on a connected socket, so an ICMP error reaches it) from
   * `ns`, and how it ended: 'reply', the socket's error code (e.g. 'ECONNREFUSED': a TCP reset, or
   * for UDP an ICMP port unreachable; 'EHOSTUNREACH'/'ENETUNREACH': other ICMP errors), or 'timeout'.
   */
  async attempt(ns: string, proto: 'tcp' | 'udp', host: string, port: number, timeoutMs = 2000): Promise<string> {
    const script = `
      const net = require('node:net');
      const dgram = require('node:dgram');
      const [host, port, ms] = [${JSON.stringify(host)}, ${port}, ${timeoutMs}];
      new Promise((resolve) => {
        const t = setTimeout(() => resolve('timeout'), ms);
        const done = (v) => { clearTimeout(t); resolve(v); };
        if (${JSON.stringify(proto)} === 'tcp') {
          const s = net.connect({ host, port });
          s.on('data', () => { s.destroy(); done('reply'); });
          s.on('error', (e) => done(e.code));
        } else {
          const s = dgram.createSocket('udp4');
          s.on('message', () => done('reply'));
          s.on('error', (e) => done(e.code));
          s.connect(port, host, () => s.send('x'));
        }
      }).then((r) => { console.log(r); process.exit(0); });`;
    return (await inNs(ns, process.execPath, ['-e', script])).trim();
  }

  async cleanup(): Promise<void> {
    for (const s of this.servers) {
      s.stdin?.end();
      s.kill();
    }
    for (const ns of this.namespaces.reverse()) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
    this.namespaces.length = 0;
  }
}

/** How many replies each pod gave (null = no answer). */
export function tally(replies: readonly (Reply | null)[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const r of replies) {
    const k = r?.pod ?? 'null';
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}
