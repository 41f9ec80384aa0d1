// Network-namespace lab for in-VM kernel tests: a "node" namespace (with the dummy
// device kube-ipvs0, as kube-proxy's ipvs mode uses), "pod" namespaces on veth pairs
// each running an echo server that answers with its pod name, and "client" namespaces
// that reach the node. Every address lives only inside namespaces the lab created.
//
// Topology (routed, calico-style; no bridge needed):
//
//   client eth0 10.50.(200+k).2/24 --- node vc<k> 10.50.(200+k).1/24   (node IP)
//   pod    eth0 10.50.1.N/32       --- node vp<i> 10.50.0.1/32, route 10.50.1.N/32
//           default via 10.50.0.1                 ip_forward=1 in the node
//
// Usage (always clean up in afterEach, it is safe to call after a partial setup):
//   const lab = new NetnsLab();
//   const node = await lab.addNode();
//   const pod = await lab.addPod(node, { name: 'web-a' });
//   const client = await lab.addClient(node);
//   await tcpRequest(client.ns, pod.ip, 8080);   // -> { pod: 'web-a', peer: ... }
//   await lab.cleanup();
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { execIn, run } from './exec.ts';

export { execIn, run, ExecError } from './exec.ts';
export type { ExecOptions, ExecResult } from './exec.ts';
export { tcpRequest, udpRequest, tcpSpread, NoReplyError } from './traffic.ts';
export type { EchoReply, RequestOptions } from './traffic.ts';

const ECHO_SERVER = fileURLToPath(new URL('./echo-server.mjs', import.meta.url));
/** Address every pod uses as its gateway; it sits on each pod-facing veth in the node. */
export const POD_GATEWAY = '10.50.0.1';
export const DEFAULT_PORTS: readonly number[] = [8080];

export interface NodeNs {
  ns: string;
  /** The dummy device that holds service VIPs. */
  dummy: 'kube-ipvs0';
  /** Node IPs, one per client link (NodePort targets). */
  ips: string[];
}

export interface PodNs {
  ns: string;
  name: string;
  ip: string;
  ports: readonly number[];
}

export interface ClientNs {
  ns: string;
  ip: string;
  /** The node's address on this client's link. */
  nodeIp: string;
}

export interface PodOptions {
  /** Pod name, also what its echo server answers. */
  name: string;
  /** Pod IP (default 10.50.1.<10+n>). */
  ip?: string;
  /** TCP and UDP ports the echo server listens on (default 8080). */
  ports?: readonly number[];
  /** TCP ports whose connections stay open, answering each line (echo-server.mjs "keep ports"). */
  keepPorts?: readonly number[];
}

export class NetnsLab {
  /** Namespace-name prefix, unique per lab, so leftovers never collide. */
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly servers: ChildProcess[] = [];
  private pods = 0;
  private clients = 0;
  private nodeLinks = new Map<string, number>();
  private static labs = 0;

  constructor(prefix?: string) {
    this.prefix = prefix ?? `sb${process.pid}x${NetnsLab.labs++}`;
  }

  /** Creates a namespace with loopback up; it is recorded before creation so cleanup sees it. */
  async addNamespace(role: string): Promise<string> {
    const ns = `${this.prefix}-${role}`;
    this.namespaces.push(ns);
    await run(['ip', 'netns', 'add', ns]);
    await execIn(ns, ['ip', 'link', 'set', 'lo', 'up']);
    return ns;
  }

  async addNode(role = 'node'): Promise<NodeNs> {
    const ns = await this.addNamespace(role);
    await execIn(ns, ['ip', 'link', 'add', 'kube-ipvs0', 'type', 'dummy']);
    await execIn(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    this.nodeLinks.set(ns, 0);
    return { ns, dummy: 'kube-ipvs0', ips: [] };
  }

  /** Creates a pod namespace routed from `node` and starts its echo server (waits until it listens). */
  async addPod(node: NodeNs, opts: PodOptions): Promise<PodNs> {
    const index = this.pods++;
    const ip = opts.ip ?? `10.50.1.${10 + index}`;
    const ports = opts.ports ?? DEFAULT_PORTS;
    const ns = await this.addNamespace(`pod${index}`);
    const hostSide = `vp${index}`;
    await execIn(node.ns, ['ip', 'link', 'add', hostSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await execIn(node.ns, ['ip', 'addr', 'add', `${POD_GATEWAY}/32`, 'dev', hostSide]);
    await execIn(node.ns, ['ip', 'link', 'set', hostSide, 'up']);
    await execIn(node.ns, ['ip', 'route', 'add', `${ip}/32`, 'dev', hostSide]);
    await execIn(ns, ['ip', 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    await execIn(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    await execIn(ns, ['ip', 'route', 'add', POD_GATEWAY, 'dev', 'eth0']);
    await execIn(ns, ['ip', 'route', 'add', 'default', 'via', POD_GATEWAY, 'dev', 'eth0']);
    await this.startEchoServer(ns, opts.name, ports, opts.keepPorts ?? []);
    return { ns, name: opts.name, ip, ports };
  }

  /** Creates a client namespace on its own /24 link to `node`, default route via the node. */
  async addClient(node: NodeNs): Promise<ClientNs> {
    const index = this.clients++;
    const link = this.nodeLinks.get(node.ns) ?? 0;
    this.nodeLinks.set(node.ns, link + 1);
    const subnet = `10.50.${200 + index}`;
    const ip = `${subnet}.2`;
    const nodeIp = `${subnet}.1`;
    const ns = await this.addNamespace(`client${index}`);
    const hostSide = `vc${link}`;
    await execIn(node.ns, ['ip', 'link', 'add', hostSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await execIn(node.ns, ['ip', 'addr', 'add', `${nodeIp}/24`, 'dev', hostSide]);
    await execIn(node.ns, ['ip', 'link', 'set', hostSide, 'up']);
    await execIn(ns, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    await execIn(ns, ['ip', 'link', 'set', 'eth0', 'up']);
    await execIn(ns, ['ip', 'route', 'add', 'default', 'via', nodeIp]);
    node.ips.push(nodeIp);
    return { ns, ip, nodeIp };
  }

  private async startEchoServer(
    ns: string,
    pod: string,
    ports: readonly number[],
    keepPorts: readonly number[],
  ): Promise<void> {
    // `ip netns exec` execs node in place, so killing this child kills the server.
    const keep = keepPorts.length ? [keepPorts.join(',')] : [];
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ECHO_SERVER, pod, ports.join(','), ...keep], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.servers.push(child);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`echo server ${pod} not ready after 60 s: ${stderr}`)), 60_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`echo server ${pod} exited ${code}: ${stderr}`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /**
   * Kills every echo server and deletes every namespace this lab made (which removes
   * their veths, IPVS tables and ipsets with them). Never throws: it is for afterEach,
   * where a cleanup error would hide the test's own failure; problems are returned.
   */
  async cleanup(): Promise<string[]> {
    const problems: string[] = [];
    await Promise.all(
      this.servers.splice(0).map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    for (const ns of this.namespaces.splice(0).reverse()) {
      const r = await run(['ip', 'netns', 'del', ns], { allowFailure: true });
      if (r.code !== 0 && !/No such file/.test(r.stderr)) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    return problems;
  }
}
