// A small cluster in network namespaces for rollout tests with real processes (issue 16): a LAN
// namespace holding a bridge, nats-server and the planner; node namespaces each running an
// nftables applier; a pod namespace behind each node serving TCP. Nothing touches the root
// namespace: every address lives in namespaces this lab made, so concurrent runs never collide.
//
//   lan   br0 10.231.0.1/24 (nats-server, planner API)
//   node-K eth0 10.231.0.(10+K)/24 on br0, default via 10.231.0.1; ip_forward=1
//          vpK: 192.0.2.1/32 FIRST (the node's link address, unknown to pods), then 10.50.K.1/32;
//          route 10.50.K.10/32 dev vpK src 10.50.K.1 (the node talks to its pod from 10.50.K.1)
//   pod-K eth0 10.50.K.10/32; routes: 10.50.K.1 dev eth0, 10.50.0.0/16 and 10.231.0.0/24 via
//          10.50.K.1 (no default: pods route the pod network and the node network, nothing else)
//
// In this topology masquerading breaks replies: MASQUERADE takes the outgoing device's first
// address (192.0.2.1), which the pod cannot route back to. So a revision that turns on
// masqueradeAll programs cleanly but drops every reply to a connection the node makes to a
// ClusterIP, which is what the data-path probe must catch.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inNs, sh } from './netns-lab.ts';

const ECHO = fileURLToPath(new URL('./echo-server.mjs', import.meta.url));
const CLI = fileURLToPath(new URL('../../../bin/switchboard', import.meta.url));
const NATS_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';
export const LAN_IP = '10.231.0.1';
export const NATS_URL = `nats://${LAN_IP}:4222`;
export const API_URL = `http://${LAN_IP}:9440`;

export interface LabNode {
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  readonly podIp: string;
  readonly k: number;
}

export class RolloutLab {
  readonly prefix = `sbr${process.pid % 100000}`;
  readonly lan = `${this.prefix}-lan`;
  readonly work = mkdtempSync(join(tmpdir(), 'sb-rollout-lab-'));
  readonly nodes: LabNode[] = [];
  private readonly namespaces: string[] = [];
  private readonly procs: { name: string; p: ChildProcess }[] = [];
  private links = 0;

  private async addNs(name: string): Promise<string> {
    await sh('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await inNs(name, 'ip', ['link', 'set', 'lo', 'up']);
    return name;
  }

  async start(nodeNames: readonly string[]): Promise<void> {
    await this.addNs(this.lan);
    await inNs(this.lan, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await inNs(this.lan, 'ip', ['addr', 'add', `${LAN_IP}/24`, 'dev', 'br0']);
    await inNs(this.lan, 'ip', ['link', 'set', 'br0', 'up']);
    for (const [i, name] of nodeNames.entries()) {
      const k = i + 1;
      const ns = await this.addNs(`${this.prefix}-${name}`);
      const ip = `10.231.0.${10 + k}`;
      const lanSide = `p${this.links++}`;
      await inNs(this.lan, 'ip', ['link', 'add', lanSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await inNs(this.lan, 'ip', ['link', 'set', lanSide, 'master', 'br0', 'up']);
      await inNs(ns, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
      await inNs(ns, 'ip', ['route', 'add', 'default', 'via', LAN_IP]);
      await inNs(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      const node = { name, ns, ip, podIp: `10.50.${k}.10`, k };
      await this.addPod(node);
      this.nodes.push(node);
    }
  }

  private async addPod(n: LabNode): Promise<void> {
    const ns = await this.addNs(`${this.prefix}-pod${n.k}`);
    const gw = `10.50.${n.k}.1`;
    await inNs(n.ns, 'ip', ['link', 'add', `vp${n.k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await inNs(n.ns, 'ip', ['addr', 'add', '192.0.2.1/32', 'dev', `vp${n.k}`]);
    await inNs(n.ns, 'ip', ['addr', 'add', `${gw}/32`, 'dev', `vp${n.k}`]);
    await inNs(n.ns, 'ip', ['link', 'set', `vp${n.k}`, 'up']);
    await inNs(n.ns, 'ip', ['route', 'add', `${n.podIp}/32`, 'dev', `vp${n.k}`, 'src', gw]);
    await inNs(ns, 'ip', ['addr', 'add', `${n.podIp}/32`, 'dev', 'eth0']);
    await inNs(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    await inNs(ns, 'ip', ['route', 'add', gw, 'dev', 'eth0']);
    await inNs(ns, 'ip', ['route', 'add', '10.50.0.0/16', 'via', gw]);
    await inNs(ns, 'ip', ['route', 'add', '10.231.0.0/24', 'via', gw]);
    const p = spawn('ip', ['netns', 'exec', ns, process.execPath, ECHO, `pod-${n.name}`, '8080'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.procs.push({ name: `pod-${n.name}`, p });
    await new Promise<void>((resolve, reject) => {
      p.stdout!.once('data', () => resolve());
      p.once('exit', (c) => reject(new Error(`echo server of ${n.name} exited ${String(c)}`)));
    });
  }

  /** Starts a long-running process in `ns` (ip netns exec execs it: the PID is the process's own), output to work/logs. */
  spawnIn(ns: string, name: string, cmd: string, args: readonly string[]): ChildProcess {
    const log = openSync(this.logPath(name), 'a');
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', log, log] });
    closeSync(log);
    this.procs.push({ name, p });
    return p;
  }

  logPath(name: string): string {
    return join(this.work, `${name}.log`);
  }

  log(name: string): string {
    try {
      return readFileSync(this.logPath(name), 'utf8');
    } catch {
      return '';
    }
  }

  startNats(): ChildProcess {
    return this.spawnIn(this.lan, 'nats', NATS_BIN, ['-a', LAN_IP, '-p', '4222', '-js', '-sd', join(this.work, 'js')]);
  }

  /** `switchboard ARGS` as a long-running process in `ns`. */
  switchboard(ns: string, name: string, args: readonly string[]): ChildProcess {
    return this.spawnIn(ns, name, process.execPath, [CLI, ...args]);
  }

  /** The planner in the LAN namespace, reading `manifests` (a directory) and `config` (a proxy config file). */
  startPlanner(manifests: string, config: string): ChildProcess {
    return this.switchboard(this.lan, 'planner', [
      'planner',
      '--manifests',
      manifests,
      '--nats',
      NATS_URL,
      '--db',
      join(this.work, 'log.db'),
      '--http',
      API_URL.replace('http://', ''),
      '--insecure-open-api',
      '--config',
      config,
    ]);
  }

  /** An nftables applier in node `name`'s namespace (log `applier-NAME`), 500 ms heartbeats, then `extra` flags. */
  startApplier(name: string, extra: readonly string[]): ChildProcess {
    const n = this.nodes.find((x) => x.name === name)!;
    return this.switchboard(n.ns, `applier-${n.name}`, [
      'applier',
      '--node',
      n.name,
      '--nats',
      NATS_URL,
      '--mode',
      'nftables',
      '--state-dir',
      join(this.work, `state-${n.name}`),
      '--heartbeat',
      '500',
      '--planner-key',
      join(this.work, 'log.db.signing-key.pem.pub'),
      ...extra,
    ]);
  }

  /** `switchboard ctl --server API_URL ARGS` from the LAN namespace; resolves with exit code and output. */
  ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const p = spawn('ip', ['netns', 'exec', this.lan, process.execPath, CLI, 'ctl', '--server', API_URL, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => {
        stdout += d;
      });
      p.stderr.on('data', (d) => {
        stderr += d;
      });
      p.on('close', (code) =>
        resolve({
          code: code ?? -1,
          stdout,
          stderr: stderr.replace(/^switchboard: .*running the sources through tsx.*\n/m, ''),
        }),
      );
    });
  }

  /**
   * One node (node-1) with nats-server and the planner running labManifests in nftables mode; the
   * applier is the caller's to start (startApplier).
   */
  async startOneNodeCluster(): Promise<void> {
    await this.start(['node-1']);
    const dir = join(this.work, 'manifests');
    mkdirSync(dir);
    writeFileSync(join(dir, 'cluster.yaml'), labManifests(this.nodes)); // Service web-1 10.100.0.11:80
    writeFileSync(join(this.work, 'config.yaml'), 'mode: nftables\n');
    this.startNats();
    this.startPlanner(dir, join(this.work, 'config.yaml'));
  }

  /** Polls `f` (every 100 ms) until it gives a value; past `ms` fails with the tail of process `logName`'s log. */
  async until<T>(
    what: string,
    f: () => Promise<T | undefined | false>,
    ms: number,
    logName = 'applier-node-1',
  ): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f().catch(() => undefined);
      if (v) return v;
      if (Date.now() > end)
        throw new Error(`timed out waiting for ${what}\n--- ${logName} ---\n${this.log(logName).slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops every process it started (SIGTERM by PID, SIGKILL after 5 s), deletes its namespaces and work dir. */
  async cleanup(): Promise<void> {
    await Promise.all(
      this.procs.reverse().map(
        ({ p }) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const t = setTimeout(() => p.kill('SIGKILL'), 5000);
            p.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            p.kill('SIGTERM');
          }),
      ),
    );
    this.procs.length = 0;
    for (const ns of this.namespaces.reverse()) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
    this.namespaces.length = 0;
    rmSync(this.work, { recursive: true, force: true });
  }
}

/** Per node: its Node, a ClusterIP Service web-K 10.100.0.1K:80 and its endpoint, the node's pod on 8080. */
export const labManifests = (nodes: readonly LabNode[]) =>
  nodes
    .map(
      (n) => `apiVersion: v1
kind: Node
metadata: {name: ${n.name}}
status: {addresses: [{type: InternalIP, address: ${n.ip}}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-${n.k}, namespace: default}
spec: {type: ClusterIP, clusterIP: 10.100.0.1${n.k}, clusterIPs: [10.100.0.1${n.k}], ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-${n.k}-abc, namespace: default, labels: {kubernetes.io/service-name: web-${n.k}}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 8080}]
endpoints: [{addresses: [${n.podIp}], conditions: {ready: true}, nodeName: ${n.name}}]
`,
    )
    .join('---\n');
