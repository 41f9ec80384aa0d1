import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { startApplierService, type ApplierService } from '../../services/applier/applier-service.ts';
import { nodeCred, startBusWorld, WatchedDataplane, type BusWorld } from '../libs/bus/bus-harness.ts';
import { node, service, VersionMaker } from '../libs/bus/fixtures.ts';

// The applier DaemonSet's probes (deploy/kubernetes/base/applier.yaml), read from the rendered base
// and asked of the real applier service (dry-run dataplane, real nats-server): readiness is 503
// until the node runs its target and while it cannot follow it (NATS away), liveness is 503 only
// when nothing short of a restart lets it follow again (the client closed the connection for good)
// and stays 200 through a NATS outage, which a restart would not fix (probe18 D1: readiness was
// /healthz, 200 before the applier ever reached NATS; liveness /metrics, never 503).

type Probe = { httpGet: { path: string; port: number | string } };
type Container = {
  name: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
};

function rendered(): { kind: string; metadata: { name: string }; spec: any }[] {
  const text = execFileSync('kubectl', ['kustomize', 'deploy/kubernetes/base'], { encoding: 'utf8' });
  return parseAllDocuments(text).map((d) => d.toJS());
}

let world: BusWorld | undefined;
let svc: ApplierService | undefined;
afterEach(async () => {
  await svc?.stop();
  await world?.close();
  svc = world = undefined;
});

describe('deploy/kubernetes applier probes', () => {
  it('every probe of every Switchboard container asks the port its --http serves', () => {
    let checked = 0;
    for (const o of rendered().filter((x) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(x.kind))) {
      const pod = o.spec.template.spec;
      for (const c of [...(pod.initContainers ?? []), ...pod.containers] as Container[]) {
        const i = c.args?.indexOf('--http') ?? -1;
        for (const p of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
          if (!p || i < 0) continue;
          const httpPort = Number(c.args![i + 1]!.split(':').pop());
          const port =
            typeof p.httpGet.port === 'number'
              ? p.httpGet.port
              : c.ports?.find((x) => x.name === p.httpGet.port)?.containerPort;
          expect(port, `${o.metadata.name}/${c.name} ${p.httpGet.path}`).toBe(httpPort);
          checked++;
        }
      }
    }
    expect(checked).toBe(9); // planner 3, issuer 2, node-credentials 2, applier 2
  });

  it('readiness: 503 until on target and while NATS is away; liveness: 503 only once the connection is closed for good', async () => {
    const ds = rendered().find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'switchboard-applier')!;
    const a = (ds.spec.template.spec.containers as Container[]).find((c) => c.name === 'applier')!;
    const readiness = a.readinessProbe!.httpGet.path;
    const liveness = a.livenessProbe!.httpGet.path;

    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    const v = m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    await world.server.kill(); // the applier starts before NATS answers (a fresh install)

    svc = await startApplierService({
      node: 'n1',
      nats: world.server.url,
      mode: 'dry-run',
      http: '127.0.0.1:0',
      dataplane: new WatchedDataplane(),
      auth: nodeCred('n1'),
      heartbeatMs: 100,
      maxBackoffMs: 200,
      logger: pino({ level: 'silent' }),
    });
    const get = async (p: string) => {
      const r = await fetch(`http://127.0.0.1:${svc!.httpPort}${p}`);
      return { status: r.status, body: (await r.json()) as { reason?: string } };
    };
    const status = async (p: string) => (await get(p)).status;

    // not reached NATS yet: not ready (a rollout must not count it available), alive
    expect(await get(readiness)).toMatchObject({
      status: 503,
      body: { reason: expect.stringMatching(/^waiting for NATS/) },
    });
    expect(await status(liveness)).toBe(200);

    await world.server.start();
    await expect.poll(() => status(readiness), { timeout: 15_000 }).toBe(200);
    expect(await status(liveness)).toBe(200);

    // NATS away: not following its target, so not ready; a restart would not bring NATS back
    await world.server.kill();
    await expect.poll(() => status(readiness), { timeout: 15_000 }).toBe(503);
    expect((await get(readiness)).body.reason).toMatch(/^not following its target: NATS connection lost/);
    expect(await status(liveness)).toBe(200);
    await world.server.start();
    await expect.poll(() => status(readiness), { timeout: 15_000 }).toBe(200);

    // the client gives up on the connection (it never dials again: probe16 I1 was one way there)
    await svc.connection()!.close();
    await expect.poll(() => status(liveness), { timeout: 5_000 }).toBe(503);
    expect((await get(liveness)).body.reason).toMatch(/NATS connection is closed for good/);
    expect(await status(readiness)).toBe(503);
  }, 60_000);
});
