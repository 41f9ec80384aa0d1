import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { registerCommands } from '../services/cli/commands/index.ts';
import { renderServerAuthConfig, type ServerConfigInput } from '../libs/bus/index.ts';
import { freePort, startNatsServer, type NatsServerHandle } from './support/nats-server.ts';

// No Docker engine runs here. compose.yaml is checked by Debian's docker-compose (`config`
// validates it against the Compose schema and normalizes it), structurally against the CLI and
// the NATS permissions, and its dry-run profile is run as plain processes: the same command
// lines, NATS users and API token, with container paths mapped to this checkout.
interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  profiles?: string[];
  user?: string;
  network_mode?: string;
  restart?: string;
  cap_add?: string[];
  cap_drop?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: unknown[];
}
const root = path.resolve(import.meta.dirname, '..');
const DOCKER_COMPOSE = ['/usr/bin/docker-compose', '/usr/local/bin/docker-compose'].find(
  (f) => spawnSync(f, ['version']).status === 0,
);

/**
 * The services `docker compose --profile P up` starts, as `docker-compose config` normalizes
 * them (merge keys resolved). docker-compose 1.29 lists every profile's services in `config`, so
 * the profile filter is applied here.
 */
function composeConfig(profile: string): Record<string, Service> {
  const out = execFileSync(DOCKER_COMPOSE!, ['-f', path.join(root, 'compose.yaml'), 'config'], { encoding: 'utf8' });
  const all = (parse(out) as { services: Record<string, Service> }).services;
  return Object.fromEntries(Object.entries(all).filter(([, s]) => !s.profiles || s.profiles.includes(profile)));
}
const program = new Command();
await registerCommands(program, () => undefined); // every command, fully (lazy loading off)
interface PasswordUser {
  name: string;
  user: string;
  password: string;
}
const nodesJson = readFileSync(path.join(root, 'deploy/compose/nodes.json'), 'utf8');
const nodes = JSON.parse(nodesJson) as { planner: { user: string; password: string }; nodes: PasswordUser[] };
const flag = (args: string[], name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);

describe('compose.yaml', () => {
  it('is valid for docker-compose in both profiles (which it checks: a bad key fails)', () => {
    expect(DOCKER_COMPOSE, 'docker-compose (scripts/install-deps.sh installs it)').toBeDefined();
    expect(Object.keys(composeConfig('dry-run')).sort()).toEqual(['applier-a', 'applier-b', 'nats', 'planner']);
    expect(Object.keys(composeConfig('nftables')).sort()).toEqual(['applier-host', 'nats', 'planner']);
    const dir = mkdtempSync(path.join(tmpdir(), 'sb-compose-'));
    try {
      writeFileSync(path.join(dir, 'compose.yaml'), 'services:\n  x:\n    image: busybox\n    cap_ad: [NET_ADMIN]\n');
      expect(spawnSync(DOCKER_COMPOSE!, ['-f', path.join(dir, 'compose.yaml'), 'config', '-q']).status).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs only commands the CLI has, with options the CLI knows', () => {
    const services = { ...composeConfig('dry-run'), ...composeConfig('nftables') };
    for (const [name, svc] of Object.entries(services)) {
      expect(svc.image ?? svc.build, name).toBeTruthy();
      if (!svc.build) continue;
      const [cmd, ...args] = svc.command ?? [];
      const sub = program.commands.find((c) => c.name() === cmd);
      expect(sub, `${name}: ${cmd}`).toBeDefined();
      const known = new Set(sub!.options.map((o) => o.long));
      for (const a of args.filter((x) => x.startsWith('--'))) expect(known.has(a), `${name}: ${cmd} ${a}`).toBe(true);
    }
  });

  it('the nftables profile runs a real applier: host network, root with NET_ADMIN/NET_RAW only', () => {
    const host = composeConfig('nftables')['applier-host']!;
    expect(flag(host.command!, '--mode')).toBe('nftables');
    expect(host.network_mode).toBe('host');
    expect(host.user).toBe('0:0');
    expect(host.cap_drop).toEqual(['ALL']);
    expect([...host.cap_add!].sort()).toEqual(['NET_ADMIN', 'NET_RAW']);
    expect(flag(host.command!, '--nats')).toBe('nats://127.0.0.1:4222'); // host network: the published port
    expect(composeConfig('nftables').nats!.ports).toBeDefined();
    // the dry-run appliers and the planner keep the image's unprivileged user and no capabilities
    for (const [name, svc] of Object.entries(composeConfig('dry-run'))) {
      if (!svc.build) continue;
      expect(svc.user, name).toBeUndefined();
      expect(svc.cap_add, name).toBeUndefined();
      expect(svc.network_mode, name).toBeUndefined();
    }
  });

  it('NATS runs with per-node permissions: auth.conf is the render of nodes.json, and each process uses its own user', () => {
    expect(readFileSync(path.join(root, 'deploy/compose/auth.conf'), 'utf8')).toBe(
      renderServerAuthConfig(JSON.parse(nodesJson) as ServerConfigInput),
    );
    const conf = spawnSync('/usr/sbin/nats-server', ['-t', '-c', path.join(root, 'deploy/compose/nats.conf')], {
      encoding: 'utf8',
    });
    expect(conf.status, conf.stderr).toBe(0);
    const services = { ...composeConfig('dry-run'), ...composeConfig('nftables') };
    const nats = services.nats!;
    expect(nats.command).toEqual(['-c', '/etc/nats/nats.conf']);
    expect(nats.volumes!.some((v) => v.includes('deploy/compose/auth.conf:/etc/nats/auth.conf'))).toBe(true);
    expect(flag(services.planner!.command!, '--nats-user')).toBe(nodes.planner.user);
    expect(services.planner!.environment!.SWITCHBOARD_NATS_PASSWORD).toBe(nodes.planner.password);
    for (const name of ['applier-a', 'applier-b', 'applier-host']) {
      const args = services[name]!.command!;
      const entry = nodes.nodes.find((n) => n.name === flag(args, '--node'));
      expect(entry, name).toBeDefined();
      expect(flag(args, '--user'), name).toBe(entry!.user);
      expect(services[name]!.environment!.SWITCHBOARD_NATS_PASSWORD, name).toBe(entry!.password);
    }
  });
});

describe('compose.yaml dry-run profile, run as processes', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'sb-compose-run-'));
  const procs: ChildProcess[] = [];
  let stopping = false;
  let server: NatsServerHandle | undefined;
  let rogue: NatsConnection | undefined;
  afterAll(async () => {
    stopping = true;
    await rogue?.close();
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('the planner and both appliers reach SYNCED through NATS with the compose users, and node-a cannot ACK as node-b', async () => {
    const services = composeConfig('dry-run');
    server = await startNatsServer({
      jetstream: true,
      config: readFileSync(path.join(root, 'deploy/compose/auth.conf'), 'utf8'),
    });
    const apiPort = await freePort();
    const logs = new Map<string, string>();
    for (const name of ['planner', 'applier-a', 'applier-b']) {
      const svc = services[name]!;
      // bind mounts → their host files; named volumes (shared between services) → temp dirs;
      // the image's files (/opt/switchboard) → this checkout
      const mounts = (svc.volumes ?? [])
        .map((v) => v.split(':'))
        .map(([src, dst]) => [dst!, src!.startsWith('/') ? src! : path.join(work, src!)] as const);
      for (const [, src] of mounts) if (src.startsWith(work)) mkdirSync(src, { recursive: true });
      const args = svc.command!.map((a) => {
        if (a.startsWith('nats://')) return server!.url;
        for (const [dst, src] of [...mounts, ['/opt/switchboard', root] as const])
          if (a.startsWith(`${dst}/`) || a === dst) return src + a.slice(dst.length);
        return a;
      });
      args[args.indexOf('--http') + 1] = name === 'planner' ? `127.0.0.1:${apiPort}` : '127.0.0.1:0';
      logs.set(name, '');
      // restart: unless-stopped, as compose would (an applier may start before the planner wrote its key)
      expect(svc.restart, name).toBe('unless-stopped');
      const launch = () => {
        const p = spawn(process.execPath, [path.join(root, 'bin/switchboard'), ...args], {
          env: { ...process.env, ...svc.environment },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        p.stderr!.on('data', (d: Buffer) => logs.set(name, (logs.get(name)! + d.toString()).slice(-4000)));
        p.once('exit', (code) => {
          if (!stopping && code !== null)
            setTimeout(() => {
              if (!stopping) launch();
            }, 300);
        });
        procs.push(p);
      };
      launch();
    }
    const tokenLine = readFileSync(path.join(root, 'deploy/compose/api-tokens'), 'utf8');
    // the one token compose ships is an operator's (its name says so; without the role it was a viewer)
    expect(tokenLine).toMatch(/^\S+ \S+ operator\n$/);
    const token = tokenLine.split(/\s+/)[0]!;
    const status = () =>
      spawnSync(
        process.execPath,
        [
          path.join(root, 'bin/switchboard'),
          'ctl',
          '--server',
          `http://127.0.0.1:${apiPort}`,
          '--token',
          token,
          'status',
          '--json',
        ],
        { encoding: 'utf8' },
      );
    let last = '';
    let lastJson = '';
    for (const deadline = Date.now() + 100_000; Date.now() < deadline; ) {
      const r = status();
      last = r.stdout + r.stderr; // what a failure shows; the status is stdout alone (stderr may warn)
      lastJson = r.status === 0 ? r.stdout : '';
      if (r.status === 0) {
        const s = JSON.parse(r.stdout) as { nodes: { node: string; status: string }[] };
        if (['node-a', 'node-b'].every((name) => s.nodes.some((n) => n.node === name && n.status === 'SYNCED'))) break;
      }
      await new Promise((res) => setTimeout(res, 250));
    }
    // the example manifests may name more nodes than the profile runs appliers for
    const synced = lastJson.startsWith('{')
      ? (JSON.parse(lastJson) as { nodes: { node: string; status: string }[] }).nodes
          .filter((n) => ['node-a', 'node-b'].includes(n.node))
          .map((n) => `${n.node} ${n.status}`)
      : [last];
    expect(synced.sort(), [...logs].map(([n, l]) => `${n}: ${l}`).join('\n')).toEqual([
      'node-a SYNCED',
      'node-b SYNCED',
    ]);

    // per-node permissions are in force on this server: node-a's user cannot publish node-b's ack
    const a = nodes.nodes.find((n) => n.name === 'node-a')!;
    rogue = await connect({ servers: server.url, user: a.user, pass: a.password, inboxPrefix: '_INBOX_node-a' });
    const errors: string[] = [];
    void (async () => {
      for await (const s of rogue!.status())
        if (s.type === 'error') errors.push(String((s as { error?: Error }).error?.message));
    })();
    rogue.publish('sb.ack.node-b', '{}');
    await rogue.flush();
    for (let i = 0; i < 40 && errors.length === 0; i++) await new Promise((res) => setTimeout(res, 50));
    expect(errors.join('\n')).toMatch(/Permissions Violation for Publish to "sb\.ack\.node-b"/);
  }, 150_000);
});
