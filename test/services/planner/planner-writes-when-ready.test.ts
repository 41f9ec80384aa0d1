import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { plannerEnv, svcYaml, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
let running: RunningPlanner | undefined;
let busy: Server | undefined;
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  await running?.stop();
  running = undefined;
  await new Promise<void>((r) => (busy ? busy.close(() => r()) : r()));
  busy = undefined;
  await env.cleanup();
});

const streams = async () => {
  const jsm = await jetstreamManager(env.nc);
  const names: string[] = [];
  for await (const s of jsm.streams.list()) names.push(s.config.name);
  return names;
};

describe('the planner writes only when ready', () => {
  it('a busy --http address stops it before it opens the log or touches NATS', async () => {
    busy = createServer();
    await new Promise<void>((r) => busy!.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    env.write('web.yaml', svcYaml('web', '10.96.0.10'));
    await expect(
      runPlanner({
        manifests: env.manifests,
        nats: env.nats.url,
        db: env.db,
        http: `127.0.0.1:${port}`,
        config: DEFAULT_PROXY_CONFIG,
      }),
    ).rejects.toThrow(new RegExp(`^--http 127\\.0\\.0\\.1:${port}: cannot listen: .*EADDRINUSE`));
    expect(existsSync(env.db)).toBe(false);
    expect(await streams()).toEqual([]);
  });

  it('with a log that holds versions, a busy address publishes none of them and sets no target', async () => {
    const log = await EventLog.open({ file: env.db });
    const data = DataAxis.restore(log);
    data.ingest([
      {
        kind: 'Service',
        type: 'ADDED',
        origin: 'manifests',
        namespace: 'default',
        name: 'web',
        uid: '',
        resourceVersion: '1',
        object: {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'web', namespace: 'default' },
          spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] },
        },
      },
    ]);
    expect(data.sync()?.record.version).toBe(1);
    log.close();
    busy = createServer();
    await new Promise<void>((r) => busy!.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    await expect(
      runPlanner({
        manifests: env.manifests,
        nats: env.nats.url,
        db: env.db,
        http: `127.0.0.1:${port}`,
        config: DEFAULT_PROXY_CONFIG,
      }),
    ).rejects.toThrow(/cannot listen/);
    expect(await streams()).toEqual([]);
  });

  it('a clusterCIDR with a trailing \\r is refused at /config with 400, and makes no revision', async () => {
    running = await runPlanner({
      manifests: env.manifests,
      nats: env.nats.url,
      db: env.db,
      http: '127.0.0.1:0',
      config: DEFAULT_PROXY_CONFIG,
    });
    await running.planner.synced;
    const res = await fetch(`${running.url}/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ change: { clusterCIDR: '10.244.0.0/16\r' }, reason: 'crlf' }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe(
      'proxy config: clusterCIDR: "10.244.0.0/16\\r" has leading or trailing whitespace',
    );
    expect(running.planner.config.state.defaultRevision).toBe(1);
    expect(running.planner['options'].log.latestConfigRevision()?.revision).toBe(1);
  });
});
