import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readVerifierFile } from '../../../libs/bus/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, plannerOptions, svcYaml, type PlannerEnv } from '../planner/planner-support.ts';

/**
 * probe14 P4/P5: while an applier is cut off from NATS its /healthz said `"connected": true` (a
 * reconnecting connection is not closed) though the gauge said 0; its log had a line for every
 * PING the client sent (every 2 s) and the loss itself only at info level.
 */
let env: PlannerEnv;
const stops: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1'));
});
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  await env.cleanup();
});

const healthz = async (svc: ApplierService) =>
  (await (await fetch(`http://127.0.0.1:${svc.httpPort}/healthz`)).json()) as { connected: boolean };

describe('an applier cut off from NATS', () => {
  it('says so on /healthz and as a warning, and logs no PINGs', async () => {
    const p = await runPlanner({
      ...plannerOptions(env),
      say: () => {},
    });
    stops.push(() => p.stop());
    await p.planner.synced;
    const lines: { level: number; msg: string; status?: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    const svc = await startApplierService({
      node: 'node-1',
      nats: env.nats.url,
      mode: 'dry-run',
      http: '127.0.0.1:0',
      heartbeatMs: 200,
      maxBackoffMs: 200,
      verifier: readVerifierFile(`${env.db}.signing-key.pem.pub`),
      logger: pino({ level: 'info' }, sink),
    });
    stops.push(() => svc.stop());
    await expect.poll(async () => (await healthz(svc)).connected, { timeout: 15_000 }).toBe(true);
    // the client PINGs every 2 s: wait for the status event of one (the session's own events)
    await expect.poll(() => lines.length, { timeout: 15_000 }).toBeGreaterThan(0);

    await env.nats.kill();
    await expect.poll(async () => (await healthz(svc)).connected, { timeout: 15_000 }).toBe(false);
    const lost = lines.find((l) => l.status === 'disconnect');
    expect(lost?.level).toBe(40); // warn
    await env.nats.start();
    await expect.poll(async () => (await healthz(svc)).connected, { timeout: 20_000 }).toBe(true);
    expect(lines.find((l) => l.status === 'reconnect')?.level).toBe(40);
    expect(lines.filter((l) => l.status === 'ping')).toEqual([]);
  }, 60_000);
});
