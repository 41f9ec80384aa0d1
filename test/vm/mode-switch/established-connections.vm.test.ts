// ipvs → nftables with connections open through IPVS, on a live node netns in the VM, through the
// applier's `--mode auto` dataplane (auto-driver.ts, one process as an applier): the connections
// IPVS made keep their pod across the switch and across an applier crash (ipvs mode retires:
// their endpoints at weight 0, everything else of it removed at once), new connections take
// nftables, a rollback to ipvs mid-drain takes the retiring state up again (and the next switch
// drains it again), and once the last of them is closed the next resync removes what is left of ipvs mode
// (before this, probe23: the switch reset them). The connections close with a reset (RST) so IPVS
// forgets them after its 10 s CLOSE timeout, not TIME_WAIT's 2 minutes.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NodeState, ProxyMode, VirtualServer } from '../../../libs/model/index.ts';
import { IPSET_TABLE, ipsetName } from '../../../libs/planner/index.ts';
import { childNodeArgs } from '../../support/child-node-args.ts';
import { execIn, NetnsLab, tcpSpread, type ClientNs, type NodeNs, type PodNs } from '../support/netns.ts';

const DRIVER = new URL('./auto-driver.ts', import.meta.url).pathname;
const VIP = '10.96.0.20';
const lab = new NetnsLab();
const dir = mkdtempSync(join(tmpdir(), 'sb-retire-'));
const stateFiles: Record<ProxyMode, string> = { ipvs: join(dir, 'ipvs.json'), nftables: join(dir, 'nftables.json') };
let node: NodeNs, client: ClientNs, pods: PodNs[];

function state(mode: ProxyMode): NodeState {
  const service = (port: number, targetPort: number, name: string): VirtualServer => ({
    protocol: 'TCP',
    address: VIP,
    port,
    scheduler: 'rr',
    schedulerFlags: [],
    persistenceTimeout: 0,
    role: 'cluster-ip',
    servicePort: `default/web:${name}`,
    localOnly: false,
    sourceRanges: [],
    realServers: pods
      .map((p) => ({ address: p.ip, port: targetPort, weight: 1 }))
      .sort((a, b) => (a.address < b.address ? -1 : 1)),
  });
  return {
    node: 'n1',
    virtualServers: [service(80, 8080, 'http'), service(81, 8081, 'stream')],
    boundAddresses: [VIP],
    ipsets: IPSET_TABLE.map(([base, type]) => ({
      name: ipsetName(base, 'IPv4'),
      type,
      ...(type === 'bitmap:port' ? {} : { family: 'inet' as const }),
      entries: base === 'KUBE-CLUSTER-IP' ? [`${VIP},tcp:80`, `${VIP},tcp:81`] : base === 'KUBE-IPVS-IPS' ? [VIP] : [],
    })).sort((a, b) => (a.name < b.name ? -1 : 1)),
    settings: {
      mode,
      strictARP: false,
      masqueradeAll: false,
      clusterCIDR: '',
      tcpTimeout: 0,
      tcpFinTimeout: 0,
      udpTimeout: 0,
      excludeCIDRs: [],
    },
  };
}

interface DriverReply {
  result?: { verified: boolean; kernelWrites: number; notes: string[] };
  draining?: string | null;
  error?: string;
}

/** The applier's dataplane in the node netns: one process, until killed. */
class AutoDriver {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiting: ((line: string) => void) | undefined;
  stderr = '';
  constructor() {
    this.child = spawn('ip', ['netns', 'exec', node.ns, process.execPath, ...childNodeArgs(DRIVER), dir]);
    this.child.stderr.on('data', (d) => {
      this.stderr += d;
    });
    createInterface({ input: this.child.stdout }).on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w(l);
      } else this.lines.push(l);
    });
  }
  private next(timeoutMs = 120_000): Promise<string> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`auto-driver: no answer in ${timeoutMs} ms: ${this.stderr}`)),
        timeoutMs,
      );
      this.waiting = (l) => {
        clearTimeout(t);
        resolve(l);
      };
    });
  }
  async ready(): Promise<void> {
    expect(JSON.parse(await this.next())).toEqual({ ready: true });
  }
  async send(cmd: object): Promise<DriverReply> {
    this.child.stdin.write(`${JSON.stringify(cmd)}\n`);
    return JSON.parse(await this.next()) as DriverReply;
  }
  apply(mode: ProxyMode): Promise<DriverReply> {
    return this.send({ cmd: 'apply', stateFile: stateFiles[mode] });
  }
  resync(): Promise<DriverReply> {
    return this.send({ cmd: 'resync' });
  }
  /** An applier crash: SIGKILL, nothing cleaned up. */
  kill(): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
      this.child.once('exit', () => resolve());
      this.child.kill('SIGKILL');
    });
  }
}

/** One TCP connection from the client netns that stays open (a bash coprocess on /dev/tcp). */
class LongConnection {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly replies: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  private ended = false;
  constructor(port: number) {
    const script =
      'exec 3<>"/dev/tcp/$1/$2" || exit 3; while IFS= read -r l; do printf "%s\\n" "$l" >&3 || exit 4; IFS= read -r -t 30 r <&3 || exit 5; printf "%s\\n" "$r"; done';
    this.child = spawn('ip', ['netns', 'exec', client.ns, 'bash', '-c', script, 'conn', VIP, String(port)]);
    createInterface({ input: this.child.stdout }).on('line', (l) => {
      if (this.waiting) {
        const w = this.waiting;
        this.waiting = undefined;
        w(l);
      } else this.replies.push(l);
    });
    this.child.on('exit', () => {
      this.ended = true;
      this.waiting?.(undefined);
    });
  }
  /** Sends a line; the pod that answered over this same connection (undefined: the connection is gone). */
  async ask(): Promise<string | undefined> {
    this.child.stdin.write('ping\n');
    const queued = this.replies.shift();
    const line =
      queued ??
      (this.ended
        ? undefined
        : await new Promise<string | undefined>((resolve) => {
            this.waiting = resolve;
          }));
    return line?.split(' ')[0];
  }
  /** Has the pod reset the connection (RST), and waits until the client saw it. */
  async reset(): Promise<void> {
    this.child.stdin.write('reset\n');
    if (!this.ended) await new Promise((resolve) => this.child.once('exit', resolve));
  }
  close(): void {
    if (!this.ended) this.child.kill('SIGKILL');
  }
}

/** Connections IPVS holds for VIP:port (active + inactive, summed over its real servers), by `ipvsadm -Ln`. */
async function ipvsConnections(port: number): Promise<number | undefined> {
  const text = await execIn(node.ns, ['ipvsadm', '-Ln', '-t', `${VIP}:${port}`]).catch(() => undefined);
  if (text === undefined) return undefined;
  return [...text.matchAll(/^\s+->\s+\S+\s+\S+\s+\d+\s+(\d+)\s+(\d+)/gm)].reduce(
    (n, m) => n + Number(m[1]) + Number(m[2]),
    0,
  );
}

let driver: AutoDriver;
const open: LongConnection[] = [];
const connection = (port: number) => {
  const c = new LongConnection(port);
  open.push(c);
  return c;
};

beforeAll(async () => {
  node = await lab.addNode();
  pods = [
    await lab.addPod(node, { name: 'web-a', ports: [8080], keepPorts: [8081] }),
    await lab.addPod(node, { name: 'web-b', ports: [8080], keepPorts: [8081] }),
  ];
  client = await lab.addClient(node);
  for (const mode of ['ipvs', 'nftables'] as const) writeFileSync(stateFiles[mode], JSON.stringify(state(mode)));
  driver = new AutoDriver();
  await driver.ready();
});
afterAll(async () => {
  for (const c of open) c.close();
  await driver?.kill();
  await lab.cleanup();
});

describe('ipvs → nftables keeps the connections IPVS made', () => {
  let first: LongConnection, second: LongConnection, third: LongConnection, later: LongConnection;
  const served: string[] = [];

  it('ipvs serves two long-lived connections', async () => {
    expect(await driver.apply('ipvs')).toMatchObject({ result: { verified: true }, draining: null });
    first = connection(81);
    second = connection(81);
    served.push((await first.ask())!, (await second.ask())!);
    expect(served.sort()).toEqual(['web-a', 'web-b']); // rr: one each
    expect(await ipvsConnections(81)).toBe(2);
  });

  it('the switch keeps them on their pods, new connections take nftables', async () => {
    const r = await driver.apply('nftables');
    expect(r.error).toBeUndefined();
    expect(r).toMatchObject({ result: { verified: true }, draining: 'ipvs' });
    expect(r.result!.notes).toContain('switched ipvs → nftables');
    expect(r.result!.notes.join('\n')).toMatch(/ipvs mode kept for 2 established connection\(s\)/);
    expect([await first.ask(), await second.ask()].sort()).toEqual(served);
    // ipvs mode keeps only what they need: their service at weight 0; port 80 (no connection) is gone
    const ipvs = await execIn(node.ns, ['ipvsadm', '-Sn']);
    expect(ipvs).not.toContain(`${VIP}:80`);
    expect(ipvs.match(new RegExp(`-a -t ${VIP.replace(/\./g, '\\.')}:81 -r \\S+ -m -w 0`, 'g'))).toHaveLength(2);
    expect(await execIn(node.ns, ['nft', 'list', 'tables'])).toContain('table inet switchboard');
    // new connections: nftables DNATs them before IPVS would see them (numgen random: 20 so that
    // missing one of two endpoints by chance is ~2e-6, not the 1 in 32 of 6; CI, 2026-12-06)
    expect([...(await tcpSpread(client.ns, VIP, 80, 20)).keys()].sort()).toEqual(['web-a', 'web-b']);
    later = connection(81);
    expect(['web-a', 'web-b']).toContain(await later.ask());
    expect(await ipvsConnections(81)).toBe(2);
  });

  it('an applier that crashes mid-drain finds ipvs mode holding them and drains it, not removes it', async () => {
    await driver.kill();
    driver = new AutoDriver();
    await driver.ready();
    const r = await driver.apply('nftables');
    expect(r.error).toBeUndefined();
    expect(r).toMatchObject({ result: { verified: true }, draining: 'ipvs' });
    expect(r.result!.notes.join('\n')).toMatch(/ipvs mode kept for 2 established connection\(s\)/);
    expect([await first.ask(), await second.ask()].sort()).toEqual(served);
    expect(await driver.resync()).toMatchObject({ result: { verified: true }, draining: 'ipvs' });
  });

  it('a rollback to ipvs while it drains takes ipvs mode up again, and the next switch drains it again', async () => {
    const back = await driver.apply('ipvs');
    expect(back.error).toBeUndefined();
    expect(back).toMatchObject({ result: { verified: true }, draining: null });
    expect(back.result!.notes).toContain('switched nftables → ipvs');
    expect([await first.ask(), await second.ask()].sort()).toEqual(served);
    // whole again: both services, every endpoint at weight 1, and nothing of nftables mode
    const ipvs = await execIn(node.ns, ['ipvsadm', '-Sn']);
    expect(ipvs.match(/-a -t 10\.96\.0\.20:8[01] -r \S+ -m -w 1/g)).toHaveLength(4);
    expect(await execIn(node.ns, ['nft', 'list', 'tables'])).not.toContain('switchboard');
    // a new connection goes through IPVS again (a long one: short ones would leave IPVS entries in
    // TIME_WAIT, which hold a drain for 2 minutes)
    third = connection(81);
    expect(['web-a', 'web-b']).toContain(await third.ask());
    expect(await ipvsConnections(81)).toBe(3);
    expect(['web-a', 'web-b']).toContain(await later.ask()); // made through nftables: conntrack keeps its NAT

    const again = await driver.apply('nftables');
    expect(again).toMatchObject({ result: { verified: true }, draining: 'ipvs' });
    expect(again.result!.notes.join('\n')).toMatch(/ipvs mode kept for 3 established connection\(s\)/);
    expect([await first.ask(), await second.ask()].sort()).toEqual(served);
    expect(['web-a', 'web-b']).toContain(await third.ask());
  });

  it('once they are closed, a resync removes what is left of ipvs mode; nftables connections are untouched', async () => {
    await first.reset();
    await second.reset();
    await third.reset();
    // IPVS forgets a reset connection after its CLOSE timeout (10 s)
    let last: DriverReply | undefined;
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      last = await driver.resync();
      if (last.draining === null) break;
      await new Promise((r) => setTimeout(r, 3000));
    }
    expect(last).toMatchObject({ result: { verified: true }, draining: null });
    // said by this resync or by the drain's own step (every 30 s) before it
    expect(driver.stderr).toMatch(/ipvs mode removed: its connections are closed/);
    expect(await execIn(node.ns, ['ipvsadm', '-Sn'])).not.toContain(VIP);
    expect(await execIn(node.ns, ['ip', '-o', 'addr', 'show'])).not.toContain(VIP);
    expect(await execIn(node.ns, ['iptables-save'])).not.toMatch(/KUBE-/);
    expect((await execIn(node.ns, ['ipset', 'list', '-n'])).split('\n').filter((s) => s.startsWith('KUBE-'))).toEqual(
      [],
    );
    expect(['web-a', 'web-b']).toContain(await later.ask());
    expect([...(await tcpSpread(client.ns, VIP, 80, 20)).keys()].sort()).toEqual(['web-a', 'web-b']); // 20: as above
    expect(await driver.resync()).toMatchObject({ result: { verified: true, kernelWrites: 0 }, draining: null });
  });
});
