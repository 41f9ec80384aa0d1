import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  ack,
  nack,
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sendAck,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';

const run = promisify(execFile);
const BIN = new URL('../../../bin/switchboard', import.meta.url).pathname;

let env: PlannerEnv;
let planner: RunningPlanner | undefined;

const start = async () => {
  planner = await runPlanner({
    ...plannerOptions(env),
  });
  await planner.planner.synced;
  return planner;
};
const api = async (path: string, body?: unknown) => {
  const res = await fetch(
    planner!.url + path,
    body === undefined
      ? {}
      : { method: 'POST', body: JSON.stringify(body), headers: { 'x-switchboard-actor': 'tester' } },
  );
  const json = (await res.json()) as Record<string, any>;
  if (!res.ok) throw new Error(`${path}: ${json.error}`);
  return json;
};
const versions = async () => (await api('/versions')).versions as { version: number; hash: string; reason: string }[];

beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  env.write('b.yaml', svcYaml('b', '10.96.0.2'));
});
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

describe('planner with a manifests directory, SQLite and nats-server', () => {
  it('publishes one version after sync, skips no-op edits, rejects a malformed Service alone, survives a restart', async () => {
    await start();
    expect((await versions()).map((v) => v.version)).toEqual([1]);
    const p = planner!.planner;
    expect([...p.data.publishedData().services()].map((s) => s.key).sort()).toEqual(['default/a', 'default/b']);

    // A no-op edit (same objects, different formatting) makes no version.
    env.write('b.yaml', '# reformatted\n' + svcYaml('b', '10.96.0.2'));
    await new Promise((r) => setTimeout(r, 400));
    expect((await versions()).length).toBe(1);

    // A malformed Service is rejected alone: counted, visible, and its last good state stays.
    env.write('b.yaml', svcYaml('b', '10.96.0.2', 99999));
    await until(async () => (await api('/status')).rejectedTotal >= 1, 3000, 'rejection');
    env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1', '10.0.0.2']));
    await until(async () => (await versions()).length === 2, 3000, 'version 2');
    const v2 = p.data.publishedData();
    expect(v2.service('default/b')?.ports[0]?.port).toBe(80);
    expect(v2.service('default/a')?.ports[0]?.endpoints.length).toBe(2);
    const status = await api('/status');
    // the log's disk use and the space left where it lives (review4 G8)
    expect(status.storage).toMatchObject({ bytes: expect.any(Number), freeBytes: expect.any(Number) });
    expect(status.storage.bytes).toBeGreaterThan(0);
    // Rejected once, by the planner (the source emits nameable objects and does not report them again).
    expect(
      status.rejected.filter(
        (r: { kind?: string; namespace?: string; name?: string }) =>
          r.kind === 'Service' && r.namespace === 'default' && r.name === 'b',
      ),
    ).toHaveLength(1);
    expect(status.rejected.filter((r: { ref?: string }) => String(r.ref).includes('default/b'))).toEqual([]);

    // Restart: the log reloads, the stream is not republished twice, numbering continues.
    await planner!.stop();
    await start();
    expect((await versions()).map((v) => v.version)).toEqual([1, 2]);
    env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.3']));
    await until(async () => (await versions()).length === 3, 3000, 'version 3');
    expect((await versions()).map((v) => v.version)).toEqual([1, 2, 3]);
    await until(() => planner!.planner['options'].bus.lastPublishedVersion() === 3, 3000, 'stream at 3');

    // A Service listing another's ClusterIP (and a node's address) in externalIPs loses both claims,
    // and /status names it beside the malformed object (review3 K1).
    env.write('c.yaml', svcYaml('c', '10.96.0.3', 80, ', externalIPs: [10.96.0.1, 192.0.2.1]'));
    await until(async () => (await api('/status')).rejectedTotal === 3, 3000, 'VIP claims rejected');
    expect((await api('/status')).rejected.filter((r: { ref?: string }) => r.ref === 'Service default/c')).toEqual([
      {
        ref: 'Service default/c',
        source: 'VIP claims',
        reason: 'external-ip claim on TCP/10.96.0.1:80 (port http) lost to default/a:http (cluster-ip)',
      },
      {
        ref: 'Service default/c',
        source: 'VIP claims',
        reason:
          "externalIP 192.0.2.1 is the address of node node-1: served on no node (a Service may not take a node's address)",
      },
    ]);
  });

  it('pins, unpins and rolls back data with new versions of the right content', async () => {
    await start();
    env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.9']));
    await until(async () => (await versions()).length === 2, 3000, 'version 2');
    const [v1, v2] = await versions();

    const pinned = await api('/pin', { version: 1, reason: 'bad endpoints' });
    expect(pinned.version).toBe(3);
    let vs = await versions();
    expect(vs[2]!.hash).toBe(v1!.hash);

    // While pinned, events are logged but make no version.
    env.write('b.yaml', svcYaml('b', '10.96.0.22'));
    await until(
      async () => planner!.planner.data.live.data.service('default/b')?.clusterIPs[0] === '10.96.0.22',
      3000,
      'event applied',
    );
    await new Promise((r) => setTimeout(r, 200));
    expect((await versions()).length).toBe(3);

    const unpinned = await api('/unpin', { reason: 'fixed' });
    expect(unpinned.version).toBe(4);
    vs = await versions();
    expect(vs[3]!.hash).not.toBe(v2!.hash);
    expect(vs[3]!.hash).toBe(planner!.planner.data.live.hash());

    const rb = await api('/rollback', { toVersion: 2, reason: 'undo' });
    expect(rb.version).toBe(5);
    expect((await versions())[4]!.hash).toBe(v2!.hash);
    expect(rb.pinned).toMatchObject({ version: 2, kind: 'rollback' });
    // a paged history: the newest of a range, and how many older ones were left out
    const listed = (r: Record<string, any>) => [r.versions.map((v: { version: number }) => v.version), r.omitted];
    expect(listed(await api('/versions?limit=2'))).toEqual([[4, 5], 3]);
    expect(listed(await api('/versions?from=2&to=3'))).toEqual([[2, 3], 0]);
    expect(listed(await api('/versions'))).toEqual([[1, 2, 3, 4, 5], 0]);
    await expect(api('/versions?limit=0')).rejects.toThrow(/limit must be a positive integer/);
    // digits only (Number() read these as 1), and a range given backwards is refused as ctl refuses it
    for (const q of [
      '/diff?a=0x1&b=1',
      '/diff?a=1&b=%201',
      '/diff?a=1e0&b=1',
      '/config?revision=0x1',
      '/versions?from=0b1',
    ])
      await expect(api(q), q).rejects.toThrow(/must be a positive integer/);
    await expect(api('/versions?from=3&to=2')).rejects.toThrow(/from 3 is after to 2: the range is backwards/);
    const ctl = await run(BIN, ['ctl', '--server', planner!.url, 'versions', '--limit', '2']);
    expect(ctl.stdout).toMatch(
      /^VERSION .*\n4 .*\n5 .*\n3 older versions not listed \(--to 3 or --limit for more\)\n$/s,
    );
    // Every operation is in the log with actor and reason.
    const ops = planner!.planner['options'].log.operations().filter((o: { kind: string }) => o.kind !== 'config');
    expect(ops.map((o: { kind: string; actor: string; reason: string }) => [o.kind, o.actor, o.reason])).toEqual([
      ['pin', 'tester', 'bad endpoints'],
      ['unpin', 'tester', 'fixed'],
      ['rollback', 'tester', 'undo'],
    ]);
  });

  it('an open API refuses what another web page would make the browser do, and decodes a body split mid-character', async () => {
    await start();
    const post = (headers: Record<string, string>, host?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const u = new URL(planner!.url);
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            path: '/pin',
            method: 'POST',
            headers: { ...headers, ...(host ? { host } : {}) },
          },
          (res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode!, body }));
          },
        );
        req.on('error', reject);
        // "café" with its é (0xc3 0xa9) split across two writes, one TCP read each on loopback
        const bytes = Buffer.from('{"version": 1, "reason": "café pin"}');
        const cut = bytes.indexOf(0xc3) + 1;
        req.write(bytes.subarray(0, cut));
        setTimeout(() => req.end(bytes.subarray(cut)), 50);
      });
    const self = new URL(planner!.url).host;
    // a page elsewhere: refused before anything is read or done
    expect(await post({ origin: 'http://evil.example', 'content-type': 'text/plain' })).toMatchObject({ status: 403 });
    expect(await post({ 'sec-fetch-site': 'cross-site' })).toMatchObject({ status: 403 });
    expect(await post({ origin: 'null' })).toMatchObject({ status: 403 });
    // DNS rebinding: a name that resolves to loopback is still not a loopback name, reads included
    const rebound = await post({}, `evil.example:${new URL(planner!.url).port}`);
    expect(rebound.status).toBe(421);
    expect(JSON.parse(rebound.body).error).toMatch(/^Host "evil\.example:\d+" is refused/);
    const pins = () =>
      planner!.planner['options'].log.operations().filter((o: { kind: string }) => o.kind !== 'config') as {
        reason: string;
      }[];
    expect(pins()).toEqual([]);
    // the console's own page (same origin) and ctl/curl (no Origin) may write
    expect(await post({ origin: `http://${self}`, 'sec-fetch-site': 'same-origin' })).toMatchObject({ status: 200 });
    expect(await post({}, `localhost:${new URL(planner!.url).port}`)).toMatchObject({ status: 200 });
    expect(pins().map((o) => o.reason)).toEqual(['café pin', 'café pin']);
  });

  it('rolls a mode change out in waves, halts on NACK, and ctl status --json shows SYNCED and ERROR', async () => {
    await start();
    const p = planner!.planner;
    const expected = (node: string, rev: number) =>
      nodeStateHash(renderNodeState(p.data.publishedData(), node, p.config.revision(rev)!.config));
    await sendAck(env.nc, ack('node-1', 1, 1, expected('node-1', 1), p.data.latest()!.hash));
    await sendAck(env.nc, ack('node-2', 1, 1, expected('node-2', 1), p.data.latest()!.hash));
    await until(() => p.status().every((n) => n.status === 'SYNCED'), 3000, 'SYNCED');

    const { stdout } = await run(BIN, ['ctl', '--server', planner!.url, 'status', '--json']);
    const s = JSON.parse(stdout) as { nodes: { node: string; status: string; hashMatch: boolean }[] };
    expect(s.nodes.map((n) => [n.node, n.status, n.hashMatch])).toEqual([
      ['node-1', 'SYNCED', true],
      ['node-2', 'SYNCED', true],
    ]);

    const mode = await api('/mode', { mode: 'nftables', waves: '1,100%', pauseOnError: true, reason: 'try nftables' });
    expect(mode.revision).toBe(2);
    expect(mode.state.rollout).toMatchObject({ status: 'running', wave: 0, waves: [['node-1'], ['node-1', 'node-2']] });
    expect(p.targetOf('node-1').configRevision).toBe(2);
    expect(p.targetOf('node-2').configRevision).toBe(1);

    // it runs the revision's mode: an ACK naming another mode fails the wave (probe24 F1)
    await sendAck(env.nc, { ...ack('node-1', 1, 2, expected('node-1', 2), p.data.latest()!.hash), mode: 'nftables' });
    await until(() => p.config.state.rollout?.wave === 1, 3000, 'wave 2');
    expect(p.targetOf('node-2').configRevision).toBe(2);
    await sendAck(env.nc, nack('node-2', 1, 2, 'nft: no such table'));
    await until(() => p.config.state.rollout?.status === 'paused', 3000, 'pause');
    expect(p.config.state.defaultRevision).toBe(1);
    expect(p.config.state.rollout?.haltedBy).toEqual({ node: 'node-2', error: 'nft: no such table' });

    const after = JSON.parse(
      (await run(BIN, ['ctl', '--server', planner!.url, 'status', '--json'])).stdout,
    ) as typeof s;
    expect(after.nodes.map((n) => [n.node, n.status])).toEqual([
      ['node-1', 'SYNCED'],
      ['node-2', 'ERROR'],
    ]);

    // Instant rollback: every node back on revision 1 (node-2 runs it already: SYNCED again).
    const rb = await api('/rollback', { reason: 'nft broken on node-2' });
    expect(rb).toMatchObject({ defaultRevision: 1, rollout: { status: 'rolled-back' } });
    expect(p.targetOf('node-1').configRevision).toBe(1);
    expect(p.status().find((n) => n.node === 'node-2')!.status).toBe('SYNCED');

    // Usage errors exit 2, failures 1 (in-process: spawning tsx per case costs seconds).
    const { main } = await import('../../../services/cli/main.ts');
    expect(await main(['ctl', '--server', planner!.url, 'pin'])).toBe(2);
    expect(await main(['ctl', '--server', planner!.url, 'pin', '--version', '99'])).toBe(1);
  });
});
