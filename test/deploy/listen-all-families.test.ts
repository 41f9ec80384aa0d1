import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { BIN, freePort } from '../faults/fleet.ts';

// probe18 D5: every Switchboard container of deploy/kubernetes/base listens on "0.0.0.0:PORT",
// and the kubelet probes the pod's (for the applier: the node's) first IP, which is IPv6 on an
// IPv6-only or IPv6-first dual-stack cluster. Node's "0.0.0.0" listened on IPv4 only, so there
// every probe was refused: the planner never ready (restarted by its startup probe), the
// credentials sidecar never started its applier. "0.0.0.0" now means every address of every
// family, as Go's does (kube-proxy's 0.0.0.0:10256, nats-server's listen). Checked on ::1 with the
// real CLI processes, NATS unreachable (each serves HTTP while it waits).

const children: ChildProcess[] = [];
let dir: string | undefined;
afterAll(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('the base listens on 0.0.0.0, and planner, applier and credentials sidecar answer there on IPv6 too', async () => {
  const objects = parseAllDocuments(
    execFileSync('kubectl', ['kustomize', 'deploy/kubernetes/base'], { encoding: 'utf8' }),
  ).map((d) => d.toJS());
  const listens = objects
    .filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind))
    .flatMap((o) => [...(o.spec.template.spec.initContainers ?? []), ...o.spec.template.spec.containers])
    .filter((c: { args?: string[] }) => c.args?.includes('--http'))
    .map((c: { args: string[] }) => c.args[c.args.indexOf('--http') + 1]!.replace(/:\d+$/, ''));
  // issuer, planner, sidecar, applier; the last two (host network) on the node's addresses, each
  // family listed by the downward API (probe18 D6: kubernetes-base.test.ts, base-args-run.test.ts)
  expect(listens).toEqual(['0.0.0.0', '0.0.0.0', '[$(HOST_IPS)]', '[$(HOST_IPS)]']);

  dir = mkdtempSync(path.join(tmpdir(), 'sb-listen-'));
  mkdirSync(path.join(dir, 'manifests'));
  writeFileSync(path.join(dir, 'creds'), 'not used: NATS is not reached\n');
  const nats = `nats://127.0.0.1:${await freePort()}`; // nothing listens there
  const run = async (args: string[]) => {
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, ...args, '--http', `0.0.0.0:${port}`], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    children.push(child);
    return port;
  };
  const ports = {
    '/livez': await run([
      'planner',
      '--manifests',
      path.join(dir, 'manifests'),
      '--nats',
      nats,
      '--db',
      path.join(dir, 'p.db'),
      '--insecure-open-api',
    ]),
    '/healthz': await run([
      'credentials',
      'fetch',
      '--node',
      'node-a',
      '--nats',
      nats,
      '--bootstrap-creds',
      path.join(dir, 'creds'),
      '--token-file',
      path.join(dir, 'creds'),
      '--out',
      path.join(dir, 'node.creds'),
    ]),
    '/metrics': await run([
      'applier',
      '--node',
      'node-a',
      '--nats',
      nats,
      '--mode',
      'dry-run',
      '--state-dir',
      dir,
      '--healthz-bind-address',
      'off',
    ]),
  };
  const status = (host: string, port: number, p: string) =>
    fetch(`http://${host}:${port}${p}`)
      .then((r) => r.status)
      .catch(() => 0);
  for (const [p, port] of Object.entries(ports)) {
    await expect.poll(() => status('127.0.0.1', port, p), { timeout: 15_000, interval: 200 }).toBe(200);
    expect(await status('[::1]', port, p), `${p} on [::1]:${port}`).toBe(200);
  }
}, 60_000);
