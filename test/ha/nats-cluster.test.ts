import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TARGETS_STREAM, VERSIONS_STREAM } from '../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../libs/model/index.ts';
import { runPlanner } from '../../services/planner/run-planner.ts';
import { startNatsCluster, type NatsClusterHandle } from '../support/nats-cluster.ts';
import { startNatsServer } from '../support/nats-server.ts';
import { sb } from '../services/cli/cli-support.ts';
import { nodeYaml, sliceYaml, svcYaml } from '../services/planner/planner-support.ts';

/**
 * --nats URL,URL,URL and --replicas N against three real clustered nats-servers: every stream and
 * bucket the planner makes holds N copies, a count larger than the cluster is refused (exit 2,
 * naming the flag and the cluster's size), and the planner keeps publishing when the server that
 * leads the versions stream is killed.
 */
let cluster: NatsClusterHandle;
let dir: string;
let nc: NatsConnection;
beforeAll(async () => {
  cluster = await startNatsCluster();
  dir = mkdtempSync(path.join(tmpdir(), 'sb-ha-cluster-'));
  nc = await connect({ servers: cluster.urls.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
}, 60_000);
afterAll(async () => {
  await nc?.close();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a planner on a 3-server NATS cluster', () => {
  it('--replicas 5 on 3 servers is refused in one line naming the flag and the cluster size (exit 2); nothing is created', async () => {
    const manifests = path.join(dir, 'refused');
    mkdirSync(manifests);
    const r = await sb([
      'planner',
      '--manifests',
      manifests,
      '--nats',
      cluster.urls,
      '--db',
      path.join(dir, 'refused.db'),
      '--http',
      '127.0.0.1:0',
      '--replicas',
      '5',
    ]);
    expect(r.code).toBe(2);
    expect(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => /replicas/.test(l)),
    ).toEqual([expect.stringMatching(/--replicas 5: larger than the NATS cluster \S+ \(3 servers\)/)]);
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const s of jsm.streams.names()) names.push(s);
    expect(names).not.toContain(VERSIONS_STREAM);
  }, 60_000);

  it('--replicas 3 on a lone server is refused (it is not clustered); --replicas 0 is a usage error', async () => {
    const lone = await startNatsServer({ jetstream: true });
    try {
      const manifests = path.join(dir, 'lone');
      mkdirSync(manifests);
      const r = await sb([
        'planner',
        '--manifests',
        manifests,
        '--nats',
        lone.url,
        '--db',
        path.join(dir, 'lone.db'),
        '--http',
        '127.0.0.1:0',
        '--replicas',
        '3',
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--replicas 3: the NATS server is not clustered \(1 server\)/);
      const z = await sb([
        'planner',
        '--manifests',
        manifests,
        '--nats',
        lone.url,
        '--db',
        path.join(dir, 'lone.db'),
        '--replicas',
        '0',
      ]);
      expect(z.code).toBe(2);
      expect(z.stderr).toMatch(/--replicas 0: expected a whole number of at least 1/);
    } finally {
      await lone.stop();
    }
  }, 60_000);

  it("--replicas 3: every stream and bucket has 3 copies; killing the versions stream's leader loses no version and the planner publishes on", async () => {
    const manifests = path.join(dir, 'm');
    mkdirSync(manifests);
    const write = (f: string, t: string) => writeFileSync(path.join(manifests, f), t);
    write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
    const p = await runPlanner({
      manifests,
      nats: cluster.urls,
      db: path.join(dir, 'log.db'),
      http: '127.0.0.1:0',
      config: DEFAULT_PROXY_CONFIG,
      debounceMs: 20,
      pollMs: 100,
      replicas: 3,
    });
    try {
      await p.planner.synced;
      const jsm = await jetstreamManager(nc);
      const streams: Record<string, number> = {};
      for await (const s of jsm.streams.list()) streams[s.config.name] = s.config.num_replicas;
      expect(streams[VERSIONS_STREAM]).toBe(3);
      expect(streams[TARGETS_STREAM]).toBe(3);
      expect(Object.values(streams).every((n) => n === 3)).toBe(true);

      const leaderName = (await jsm.streams.info(VERSIONS_STREAM)).cluster?.leader;
      const leader = cluster.servers.find((s) => leaderName?.endsWith(`-n${cluster.servers.indexOf(s) + 1}`));
      expect(leader).toBeDefined();
      await leader!.kill();
      write('b.yaml', svcYaml('b', '10.96.0.2'));
      await expect.poll(() => p.planner.data.latest()?.version, { timeout: 30_000 }).toBe(2);
      // version 2 reaches the stream through the surviving servers (the planner retries until it does)
      await expect
        .poll(
          async () => {
            const info = await jsm.streams.info(VERSIONS_STREAM).catch(() => undefined);
            const last = info
              ? await jsm.streams.getMessage(VERSIONS_STREAM, { last_by_subj: 'sb.v.delta.2' }).catch(() => null)
              : null;
            return last?.subject ?? null;
          },
          { timeout: 60_000, interval: 500 },
        )
        .toBe('sb.v.delta.2');
      expect((await jsm.streams.getMessage(VERSIONS_STREAM, { last_by_subj: 'sb.v.delta.1' }))?.subject).toBe(
        'sb.v.delta.1',
      );
      await leader!.start();
    } finally {
      await p.stop();
    }
  }, 150_000);
});
