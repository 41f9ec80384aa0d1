// Listing while the lease claim is in flight (issue 15 item 4, thirteenth round): a planner lists
// its first Kubernetes LIST before it knows it leads (libs/kube list-prefetch.ts). One that leads
// records exactly what a planner listing after its claim records; one that follows appends and
// publishes nothing of what it listed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { VERSIONS_STREAM } from '../../../libs/bus/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
import { freePort, startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

let dir: string;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sb-list-ahead-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

const svc = (name: string, i: number) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: {
    type: 'ClusterIP',
    clusterIP: `10.96.${i >> 8}.${i & 255}`,
    clusterIPs: [`10.96.${i >> 8}.${i & 255}`],
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
  },
});
const slice = (service: string, i: number) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: `${service}-abc`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  endpoints: [{ addresses: [`10.1.${i >> 8}.${i & 255}`], conditions: { ready: true }, nodeName: 'node-1' }],
});
const node = (name: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name },
  status: { addresses: [{ type: 'InternalIP', address: ip }] },
});

/** A test API server holding `services` Services with a slice each (pages of 500: three lists of 1 100) and one Node. */
async function cluster(
  services: number,
  o: { clusterUid?: string; prefix?: string } = {},
): Promise<{
  kube: KubeApiServer;
  kc: WrittenKubeconfig;
}> {
  const kube = await KubeApiServer.start(o.clusterUid ? { clusterUid: o.clusterUid } : {});
  const kc = await writeKubeconfig({ server: kube.url });
  cleanups.push(async () => {
    await kc.cleanup();
    await kube.stop();
  });
  kube.create('Node', node('node-1', '192.0.2.1'));
  for (let i = 0; i < services; i++) {
    const name = `${o.prefix ?? 's'}-${i}`;
    kube.create('Service', svc(name, i + 1));
    kube.create('EndpointSlice', slice(name, i + 1));
  }
  return { kube, kc };
}

async function nats(port?: number): Promise<NatsServerHandle> {
  const n = await startNatsServer({ jetstream: true, ...(port ? { port } : {}) });
  cleanups.push(() => n.stop());
  return n;
}

function start(o: {
  kc: WrittenKubeconfig;
  nats: string;
  db: string;
  listBeforeLeading?: boolean;
  id?: string;
  say?: (line: string) => void;
}): Promise<RunningPlanner> {
  return runPlanner({
    kubeconfig: o.kc.path,
    nats: o.nats,
    db: path.join(dir, o.db),
    http: '127.0.0.1:0',
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    busMaxBackoffMs: 100,
    signingKey: path.join(dir, 'group-key.pem'), // one group: one signing key
    ...(o.id ? { id: o.id } : {}),
    ...(o.listBeforeLeading === false ? { listBeforeLeading: false } : {}),
    say: o.say ?? (() => undefined),
  }).then((p) => {
    cleanups.push(() => p.stop());
    return p;
  });
}

/** Every logged event as kind/type/name/RV/object text, in seq order, and the log's versions. */
async function logged(db: string): Promise<{ events: string[]; versions: { version: number; hash: string }[] }> {
  const log = await EventLog.open({ file: path.join(dir, db), readOnly: true });
  try {
    return {
      events: log
        .events()
        .map((e) => `${e.kind} ${e.type} ${e.namespace}/${e.name} ${e.resourceVersion} ${JSON.stringify(e.object)}`),
      versions: log.versions().map((v) => ({ version: v.version, hash: v.hash })),
    };
  } finally {
    log.close();
  }
}

const lists = (kube: KubeApiServer) =>
  (['Service', 'EndpointSlice', 'Node'] as const).map((k) => kube.requestsOf('list', k).length);

describe('a planner lists before it knows it leads', () => {
  it('listed while NATS is away, then leading: the pages are read once and the log holds exactly what a planner listing after its claim holds', async () => {
    const { kube, kc } = await cluster(1100);
    const port = await freePort();
    // NATS is not there yet: the planner waits for it (onBusWaiting) and meanwhile lists
    const starting = start({ kc, nats: `nats://127.0.0.1:${port}`, db: 'ahead.db' });
    starting.catch(() => undefined);
    await expect.poll(() => lists(kube), { timeout: 15_000 }).toEqual([3, 3, 1]);
    const n = await nats(port);
    const ahead = await starting;
    await ahead.planner.synced;
    // the informer read every page fetched ahead: no kind was listed again
    expect(lists(kube)).toEqual([3, 3, 1]);
    await ahead.stop();

    // the same cluster, listed by a planner only once it leads (another log, a fresh NATS)
    kube.clearRequests();
    const other = await nats();
    const after = await start({ kc, nats: other.url, db: 'after.db', listBeforeLeading: false });
    await after.planner.synced;
    expect(lists(kube)).toEqual([3, 3, 1]);
    await after.stop();
    await n.stop();

    const a = await logged('ahead.db');
    const b = await logged('after.db');
    expect(a.events.length).toBe(2201);
    // the same events (the kinds' lists interleave differently from run to run: compared as sets)
    expect([...a.events].sort()).toEqual([...b.events].sort());
    expect(a.versions.length).toBeGreaterThan(0);
    expect(a.versions[0]).toEqual(b.versions[0]);
  }, 60_000);

  it('listed, then following another leader: nothing it listed is appended or published, and no informer runs there', async () => {
    const uid = 'c0ffee00-0000-4000-8000-000000000001';
    const leaderSide = await cluster(3, { clusterUid: uid, prefix: 'led' });
    // the same cluster (its uid) as the follower's kubeconfig reaches it, holding objects only it lists
    const followerSide = await cluster(1100, { clusterUid: uid, prefix: 'only-follower' });
    const n = await nats();
    const leader = await start({ kc: leaderSide.kc, nats: n.url, db: 'leader.db', id: 'a' });
    await leader.planner.synced;
    const said: string[] = [];
    const follower = await start({
      kc: followerSide.kc,
      nats: n.url,
      db: 'follower.db',
      id: 'b',
      say: (l) => said.push(l),
    });
    expect(follower.group.role()).toBe('follower');
    // it did list (the first pages of every kind), before it knew
    await expect.poll(() => lists(followerSide.kube).every((x) => x >= 1)).toBe(true);
    // (a request already on its way when the pages were dropped still arrives: let it)
    await new Promise((r) => setTimeout(r, 200));
    const listed = lists(followerSide.kube);
    // the follower's copy of the group's log catches up with the leader's
    const leaderLog = (await logged('leader.db')).events.length;
    const leaderVersion = leader.planner.versions().at(-1)!.version;
    await expect
      .poll(() => follower.planner.versions().at(-1)?.version, { timeout: 10_000, message: said.join('\n') })
      .toBe(leaderVersion);
    await new Promise((r) => setTimeout(r, 300));
    // no informer ran there: no list beyond the pages fetched ahead, no watch
    expect(lists(followerSide.kube)).toEqual(listed);
    expect(followerSide.kube.requestsOf('watch').length).toBe(0);
    expect(said.some((l) => l.includes('elected leader'))).toBe(false);
    await follower.stop();
    const f = await logged('follower.db');
    expect(f.events.some((e) => e.includes('only-follower'))).toBe(false);
    expect(f.events.length).toBe(leaderLog);
    // the versions stream holds the leader's versions only, none naming what the follower listed
    const nc = await connect({ servers: n.url });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(VERSIONS_STREAM);
      let text = '';
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(VERSIONS_STREAM, { seq }).catch(() => undefined);
        if (m) text += new TextDecoder().decode(m.data);
      }
      expect(text).toContain('led-0');
      expect(text).not.toContain('only-follower');
    } finally {
      await nc.close();
    }
    expect(leader.planner.versions().length).toBeGreaterThan(0);
  }, 60_000);
});
