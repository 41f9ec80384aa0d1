// Deletes survive restarts (issue 10 item 1), with the real planner, SQLite log and nats-server:
// sources start from the objects the log holds and diff their first scan/list against them.

import { randomUUID } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { compactLog } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
import { nodeYaml, plannerEnv, svcYaml, until, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv | undefined;
let planner: RunningPlanner | undefined;
let kube: KubeApiServer | undefined;
let kc: WrittenKubeconfig | undefined;

afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await kc?.cleanup();
  await kube?.stop();
  kc = undefined;
  kube = undefined;
  await env?.cleanup();
  env = undefined;
});

const services = (p: RunningPlanner) => [...p.planner.data.publishedData().services()].map((s) => s.key).sort();

/** The log as a fresh reader sees it (the planner's own handle stays private to it). */
async function logFacts(db: string): Promise<{ events: number; versions: number[]; lastEvents: string[] }> {
  const log = await EventLog.open({ file: db, migrate: false });
  try {
    const events = log.events();
    return {
      events: events.length,
      versions: log.versions().map((v) => v.version),
      lastEvents: events.slice(-3).map((e) => `${e.type} ${e.kind} ${e.namespace}/${e.name} rv=${e.resourceVersion}`),
    };
  } finally {
    log.close();
  }
}

describe('planner restarts with a manifests directory', () => {
  const start = async () => {
    planner = await runPlanner({
      manifests: env!.manifests,
      nats: env!.nats.url,
      db: env!.db,
      http: '127.0.0.1:0',
      config: DEFAULT_PROXY_CONFIG,
      debounceMs: 20,
      pollMs: 100,
    });
    await planner.planner.synced;
    return planner;
  };

  it('a restart on an unchanged directory appends no event and makes no version', async () => {
    env = await plannerEnv();
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    env.write('a.yaml', svcYaml('a', '10.96.0.1'));
    await start();
    await planner!.stop();
    const before = await logFacts(env.db);
    expect(before).toMatchObject({ events: 2, versions: [1] });
    await start();
    await planner!.stop();
    planner = undefined;
    // Before: every restart re-logged every object as ADDED with resourceVersion 1.
    expect(await logFacts(env.db)).toEqual(before);
  });

  it('a manifest removed while the planner is down is deleted in the next version; RVs continue', async () => {
    env = await plannerEnv();
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    env.write('a.yaml', svcYaml('a', '10.96.0.1'));
    env.write('b.yaml', svcYaml('b', '10.96.0.2'));
    expect(services(await start())).toEqual(['default/a', 'default/b']);
    await planner!.stop();
    unlinkSync(path.join(env.manifests, 'b.yaml'));
    const p = await start();
    expect(services(p)).toEqual(['default/a']); // before: default/b stayed published forever
    expect(p.planner.versions().map((v) => v.version)).toEqual([1, 2]);
    await planner!.stop();
    planner = undefined;
    expect((await logFacts(env.db)).lastEvents.at(-1)).toBe('DELETED Service default/b rv=4');
  });
});

describe('planner restarts after db compact', () => {
  it('a manifest removed while down is deleted even when all its events were compacted away', async () => {
    env = await plannerEnv();
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    env.write('a.yaml', svcYaml('a', '10.96.0.1'));
    env.write('b.yaml', svcYaml('b', '10.96.0.2'));
    const start = async () => {
      planner = await runPlanner({
        manifests: env!.manifests,
        nats: env!.nats.url,
        db: env!.db,
        http: '127.0.0.1:0',
        config: DEFAULT_PROXY_CONFIG,
        debounceMs: 20,
        pollMs: 100,
      });
      await planner.planner.synced;
      return planner;
    };
    await start();
    env.write('a.yaml', svcYaml('a', '10.96.0.1', 81));
    await until(() => planner!.planner.versions().length === 2, 5000, 'version 2');
    await planner!.stop();
    const log = await EventLog.open({ file: env.db });
    expect(compactLog(log, 2).eventsRemoved).toBe(4); // every event so far: b's only event is gone
    log.close();
    unlinkSync(path.join(env.manifests, 'b.yaml'));
    const p = await start();
    expect(services(p)).toEqual(['default/a']);
    // version 1 is compacted (the log rebuilds from 2 on): listed no more since probe11 K3
    expect(p.planner.versions().map((v) => v.version)).toEqual([2, 3]);
  });
});

describe('planner restarts against the test Kubernetes API server', () => {
  it('an object deleted while the planner was down is deleted when the resumed watch gets 410 and relists', async () => {
    env = await plannerEnv();
    kube = await KubeApiServer.start();
    kc = await writeKubeconfig({ server: kube.url });
    const svc = (name: string, ip: string) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'default' },
      spec: {
        type: 'ClusterIP',
        clusterIP: ip,
        clusterIPs: [ip],
        ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
      },
    });
    const start = async () => {
      planner = await runPlanner({
        kubeconfig: kc!.path,
        nats: env!.nats.url,
        db: env!.db,
        http: '127.0.0.1:0',
        config: DEFAULT_PROXY_CONFIG,
        debounceMs: 20,
      });
      await planner.planner.synced;
      return planner;
    };
    kube.create('Node', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'node-1' },
      status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] },
    });
    kube.create('Service', svc('a', '10.96.0.1'));
    kube.create('Service', svc('b', '10.96.0.2'));
    expect(services(await start())).toEqual(['default/a', 'default/b']);
    await planner!.stop();
    const eventsBefore = (await logFacts(env.db)).events;

    kube.delete('Service', { namespace: 'default', name: 'b' });
    kube.compact(); // the saved resourceVersions are gone: the resumed watches get 410 and relist
    kube.clearRequests();
    const p = await start();
    await until(() => services(p).length === 1, 5000, 'b deleted');
    expect(services(p)).toEqual(['default/a']); // before: the relist diffed against nothing, b stayed
    // The resumed watch was answered with ERROR 410 Expired (in a 200 stream, as etcd does) and relisted.
    expect(kube.requestsOf('list', 'Service')).toHaveLength(1);
    expect(p.planner.sourceHealth()).toMatchObject({
      kinds: expect.arrayContaining([expect.objectContaining({ kind: 'Service', expired: 1, lists: 1 })]),
    });
    await planner!.stop();
    planner = undefined;
    const after = await logFacts(env.db);
    // Only the deletion was logged: the relist of unchanged objects logged nothing.
    expect(after.events - eventsBefore).toBe(1);
    expect(after.lastEvents.at(-1)).toMatch(/^DELETED Service default\/b /);
  });

  it('a store that went back (etcd restore) is listed afresh at restart, not followed; --relist lists one already past the saved RV (probe4 K6)', async () => {
    env = await plannerEnv();
    const svc = (name: string, ip: string, port = 80) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'default' },
      spec: { type: 'ClusterIP', clusterIP: ip, clusterIPs: [ip], ports: [{ name: 'http', protocol: 'TCP', port }] },
    });
    /**
     * A fresh API server store (resourceVersions start over, new object uids) holding these Services
     * and node-1: the same cluster, restored from a backup, so kube-system keeps its uid (the
     * cluster identity the group's log holds; a new one would be another cluster, refused).
     */
    const clusterUid = randomUUID();
    const store = async (services: ReturnType<typeof svc>[]) => {
      await kc?.cleanup();
      await kube?.stop();
      kube = await KubeApiServer.start({ clusterUid });
      kc = await writeKubeconfig({ server: kube.url });
      kube.create('Node', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'node-1' },
        status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] },
      });
      for (const s of services) kube.create('Service', s);
      return kube;
    };
    const start = async (relist?: boolean) => {
      planner = await runPlanner({
        kubeconfig: kc!.path,
        nats: env!.nats.url,
        db: env!.db,
        http: '127.0.0.1:0',
        config: DEFAULT_PROXY_CONFIG,
        debounceMs: 20,
        relist,
        say: () => {},
      });
      await planner.planner.synced;
      return planner.planner;
    };
    const ips = (p: RunningPlanner['planner']) =>
      [...p.data.publishedData().services()].map((s) => `${s.key} ${s.clusterIPs.join()}`).sort();

    const k1 = await store([svc('a', '10.96.0.1'), svc('b', '10.96.0.2')]);
    for (const port of [81, 82, 83]) k1.update('Service', svc('a', '10.96.0.1', port));
    const saved = k1.resourceVersion; // what the log saves for each kind
    expect(ips(await start())).toEqual(['default/a 10.96.0.1', 'default/b 10.96.0.2']);
    await planner!.stop();

    // Restored from an older backup: the store's RV is behind the log's saved ones.
    const k2 = await store([svc('a', '10.96.0.9'), svc('c', '10.96.0.3')]);
    expect(Number(k2.resourceVersion)).toBeLessThan(Number(saved));
    let p = await start();
    // Each kind's resumed watch is answered "Too large resource version" twice, then lists and diffs.
    await until(() => ips(p).join() === 'default/a 10.96.0.9,default/c 10.96.0.3', 10_000, 'the restored store');
    expect(kube!.requestsOf('list', 'Service')).toHaveLength(1);
    expect(kube!.requestsOf('watch', 'Service')[0]?.query.resourceVersion).toBe(saved);
    await until(() => p.sourceProblem() === undefined, 10_000, 'every kind relisted');
    await planner!.stop();

    // Restored again, and already past the saved RV when the planner starts: a resumed watch
    // would be accepted and follow it (c kept, d never seen); --relist lists it whole.
    const k3 = await store([svc('a', '10.96.0.5'), svc('d', '10.96.0.4'), svc('e', '10.96.0.6')]);
    expect(Number(k3.resourceVersion)).toBeGreaterThan(Number(k2.resourceVersion));
    p = await start(true);
    expect(ips(p)).toEqual(['default/a 10.96.0.5', 'default/d 10.96.0.4', 'default/e 10.96.0.6']);
    expect(kube!.requestsOf('list', 'Service')).toHaveLength(1);
    expect(kube!.requestsOf('watch', 'Service')[0]?.query.resourceVersion).toBe(k3.resourceVersion);
  });
});
