import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import pino from 'pino';
import type { NodeState } from '../../../libs/model/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { nodeCred, startBusWorld, WatchedDataplane, type BusWorld } from '../../libs/bus/bus-harness.ts';
import { node, service, VersionMaker } from '../../libs/bus/fixtures.ts';

let world: BusWorld | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await world?.close();
  world = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function seed(w: BusWorld) {
  const m = new VersionMaker();
  const v = m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
  await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
  await w.targets.setDefaultTarget({ version: 1, configRevision: 0 });
  return m;
}

describe('applier service', () => {
  it('serves /healthz and /metrics, persists what it applied, stops without cleaning up', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    await seed(world);
    const stateDir = mkdtempSync(path.join(tmpdir(), 'sb-applier-'));
    dirs.push(stateDir);
    // the full GC after a big apply (gc-after-big-apply.ts), on a heap that grows only when applied
    let heap = 0;
    const collected: number[] = [];
    const dataplane = new (class extends WatchedDataplane {
      override async apply(state: NodeState) {
        heap += 100;
        return super.apply(state);
      }
    })();
    const svc = await startApplierService({
      node: 'n1',
      nats: world.server.url,
      mode: 'dry-run',
      http: '127.0.0.1:0',
      stateDir,
      dataplane,
      auth: nodeCred('n1'),
      heartbeatMs: 100,
      logger: pino({ level: 'silent' }),
      gcAfterBigApply: {
        minGrowthBytes: 100,
        heapUsedBytes: () => heap,
        collect: () => ({ beforeBytes: heap, afterBytes: heap }),
        onCollected: (c) => collected.push(c.beforeBytes),
      },
    });
    try {
      const ack = await world.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack 1');
      await world.received.waitFor((e) => e.kind === 'hb' && e.v.appliedVersion === 1, 'heartbeat');
      const health = await fetch(`http://127.0.0.1:${svc.httpPort}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({
        healthy: true,
        node: 'n1',
        mode: 'dry-run',
        applied: { version: 1 },
      });
      const metrics = await (await fetch(`http://127.0.0.1:${svc.httpPort}/metrics`)).text();
      expect(metrics).toMatch(/^switchboard_applier_applied_version 1$/m);
      expect(metrics).toMatch(/^switchboard_applier_acks_total\{path="checkpoint",skipped="false"\} 1$/m);
      // prom-client's default metrics on the same registry, and no metric family twice (O1)
      expect(metrics).toMatch(/^# TYPE process_cpu_user_seconds_total counter$/m);
      expect(metrics).toMatch(/^# TYPE nodejs_heap_size_used_bytes gauge$/m);
      const families = [...metrics.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
      expect(families.filter((n, i) => families.indexOf(n) !== i)).toEqual([]);
      // A dry-run node has no dataplane to probe: it says so with the ACK, on /healthz and in /metrics.
      expect(ack.kind === 'ack' && ack.v.health).toMatchObject({
        verdict: 'unprobed',
        reason: 'dry-run: no dataplane to probe',
        probe: null,
      });
      expect(metrics).toMatch(/^switchboard_applier_health_verdict\{verdict="unprobed"\} 1$/m);
      expect(metrics).toMatch(/^switchboard_applier_health_verdict\{verdict="healthy"\} 0$/m);
      const persisted = JSON.parse(readFileSync(path.join(stateDir, 'applied-n1.json'), 'utf8'));
      expect(persisted).toEqual({
        version: 1,
        configRevision: 0,
        dataHash: ack.kind === 'ack' ? ack.v.dataHash : '',
        nodeStateHash: ack.kind === 'ack' ? ack.v.nodeStateHash : '',
        followed: { default: expect.any(Number) }, // the order a restart holds targets to (probe10 H1)
      });
    } finally {
      await svc.stop();
    }
    expect(dataplane.cleanups).toBe(0);
    expect(dataplane.last).toBeDefined();
    expect(collected).toEqual([100]); // after the one ACK, once
  });

  it('started before the planner ever wrote its key: waits for the key file (readyz says so), then follows the signed target', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    await seed(world);
    const keyDir = mkdtempSync(path.join(tmpdir(), 'sb-applier-key-'));
    dirs.push(keyDir);
    const keyFile = path.join(keyDir, 'planner.pub');
    const svc = await startApplierService({
      node: 'n1',
      nats: world.server.url,
      mode: 'dry-run',
      http: '127.0.0.1:0',
      dataplane: new WatchedDataplane(),
      plannerKeyFile: keyFile,
      auth: nodeCred('n1'),
      heartbeatMs: 100,
      logger: pino({ level: 'silent' }),
    });
    try {
      const deadline = Date.now() + 20_000;
      while (!svc.waitingFor()?.startsWith('planner key') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const ready = await fetch(`http://127.0.0.1:${svc.httpPort}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { reason: string }).reason).toContain(`planner key ${keyFile}`);
      writeFileSync(keyFile, world.signer.publicKeyPem);
      await world.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack 1 after the key appeared');
      expect(svc.waitingFor()).toBeUndefined();
    } finally {
      await svc.stop();
    }
  });

  it('`switchboard applier` runs until SIGTERM, exits 0; usage mistakes exit 2', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    await seed(world);
    const bin = path.resolve('bin/switchboard');
    const p = spawn(
      process.execPath,
      [
        bin,
        'applier',
        '--node',
        'n1',
        '--nats',
        world.server.url,
        '--mode',
        'dry-run',
        '--user',
        'node-n1',
        '--password',
        'pw-n1',
        '--heartbeat',
        '200',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((res) => p.once('exit', (c) => res(c)));
    try {
      const lines = createInterface({ input: p.stdout! });
      for await (const line of lines) {
        const j = JSON.parse(line) as { msg: string; version?: number };
        if (j.msg === 'applied' && j.version === 1) break;
      }
      await world.received.waitFor((e) => e.kind === 'ack' && e.v.node === 'n1', 'ack from the CLI applier');
      p.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
    const usage = spawn(
      process.execPath,
      [bin, 'applier', '--node', 'n1', '--nats', world.server.url, '--mode', 'dry-run', '--user', 'x'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    usage.stderr!.on('data', (b: Buffer) => {
      err += b;
    });
    expect(await new Promise((res) => usage.once('exit', res))).toBe(2);
    expect(err).toMatch(/--user needs --password/);
  });
});
