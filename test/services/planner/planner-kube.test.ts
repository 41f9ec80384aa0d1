import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { until } from './planner-support.ts';

let kube: KubeApiServer;
let kc: WrittenKubeconfig;
let nats: NatsServerHandle;
let dir: string;
let planner: RunningPlanner | undefined;

const svc = (name: string, ip: string, port = 80) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: {
    type: 'ClusterIP',
    clusterIP: ip,
    clusterIPs: [ip],
    ports: [{ name: 'http', protocol: 'TCP', port, targetPort: 8080 }],
  },
});
const node = (name: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name },
  status: { addresses: [{ type: 'InternalIP', address: ip }] },
});
const start = async () => {
  planner = await runPlanner({
    kubeconfig: kc.path,
    nats: nats.url,
    db: path.join(dir, 'log.db'),
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
  });
  return planner;
};
const versions = () => planner!.planner.versions();

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sb-planner-kube-'));
  kube = await KubeApiServer.start();
  kc = await writeKubeconfig({ server: kube.url });
  nats = await startNatsServer({ jetstream: true });
});
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await nats.stop();
  await kc.cleanup();
  await kube.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('planner against the test Kubernetes API server', () => {
  it('publishes nothing before all three informers synced, then versions create/update/delete; a restart resumes without relist', async () => {
    kube.create('Node', node('node-1', '192.0.2.1'));
    kube.create('Service', svc('a', '10.96.0.1'));
    // The first two Node LISTs fail: Services and EndpointSlices sync, Nodes do not yet.
    kube.failNext(2, { status: 500, match: (e) => e.verb === 'list' && e.kind === 'Node' });
    const p = (await start()).planner;
    await until(
      () => kube.requestsOf('list', 'Service').length > 0 && kube.requestsOf('list', 'EndpointSlice').length > 0,
      5000,
      'lists',
    );
    await new Promise((r) => setTimeout(r, 100));
    // Backoff after the failed Node lists keeps the planner unsynced here: no version may exist yet.
    expect(p.isSynced).toBe(false);
    expect(versions()).toEqual([]);
    // The listed events are held (the initial list is appended in full batches, the rest before
    // version 1): none is in the log or the data yet, and none is lost (version 1 below has them).
    expect(planner!.planner.data.live.data.service('default/a')).toBeUndefined();
    await p.synced;
    expect(versions().map((v) => v.version)).toEqual([1]);
    expect(p.data.publishedData().node('node-1')).toBeDefined();
    expect([...p.data.publishedData().services()].map((s) => s.key)).toEqual(['default/a']);

    kube.update('Service', svc('a', '10.96.0.1', 81));
    await until(() => versions().length === 2, 5000, 'update → version 2');
    kube.create('Service', svc('b', '10.96.0.2'));
    await until(() => versions().length === 3, 5000, 'create → version 3');
    kube.delete('Service', { namespace: 'default', name: 'a' });
    await until(() => versions().length === 4, 5000, 'delete → version 4');
    expect([...p.data.publishedData().services()].map((s) => s.key)).toEqual(['default/b']);

    await planner!.stop();
    kube.clearRequests();
    const p2 = (await start()).planner;
    await p2.synced;
    kube.create('Service', svc('c', '10.96.0.3'));
    await until(() => versions().length === 5, 5000, 'version 5 after restart');
    expect(versions().map((v) => v.version)).toEqual([1, 2, 3, 4, 5]);
    expect(kube.requestsOf('list')).toEqual([]); // resumed watches from the saved resourceVersions
  });

  it("a planner of the same group on another cluster refuses to lead the group whose log holds this one's, starts no informer and is not ready (probe5 H2)", async () => {
    kube.create('Service', svc('a', '10.96.0.1'));
    await (await start()).planner.synced; // the first leader records cluster A in the group's log
    await planner!.stop(); // hands its lease back: the next planner wins at once
    const other = await KubeApiServer.start();
    const otherKc = await writeKubeconfig({ server: other.url });
    other.create('Service', svc('other-cluster-svc', '10.96.9.9'));
    const said: string[] = [];
    try {
      planner = await runPlanner({
        kubeconfig: otherKc.path,
        nats: nats.url,
        db: path.join(dir, 'b.db'),
        // one signing key per group (docs/ha.md): the first planner's, created beside its log
        signingKey: `${path.join(dir, 'log.db')}.signing-key.pem`,
        http: '127.0.0.1:0',
        config: DEFAULT_PROXY_CONFIG,
        say: (line) => said.push(line),
      });
      // Whether it saw the log's cluster as a follower (caught up before its first look at the
      // lease: then it never contends) or only once elected (its claim catches up first: then it
      // refuses before claiming the versions stream), it says so naming both clusters and what to
      // do. Before, it led and published cluster B's Services to A's fleet.
      const line = said.find((l) => l.startsWith(`this planner watches cluster ${other.clusterUid}`));
      expect(line).toContain(`log belongs to cluster ${kube.clusterUid}`);
      expect(line).toContain('--adopt-cluster');
      expect(planner.group.role()).toBe('follower');
      expect(planner.group.view().self.leader).toBe(false);
      // No informer started: no resume point of A's used on B. The first pages it listed before it
      // knew it would not lead (run-planner.ts, ListPrefetch) ask for no resourceVersion and are dropped.
      expect(other.requestsOf('list').filter((r) => r.query.resourceVersion !== undefined)).toEqual([]);
      expect(other.requestsOf('list').filter((r) => r.query.continue === undefined).length).toBeLessThanOrEqual(3);
      expect(other.requestsOf('watch')).toEqual([]);
      const ready = await until(async () => {
        const r = await fetch(`${planner!.url}/readyz`);
        return r.status === 503 && ((await r.json()) as { reason?: string }).reason?.includes(other.clusterUid)
          ? r
          : undefined;
      });
      expect(ready.status).toBe(503);
      expect(planner.planner.lastError).toContain(kube.clusterUid);
    } finally {
      await planner?.stop();
      planner = undefined;
      await otherKc.cleanup();
      await other.stop();
    }
    const log = await EventLog.open({ file: path.join(dir, 'log.db'), readOnly: true });
    try {
      expect(
        log
          .operations()
          .filter((o) => o.kind === 'cluster')
          .map((o) => o.params.cluster),
      ).toEqual([{ uid: kube.clusterUid, server: kube.url }]);
    } finally {
      log.close();
    }
  });
});
