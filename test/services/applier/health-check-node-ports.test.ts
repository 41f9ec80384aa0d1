import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import pino from 'pino';
import {
  contentHash,
  DEFAULT_PROXY_CONFIG,
  projectKubeObject,
  readKubeObject,
  type EndpointEntry,
  type NodeObject,
  type ServiceEntry,
} from '../../../libs/model/index.ts';
import { buildNodeFacts } from '../../../libs/planner/index.ts';
import {
  startApplierService,
  type ApplierService,
  type ApplierServiceOptions,
} from '../../../services/applier/applier-service.ts';
import { healthCheckListenAddresses, healthCheckPorts } from '../../../services/applier/health-check-node-ports.ts';
import { nodeCred, startBusWorld, WatchedDataplane, type BusWorld } from '../../libs/bus/bus-harness.ts';
import { node, serviceEntry, VersionMaker } from '../../libs/bus/fixtures.ts';
import { freePort } from '../../support/nats-server.ts';

let world: BusWorld | undefined;
let applier: ApplierService | undefined;
const blockers: Server[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await applier?.stop();
  applier = undefined;
  await world?.close();
  world = undefined;
  for (const b of blockers.splice(0)) await new Promise((r) => b.close(r));
});

function ep(ip: string, nodeName: string, o: Partial<EndpointEntry> = {}): EndpointEntry {
  return { ip, port: 8080, nodeName, zone: '', ready: true, serving: true, terminating: false, hintZones: [], ...o };
}

/** A LoadBalancer with externalTrafficPolicy Local and the given health check node port. */
function etpLocal(key: string, i: number, hcPort: number, endpoints: EndpointEntry[]): ServiceEntry {
  return {
    ...serviceEntry(
      key,
      [`10.96.0.${i}`],
      [{ name: 'http', protocol: 'TCP', port: 80, nodePort: 30000 + i, endpoints }],
      true,
    ),
    loadBalancerIngress: [`198.51.100.${i}`],
    externalTrafficPolicy: 'Local',
    healthCheckNodePort: hcPort,
  };
}

/** GET, or the connection error's code (ECONNREFUSED once a port is closed). */
async function get(port: number, path = '/', host = '127.0.0.1'): Promise<{ status: number; body: any } | string> {
  try {
    const r = await fetch(`http://${host}:${port}${path}`);
    return { status: r.status, body: await r.json() };
  } catch (e) {
    return ((e as Error).cause as { code?: string } | undefined)?.code ?? String(e);
  }
}

/** Polls until `ok` holds for the answer (a loaded 2-core machine: generous bound, no fixed sleep). */
async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T = await probe();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await probe();
  }
  return last;
}

const status = (s: number) => (a: Awaited<ReturnType<typeof get>>) => typeof a === 'object' && a.status === s;

/** A planner in miniature on `w`: each call publishes the next version and makes it the target. */
function publisher(w: BusWorld): (delta: Parameters<VersionMaker['next']>[0]) => Promise<void> {
  const m = new VersionMaker();
  return async (delta) => {
    const v = m.next(delta);
    await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await w.targets.setDefaultTarget({ version: m.version, configRevision: 0 });
  };
}

/** An in-process dry-run applier for n1 on `w` (a recording dataplane), with `extra` options. */
function startApplier(w: BusWorld, extra: Partial<ApplierServiceOptions>): Promise<ApplierService> {
  return startApplierService({
    node: 'n1',
    nats: w.server.url,
    mode: 'dry-run',
    http: '127.0.0.1:0',
    dataplane: new WatchedDataplane(),
    auth: nodeCred('n1'),
    heartbeatMs: 100,
    logger: pino({ level: 'silent' }),
    ...extra,
  });
}

describe('health check node ports (kube-proxy service_health.go)', () => {
  it('counts distinct local ready endpoint IPs of ETP=Local Services only; dual stack counts a pod once', () => {
    const ports = healthCheckPorts(
      [
        etpLocal('ns/a', 1, 31001, [
          ep('10.1.0.1', 'n1'),
          ep('10.1.0.1', 'n1', { port: 9090 }), // same IP, other port: one endpoint
          ep('10.1.0.2', 'n1', { ready: false, serving: true, terminating: true }), // draining: not counted
          ep('10.1.0.3', 'n2'),
          ep('fd00::1', 'n1'),
        ]),
        { ...etpLocal('ns/cluster', 2, 31002, [ep('10.1.0.4', 'n1')]), externalTrafficPolicy: 'Cluster' },
        etpLocal('ns/none', 3, 0, [ep('10.1.0.5', 'n1')]),
        etpLocal('ns/remote', 4, 31004, [ep('10.1.0.6', 'n2')]),
      ],
      'n1',
    );
    expect([...ports]).toEqual([
      ['ns/a', { port: 31001, localEndpoints: 1 }],
      ['ns/remote', { port: 31004, localEndpoints: 0 }],
    ]);
  });

  it('an applier serves them from the version it runs (200 with the count / 503), follows new versions, closes them, and serves /healthz + /livez on its own port (stale: 503)', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const [locPort, remPort, healthzPort] = [await freePort(), await freePort(), await freePort()];
    const publish = publisher(world);
    const loc = etpLocal('ns/loc', 1, locPort, [ep('10.1.0.1', 'n1'), ep('10.1.0.2', 'n1'), ep('10.1.0.3', 'n2')]);
    const rem = etpLocal('ns/rem', 2, remPort, [ep('10.1.0.4', 'n2')]);
    await publish({ upsertServices: [loc, rem], upsertNodes: [node('n1'), node('n2')] });
    applier = await startApplier(world, {
      healthzBindAddress: `127.0.0.1:${healthzPort}`,
      healthzTimeoutMs: 1500,
      healthCheckNodePorts: { host: '127.0.0.1' },
    });

    expect(await until('loc up', () => get(locPort), status(200))).toEqual({
      status: 200,
      body: { service: { namespace: 'ns', name: 'loc' }, localEndpoints: 2, serviceProxyHealthy: true },
    });
    expect(await until('rem up', () => get(remPort, '/healthz'), status(503))).toEqual({
      status: 503,
      body: { service: { namespace: 'ns', name: 'rem' }, localEndpoints: 0, serviceProxyHealthy: true },
    });
    expect(await get(healthzPort, '/healthz')).toMatchObject({ status: 200, body: { nodeEligible: true } });
    expect(await get(healthzPort, '/livez')).toMatchObject({ status: 200 });

    // v2: loc's local pods are gone (moved to n2): the node turns the load balancer away
    await publish({ upsertServices: [{ ...loc, ports: [{ ...loc.ports[0]!, endpoints: [ep('10.1.0.3', 'n2')] }] }] });
    expect(await until('loc down', () => get(locPort), status(503))).toMatchObject({ body: { localEndpoints: 0 } });

    // v3: rem deleted: its port is closed; loc's stays
    await publish({ removeServices: ['ns/rem'] });
    expect(
      await until(
        'rem closed',
        () => get(remPort),
        (a) => a === 'ECONNREFUSED',
      ),
    ).toBe('ECONNREFUSED');
    expect(await get(locPort)).toMatchObject({ status: 503 });

    // v4: this node's Node object deleted: /healthz 503 (drain it), /livez still 200 (kube-proxy's split)
    await publish({ removeNodes: ['n1'] });
    const gone = await until('healthz 503', () => get(healthzPort, '/healthz'), status(503));
    expect(gone).toMatchObject({ body: { nodeEligible: false, reason: expect.stringMatching(/Node n1 .*deleted/) } });
    expect(await get(healthzPort, '/livez')).toMatchObject({ status: 200 });

    // a target it cannot program (version 9 was never published): stale after the timeout
    await world.targets.setDefaultTarget({ version: 9, configRevision: 0 });
    const stale = await until('livez 503', () => get(healthzPort, '/livez'), status(503));
    expect(stale).toMatchObject({ body: { reason: expect.stringMatching(/^target version 9 .* not programmed for/) } });
    expect(await get(locPort)).toMatchObject({ status: 503, body: { serviceProxyHealthy: false } });
    const h = (await (await fetch(`http://127.0.0.1:${applier.httpPort}/healthz`)).json()) as any;
    expect(h.proxier).toMatchObject({ healthy: false, nodeEligible: false });

    await applier.stop();
    applier = undefined;
    expect(await get(locPort)).toBe('ECONNREFUSED');
    expect(await get(healthzPort, '/healthz')).toBe('ECONNREFUSED');
  });

  it('a health check port another process holds: the node still ACKs, says so on /healthz and in metrics, and takes the port once it is free', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const port = await freePort();
    const blocker = createServer();
    blockers.push(blocker);
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    await publisher(world)({
      upsertServices: [etpLocal('ns/loc', 1, port, [ep('10.1.0.1', 'n1')])],
      upsertNodes: [node('n1')],
    });
    applier = await startApplier(world, { healthCheckNodePorts: { host: '127.0.0.1', retryMs: 100 } });
    await world.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack 1');
    const health = async (): Promise<any> => (await fetch(`http://127.0.0.1:${applier!.httpPort}/healthz`)).json();
    const h = await until('failure reported', health, (b) => b.healthCheckNodePorts?.failed.length === 1);
    expect(h.healthy).toBe(true); // what it programs is not in question
    expect(h.healthCheckNodePorts.failed[0]).toMatchObject({ service: 'ns/loc', port, error: /EADDRINUSE/ });
    const metrics = await (await fetch(`http://127.0.0.1:${applier.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^switchboard_applier_health_check_node_ports\{state="failed"\} 1$/m);
    expect(world.received.all.some((e) => e.kind === 'nack')).toBe(false);

    await new Promise((r) => blocker.close(r));
    blockers.length = 0;
    expect(await until('taken over', () => get(port), status(200))).toMatchObject({ body: { localEndpoints: 1 } });
    expect((await health()).healthCheckNodePorts).toEqual({
      serving: [{ service: 'ns/loc', port, localEndpoints: 1, addresses: ['127.0.0.1'] }],
      failed: [],
    });
  });

  it('`switchboard applier --healthz-bind-address … --health-check-node-ports on` in dry-run: the process serves both; a bad address exits 2', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const [hcPort, healthzPort] = [await freePort(), await freePort()];
    await publisher(world)({
      upsertServices: [etpLocal('ns/loc', 1, hcPort, [ep('10.1.0.1', 'n1')])],
      upsertNodes: [node('n1')],
    });
    const bin = path.resolve('bin/switchboard');
    const args = ['applier', '--node', 'n1', '--nats', world.server.url, '--mode', 'dry-run'];
    const creds = ['--user', 'node-n1', '--password', 'pw-n1'];
    const p = spawn(
      process.execPath,
      [bin, ...args, ...creds, '--healthz-bind-address', `127.0.0.1:${healthzPort}`, '--health-check-node-ports', 'on'],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
    children.push(p);
    const exited = new Promise<number | null>((res) => p.once('exit', (c) => res(c)));
    expect(await until('hc port', () => get(hcPort), status(200))).toMatchObject({ body: { localEndpoints: 1 } });
    expect(await until('healthz', () => get(healthzPort, '/healthz'), status(200))).toMatchObject({
      body: { nodeEligible: true },
    });
    p.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await get(hcPort)).toBe('ECONNREFUSED');

    // a usage mistake: one line, exit 2 (one start-up only: each costs seconds on a loaded machine)
    const u = spawn(process.execPath, [bin, ...args, ...creds, '--healthz-bind-address', 'nowhere'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(u);
    let err = '';
    u.stderr!.on('data', (b: Buffer) => {
      err += b;
    });
    expect(await new Promise((res) => u.once('exit', res))).toBe(2);
    expect(err).toMatch(/--healthz-bind-address "nowhere": not an address/);
  });

  it("where they listen: every address unless nodePortAddresses selects some (a /0 selects every one, as kube-proxy's MatchAll)", () => {
    // the node port addresses the CIDRs select (render-node-state.ts renderContext's nodePortIPs)
    const selected = ['10.0.0.5', 'fd00::5'];
    const where = (nodePortAddresses: string[]) =>
      healthCheckListenAddresses({ ...DEFAULT_PROXY_CONFIG, nodePortAddresses }, selected);
    expect(where([])).toBeUndefined();
    expect(where(['0.0.0.0/0'])).toBeUndefined();
    expect(where(['10.0.0.0/8', '::/0'])).toBeUndefined();
    expect(where(['10.0.0.0/8', 'fd00::/8'])).toEqual(selected);
  });

  it('nodePortAddresses: an applier listens only on the node port addresses it selects, and moves when the config revision changes', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const port = await freePort();
    // two of this host's loopback addresses stand for the Node's two addresses
    const n1 = { name: 'n1', addresses: ['127.0.0.1', '127.0.0.2'], zone: '' };
    const config = { ...DEFAULT_PROXY_CONFIG, nodePortAddresses: ['127.0.0.2/32'] };
    await world.targets.putConfigRevision({
      revision: 1,
      config,
      hash: contentHash(config),
      reason: 'np',
      createdAt: 'x',
    });
    const m = new VersionMaker();
    const v = m.next({ upsertServices: [etpLocal('ns/loc', 1, port, [ep('10.1.0.1', 'n1')])], upsertNodes: [n1] });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 1 });
    applier = await startApplier(world, { healthCheckNodePorts: { retryMs: 100 } });

    expect(await until('selected address', () => get(port, '/', '127.0.0.2'), status(200))).toMatchObject({
      body: { localEndpoints: 1 },
    });
    expect(await get(port, '/', '127.0.0.1')).toBe('ECONNREFUSED');
    const hc = async (): Promise<any> =>
      ((await (await fetch(`http://127.0.0.1:${applier!.httpPort}/healthz`)).json()) as any).healthCheckNodePorts;
    expect(await hc()).toEqual({
      serving: [{ service: 'ns/loc', port, localEndpoints: 1, addresses: ['127.0.0.2'] }],
      failed: [],
    });

    // back to the default revision (no nodePortAddresses): every address
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    await until('every address', () => get(port, '/', '127.0.0.1'), status(200));
    expect(await get(port, '/', '127.0.0.2')).toMatchObject({ status: 200 });
    expect((await hc()).serving).toEqual([{ service: 'ns/loc', port, localEndpoints: 1, addresses: ['*'] }]);
  });

  it("/healthz 503 (not /livez) while this node's Node is on its way out: a deletionTimestamp or the cluster autoscaler's taint, read from the Node object through the planner's projection", async () => {
    const nodeObject = (o: { deletionTimestamp?: string; taints?: object[] }): NodeObject => {
      const raw = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'n1', ...(o.deletionTimestamp ? { deletionTimestamp: o.deletionTimestamp } : {}) },
        spec: { taints: o.taints ?? [] },
        status: { addresses: [{ type: 'InternalIP', address: '192.168.0.1' }] },
      };
      // what the planner logs and reads (kube-projection.ts, kube-readers.ts)
      const r = readKubeObject(projectKubeObject(raw));
      if (!r.ok || r.object.kind !== 'Node') throw new Error(`not read: ${JSON.stringify(r)}`);
      return r.object;
    };
    const plain = buildNodeFacts(nodeObject({ taints: [{ key: 'k', effect: 'NoSchedule' }] }));
    expect(plain).toEqual(node('n1')); // a Node not leaving: the facts (and their hash) as before
    const tainted = buildNodeFacts(
      nodeObject({ taints: [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1796200000', effect: 'NoSchedule' }] }),
    );
    const deleting = buildNodeFacts(nodeObject({ deletionTimestamp: '2026-12-02T16:00:00Z' }));
    expect([tainted.beingRemoved, deleting.beingRemoved]).toEqual([
      'ToBeDeletedByClusterAutoscaler',
      'deletionTimestamp',
    ]);

    world = await startBusWorld({ nodes: ['n1'] });
    const healthzPort = await freePort();
    const publish = publisher(world);
    await publish({ upsertServices: [], upsertNodes: [plain] });
    applier = await startApplier(world, { healthzBindAddress: `127.0.0.1:${healthzPort}` });
    await until('eligible', () => get(healthzPort, '/healthz'), status(200));

    await publish({ upsertNodes: [tainted] });
    expect(await until('tainted', () => get(healthzPort, '/healthz'), status(503))).toMatchObject({
      body: { nodeEligible: false, reason: 'Node n1 is being removed (taint ToBeDeletedByClusterAutoscaler)' },
    });
    expect(await get(healthzPort, '/livez')).toMatchObject({ status: 200 });

    await publish({ upsertNodes: [plain] }); // the autoscaler changed its mind: the taint is gone
    await until('eligible again', () => get(healthzPort, '/healthz'), status(200));

    await publish({ upsertNodes: [deleting] });
    expect(await until('deleting', () => get(healthzPort, '/healthz'), status(503))).toMatchObject({
      body: { nodeEligible: false, reason: 'Node n1 is being removed (it has a deletionTimestamp)' },
    });
    expect(await get(healthzPort, '/livez')).toMatchObject({ status: 200 });
  });
});
