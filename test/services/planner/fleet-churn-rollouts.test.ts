import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { sbIn } from '../cli/cli-support.ts';
import { until } from './planner-support.ts';

// Fleet churn during rollouts (probe20), end to end: the test Kubernetes API server (Nodes created
// and deleted over list/watch), a real nats-server, the real planner on a real SQLite log, real
// dry-run appliers (the whole protocol over NATS), ctl and audit through the CLI.
let kube: KubeApiServer;
let kc: WrittenKubeconfig;
let nats: NatsServerHandle;
let dir: string;
let planner: RunningPlanner | undefined;
let appliers: Map<string, ApplierService>;

const SILENCE_MS = 1500;
const node = (name: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name },
  status: { addresses: [{ type: 'InternalIP', address: ip }] },
});

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sb-fleet-churn-'));
  kube = await KubeApiServer.start();
  kc = await writeKubeconfig({ server: kube.url });
  nats = await startNatsServer({ jetstream: true });
  appliers = new Map();
  for (const [i, n] of ['n1', 'n2', 'n3'].entries()) kube.create('Node', node(n, `192.0.2.${i + 1}`));
  kube.create('Service', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'default' },
    spec: {
      type: 'NodePort',
      clusterIP: '10.96.0.10',
      clusterIPs: ['10.96.0.10'],
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }],
    },
  });
  planner = await runPlanner({
    kubeconfig: kc.path,
    nats: nats.url,
    db: path.join(dir, 'log.db'),
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    statusThresholds: { silenceMs: SILENCE_MS, applyTimeoutMs: 5000 },
    say: () => {},
  });
  await planner.planner.synced;
});
afterEach(async () => {
  for (const a of appliers.values()) await a.stop();
  await planner?.stop();
  planner = undefined;
  await nats.stop();
  await kc.cleanup();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

const startAppliers = async (...nodes: string[]) => {
  for (const n of nodes)
    appliers.set(
      n,
      await startApplierService({
        node: n,
        nats: nats.url,
        mode: 'dry-run',
        heartbeatMs: 200,
        logger: pino({ level: 'silent' }),
      }),
    );
};
const stopApplier = async (n: string) => {
  await appliers.get(n)!.stop();
  appliers.delete(n);
};
const ctl = (...args: string[]) => sbIn(['ctl', '--server', planner!.url, ...args]);
const status = async () => JSON.parse((await ctl('status', '-o', 'json')).stdout);
const allSynced = async (n: number) => {
  const s = await status();
  return s.nodes.length === n && s.nodes.every((r: { status: string }) => r.status === 'SYNCED');
};
const gates = () =>
  planner!.planner['options'].log
    .operations()
    .filter((o) => o.kind === 'rollout' && typeof o.params.gate === 'string')
    .map((o) => `${o.params.gate as string}: ${o.reason}`);
const rolloutDone = async () => {
  const r = (await status()).rollout;
  return r && r.status !== 'running' ? r : undefined;
};

describe('rollouts while nodes leave the fleet (probe20)', () => {
  it('a canary that leaves before it ACKs does not pass its wave: the rollout halts at the wave timeout (P20-1); audit says the node left (P20-3)', async () => {
    await startAppliers('n1', 'n2', 'n3');
    await until(() => allSynced(3), 10_000, 'three nodes SYNCED');
    // n1's machine dies and the autoscaler deletes its Node as the rollout starts: still SYNCED
    // (within the silence threshold), it is the canary.
    await stopApplier('n1');
    const r = await ctl('config', 'set', 'scheduler=wrr', '--waves', '1,100%', '--wave-timeout', '4s');
    expect(r.stdout).toMatch(/started at wave 1\/2: 1\/3 nodes \(n1\)/);
    kube.delete('Node', { name: 'n1' });
    const done = await until(rolloutDone, 15_000, 'the rollout to stop');
    // Before: n1 left the fleet, wave 1 "ACKed revision 2" with no ACK at all, and wave 2 took it.
    expect(gates().join('\n')).not.toMatch(/wave 2 of 2 starts/);
    expect(done).toMatchObject({
      status: 'halted',
      failed: [
        {
          node: 'n1',
          error: 'left the fleet before wave 1 passed, and no node of the wave still in it ACKed revision 2',
        },
      ],
    });
    expect((await status()).config.defaultRevision).toBe(1);
    // the wave's table says n1 left (it read UNKNOWN, config ?, "no verdict": P20-5)
    expect((await ctl('rollout', 'status')).stdout).toMatch(
      /^ {2}n1 +LEFT +config \? +left the fleet \(no Node object of this name, silent\)$/m,
    );

    // The log's audit: n1 is not "behind" (the cluster has no n1 any more), it left.
    const db = path.join(dir, 'log.db');
    const behind = await sbIn(['audit', 'behind', '--db', db]);
    expect(behind.stdout).not.toMatch(/^n1 +BEHIND/m);
    expect(behind.stdout).toMatch(
      /^1 node\(s\) that reported once are not in version \d+'s data .*--all lists them as LEFT/m,
    );
    const all = await sbIn(['audit', 'behind', '--db', db, '--all', '-o', 'json']);
    expect(JSON.parse(all.stdout).find((l: { node: string }) => l.node === 'n1')).toMatchObject({ status: 'LEFT' });
    const one = await sbIn(['audit', 'node', 'n1', '--db', db]);
    expect(one.stdout).toMatch(/^no Node object of this name in version \d+ \(the newest\): it left the cluster/m);
  });

  it('a canary that falls silent during its bake fails it: the rollout halts instead of completing "baked" (P20-2)', async () => {
    await startAppliers('n1', 'n2', 'n3');
    await until(() => allSynced(3), 10_000, 'three nodes SYNCED');
    await ctl('config', 'set', 'scheduler=wrr', '--waves', '1,100%', '--bake', '4s', '--wave-timeout', '30s');
    await until(() => gates().some((g) => g.startsWith('bake: wave 1 of 2')), 10_000, 'the canary bake');
    await stopApplier('n1'); // its Node stays: a dead machine
    const done = await until(rolloutDone, 15_000, 'the rollout to stop');
    expect(done).toMatchObject({ status: 'halted', failed: [{ node: 'n1' }] });
    expect(done.failed[0].error).toMatch(/^silent for \d+ s after it ACKed revision 2: what it runs now is not known$/);
    expect(gates().join('\n')).not.toMatch(/wave 2 of 2 starts/);
  });

  it('an applier whose name the cluster does not have is never the canary (P20-4)', async () => {
    await startAppliers('a-typo', 'n1', 'n2', 'n3');
    await until(() => allSynced(4), 10_000, 'four appliers SYNCED');
    const r = await ctl('config', 'set', 'scheduler=wrr', '--waves', '1,100%');
    // name order put a-typo (no Node object: no NodePorts rendered) first
    expect(r.stdout).toMatch(/started at wave 1\/2: 1\/4 nodes \(n1\)/);
  });
});
