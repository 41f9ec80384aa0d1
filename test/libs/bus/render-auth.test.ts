import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { ApplierSession } from '../../../libs/applier/index.ts';
import {
  AckCollector,
  connectBus,
  loadOrCreateSigningKey,
  readVerifierFile,
  TargetStore,
  VersionPublisher,
} from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { Events, WatchedDataplane } from './bus-harness.ts';
import { node, service, VersionMaker } from './fixtures.ts';

const run = promisify(execFile);
const SCRIPT = path.resolve('deploy/nats/render-auth.ts');
let dir: string | undefined;
let server: NatsServerHandle | undefined;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await server?.stop();
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('deploy/nats/render-auth.ts --nodes --dir (NATS with per-node permissions for the demo and compose)', () => {
  it('writes a server config nats-server accepts, secrets only its owner reads, and a signing key; the credentials work as intended', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sb-render-auth-'));
    const { stdout } = await run(process.execPath, [
      '--import',
      'tsx',
      SCRIPT,
      '--nodes',
      'node-a,node-b.example',
      '--dir',
      dir,
      '--listen',
      '127.0.0.1:4999',
      '--signing-key',
      path.join(dir, 'planner.pem'),
    ]);
    const out = JSON.parse(stdout) as Record<string, string>;
    expect(out.plannerKey).toBe(path.join(dir, 'planner.pem.pub'));
    await run('/usr/sbin/nats-server', ['-t', '-c', out.serverConf!]); // the server's own config check
    expect(statSync(out.credentials!).mode & 0o077).toBe(0);
    const creds = JSON.parse(readFileSync(out.credentials!, 'utf8')) as {
      planner: { user: string; password: string };
      nodes: Record<string, { user: string; password: string }>;
    };
    server = await startNatsServer({ jetstream: true, config: readFileSync(out.authConf!, 'utf8') });
    const planner = await connectBus({ servers: server.url, name: 'planner', auth: creds.planner });
    closers.push(() => planner.close());
    const signer = loadOrCreateSigningKey(out.signingKey!);
    const publisher = await VersionPublisher.open({ nc: planner, signer });
    const targets = await TargetStore.open({ nc: planner, signer });
    const acks = new Events<string>();
    const collector = await AckCollector.start({
      nc: planner,
      callbacks: { onAck: (a) => acks.push(`${a.node}@${a.version}`) },
    });
    closers.push(async () => collector.stop());
    const m = new VersionMaker();
    const v = m.next({ upsertServices: [service(1)], upsertNodes: [node('node-a')] });
    await publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const nc = await connectBus({ servers: server.url, name: 'node-a', node: 'node-a', auth: creds.nodes['node-a'] });
    closers.push(() => nc.close());
    const session = await ApplierSession.start({
      nc,
      node: 'node-a',
      dataplane: new WatchedDataplane(),
      heartbeatMs: 0,
      verifier: readVerifierFile(out.plannerKey!),
    });
    closers.push(() => session.stop());
    await acks.waitFor((a) => a === 'node-a@1', 'node-a acks version 1');
    // node-b's credentials cannot act as node-a
    const b = await connectBus({
      servers: server.url,
      name: 'node-b',
      node: 'node-b.example',
      auth: creds.nodes['node-b.example'],
    });
    closers.push(() => b.close());
    b.publish('sb.ack.node-a', JSON.stringify({ type: 'ACK', node: 'node-a', version: 9 }));
    b.publish('sb.v.delta.2', 'garbage');
    await b.flush().catch(() => undefined);
    expect(acks.all).toEqual(['node-a@1']);
  });

  it('refuses bad input with a usage error (exit 2)', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', SCRIPT, '--nodes', 'a b', '--dir', '/tmp/x']).catch(
      (e) => e,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--nodes: invalid node name "a b"/);
  });
});

describe('deploy/nats/render-auth.ts NODES.json: bad input is one line, exit 2, no stack trace (review5 F6)', () => {
  it('a missing file, a file that is not JSON, and JSON of another shape', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sb-render-auth-'));
    const file = (name: string, text = '') => {
      writeFileSync(path.join(dir!, name), text);
      return path.join(dir!, name);
    };
    const cases: [string, string][] = [
      [path.join(dir, 'gone.json'), 'no such file'],
      [file('text.json'), 'Unexpected end of JSON input'],
      [file('shape.json', '{"nodes": 5}'), '"planner" must be an object {user, password}'],
      [file('nodes.json', '{"planner": {"user": "p", "password": "x"}, "nodes": {}}'), '"nodes" must be a list'],
    ];
    for (const [input, line] of cases) {
      const r = await run(process.execPath, ['--import', 'tsx', SCRIPT, input]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
      expect({ input, code: r.code }).toEqual({ input, code: 2 });
      expect(r.stderr.startsWith(`render-auth: ${input}: `), r.stderr).toBe(true);
      expect(r.stderr, input).toContain(line);
      expect(r.stderr.trimEnd().split('\n'), input).toHaveLength(1);
    }
  });
});
