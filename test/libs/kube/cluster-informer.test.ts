// ClusterInformer against the test apiserver (test/support/kube-api-server).

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ClusterInformer,
  loadKubeConfig,
  MemoryResumeStore,
  systemClock,
  type ClusterInformerOptions,
  type KubeEvent,
  type KubeKind,
  type RawKubeObject,
} from '../../../libs/kube/index.ts';
import { KubeApiServer, type KubeObject as ServerObject } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';

const svc = (name: string, port = 80, labels: Record<string, string> = {}): ServerObject => ({
  metadata: { name, namespace: 'default', labels },
  spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', ports: [{ port, protocol: 'TCP' }] },
});
const slice = (name: string, ip: string): ServerObject => ({
  metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': name.split('-')[0]! } },
  addressType: 'IPv4',
  endpoints: [{ addresses: [ip], conditions: { ready: true } }],
});
const node = (name: string): ServerObject => ({
  metadata: { name },
  status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] },
});

const FAST_BACKOFF = { initialMs: 5, maxMs: 40 };

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const summary = (events: KubeEvent[]) =>
  events.map((e) => `${e.kind} ${e.type} ${e.object.metadata.name}${e.relist ? ' (relist)' : ''}`);

describe('ClusterInformer', () => {
  let server: KubeApiServer;
  let kubeconfig: WrittenKubeconfig;
  let kubeConfig: Awaited<ReturnType<typeof loadKubeConfig>>;
  const informers: ClusterInformer[] = [];
  let events: KubeEvent[];

  beforeEach(async () => {
    server = await KubeApiServer.start({ token: 'secret', bookmarkIntervalMs: 100 });
    kubeconfig = await writeKubeconfig({ server: server.url, token: 'secret' });
    kubeConfig = await loadKubeConfig({ kubeconfig: kubeconfig.path });
    events = [];
  });
  afterEach(async () => {
    await Promise.all(informers.splice(0).map((i) => i.stop()));
    await server.stop();
    await kubeconfig.cleanup();
  });

  function startInformer(extra: Partial<ClusterInformerOptions> = {}): ClusterInformer {
    const informer = new ClusterInformer({
      kubeConfig,
      sink: (e) => {
        events.push(e);
      },
      backoff: FAST_BACKOFF,
      ...extra,
    });
    informers.push(informer);
    informer.start();
    return informer;
  }

  async function stopInformer(informer: ClusterInformer): Promise<void> {
    informers.splice(informers.indexOf(informer), 1);
    await informer.stop();
  }

  const watching =
    (informer: ClusterInformer, kind: KubeKind = 'Service') =>
    () =>
      informer.informer(kind).health().watching;

  it('lists all three kinds, emits them as relist ADDED, and only then is synced', async () => {
    server.create('Service', svc('a'));
    server.create('EndpointSlice', slice('a-1', '10.1.0.1'));
    server.create('Node', node('n1'));
    server.slowStream(0);
    server.failNext(1, { match: (r) => r.verb === 'list' && r.kind === 'Node' });
    const informer = startInformer();
    expect(informer.isSynced).toBe(false);
    await informer.synced;
    expect(informer.isSynced).toBe(true);
    expect(summary(events).sort()).toEqual([
      'EndpointSlice ADDED a-1 (relist)',
      'Node ADDED n1 (relist)',
      'Service ADDED a (relist)',
    ]);
    // The Node list failed once; synced waited for its successful retry.
    expect(server.requestsOf('list', 'Node').map((r) => r.status)).toEqual([500, 200]);
    const svcEvent = events.find((e) => e.kind === 'Service')!;
    expect(svcEvent.object.kind).toBe('Service'); // filled in although list items lack it
    expect(svcEvent.object.apiVersion).toBe('v1');
    expect(svcEvent.resourceVersion).toBe('4');
  });

  it('delivers create/update/delete as watch events and saves each RV after the sink', async () => {
    const store = new MemoryResumeStore();
    const informer = startInformer({ resumeStore: store, kinds: ['Service'] });
    await informer.synced;
    await until('watch open', watching(informer));
    server.create('Service', svc('a'));
    server.update('Service', svc('a', 81));
    server.delete('Service', { namespace: 'default', name: 'a' });
    await until('3 events', () => events.length === 3);
    expect(summary(events)).toEqual(['Service ADDED a', 'Service MODIFIED a', 'Service DELETED a']);
    expect(events.map((e) => e.resourceVersion)).toEqual(['2', '3', '4']);
    expect(events[1]!.object).toMatchObject({ kind: 'Service', spec: { ports: [{ port: 81 }] } });
    expect(store.load('Service')).toBe('4');
    expect(informer.informer('Service').objects()).toEqual([]);
  });

  it('awaits the sink: one event at a time, in order, across kinds', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const informer = startInformer({
      sink: async (e) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        events.push(e);
        inFlight -= 1;
      },
    });
    await informer.synced;
    await until('watches open', () => informer.health().kinds.every((k) => k.watching));
    for (let i = 0; i < 5; i++) {
      server.create('Service', svc(`s${i}`));
      server.create('Node', node(`n${i}`));
    }
    await until('10 events', () => events.length === 10);
    expect(maxInFlight).toBe(1);
    expect(events.filter((e) => e.kind === 'Service').map((e) => e.object.metadata.name)).toEqual([
      's0',
      's1',
      's2',
      's3',
      's4',
    ]);
  });

  it('resumes from the saved RV without relisting after a restart', async () => {
    const store = new MemoryResumeStore();
    server.create('Service', svc('a'));
    const first = startInformer({ resumeStore: store });
    await first.synced;
    await stopInformer(first);
    server.create('Service', svc('b'));
    server.delete('Service', { namespace: 'default', name: 'a' });
    server.clearRequests();
    events = [];
    const second = startInformer({ resumeStore: store });
    await second.synced;
    await until('2 events', () => events.length === 2);
    expect(summary(events)).toEqual(['Service ADDED b', 'Service DELETED a']);
    expect(server.requestsOf('list')).toEqual([]);
    expect(server.requestsOf('watch', 'Service')[0]!.query.resourceVersion).toBe('2');
  });

  it('the first list delivers each page as it comes; a relist after synced delivers nothing before its last page', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.create('Service', svc(n));
    const store = new MemoryResumeStore();
    // For each event: how many Service list requests the server had answered by then.
    const listsAtEvent: number[] = [];
    const informer = startInformer({
      resumeStore: store,
      kinds: ['Service'],
      pageSize: 2,
      sink: (e) => {
        events.push(e);
        listsAtEvent.push(server.requestsOf('list', 'Service').length);
      },
    });
    await informer.synced;
    expect(summary(events)).toEqual(['a', 'b', 'c', 'd', 'e'].map((n) => `Service ADDED ${n} (relist)`));
    expect(listsAtEvent.slice(0, 2)).toEqual([1, 1]); // page 1 (of 3) delivered before page 2 was asked for
    await until('watch open', watching(informer));
    events = [];
    listsAtEvent.length = 0;
    server.clearRequests();
    await server.stop();
    server.delete('Service', { namespace: 'default', name: 'a' });
    server.update('Service', svc('b', 8080));
    server.create('Service', svc('f'));
    server.compact();
    await until('informer noticed the outage', () => informer.informer('Service').health().errors > 0);
    await server.restart();
    await until('relist events', () => events.length === 3);
    expect(summary(events)).toEqual([
      'Service DELETED a (relist)',
      'Service MODIFIED b (relist)',
      'Service ADDED f (relist)',
    ]);
    expect(listsAtEvent).toEqual([3, 3, 3]); // every page of the relist first
  });

  it('a first list that fails after its first page is listed again: each object delivered once, none lost', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.create('Service', svc(n));
    let lists = 0;
    server.failNext(1, { match: (r) => r.verb === 'list' && r.kind === 'Service' && ++lists === 2 });
    const informer = startInformer({ kinds: ['Service'], pageSize: 2 });
    await informer.synced;
    expect(server.requestsOf('list', 'Service').map((r) => r.status)).toEqual([200, 500, 200, 200, 200]);
    expect(summary(events)).toEqual(['a', 'b', 'c', 'd', 'e'].map((n) => `Service ADDED ${n} (relist)`));
  });

  it('identityOnly: remembers identities, not objects; relist diffs are the same, a synthetic DELETED carries the identity', async () => {
    server.create('Service', svc('a', 80, { app: 'a' }));
    server.create('Service', svc('b'));
    const informer = startInformer({ resumeStore: new MemoryResumeStore(), kinds: ['Service'], identityOnly: true });
    await informer.synced;
    expect(events.map((e) => e.object.spec)).toEqual([svc('a').spec, svc('b').spec]); // the sink gets whole objects
    const remembered = informer.informer('Service').objects();
    expect(remembered.map((o) => Object.keys(o).sort())).toEqual([
      ['apiVersion', 'kind', 'metadata'],
      ['apiVersion', 'kind', 'metadata'],
    ]);
    expect(remembered[0]!.metadata).toEqual({
      name: 'a',
      namespace: 'default',
      uid: events[0]!.object.metadata.uid,
      resourceVersion: events[0]!.object.metadata.resourceVersion,
      labels: { app: 'a' },
    });
    await until('watch open', watching(informer));
    events = [];
    await server.stop();
    server.delete('Service', { namespace: 'default', name: 'a' });
    server.update('Service', svc('b', 8080));
    server.compact();
    await until('informer noticed the outage', () => informer.informer('Service').health().errors > 0);
    await server.restart();
    await until('relist events', () => events.length === 2);
    expect(summary(events)).toEqual(['Service DELETED a (relist)', 'Service MODIFIED b (relist)']);
    expect(events[0]!.object).toEqual({ apiVersion: 'v1', kind: 'Service', metadata: remembered[0]!.metadata });
    expect((events[1]!.object.spec as { ports: { port: number }[] }).ports[0]!.port).toBe(8080);
  });

  it('relists after 410 and reports objects deleted while disconnected as synthetic DELETED', async () => {
    const store = new MemoryResumeStore();
    server.create('Service', svc('a'));
    server.create('Service', svc('b'));
    server.create('Service', svc('c'));
    const informer = startInformer({ resumeStore: store, kinds: ['Service'] });
    await informer.synced;
    await until('watch open', watching(informer));
    events = [];
    // The apiserver goes away; meanwhile objects change and history is compacted.
    await server.stop();
    server.delete('Service', { namespace: 'default', name: 'a' });
    server.update('Service', svc('b', 8080));
    server.create('Service', svc('d'));
    server.compact();
    await until('informer noticed the outage', () => informer.informer('Service').health().errors > 0);
    await server.restart();
    await until('relist events', () => events.length === 3);
    expect(summary(events)).toEqual([
      'Service DELETED a (relist)',
      'Service MODIFIED b (relist)',
      'Service ADDED d (relist)',
    ]);
    expect(events.every((e) => e.resourceVersion === '7')).toBe(true);
    const health = informer.informer('Service').health();
    expect(health.expired).toBe(1);
    expect(health.relists).toBe(1);
    expect(store.load('Service')).toBe('7');
    expect(
      informer
        .informer('Service')
        .objects()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['b', 'c', 'd']);
  });

  it('uses ResumeStore.knownObjects so a restarted process reports deletions it missed', async () => {
    server.create('Service', svc('a'));
    server.create('Service', svc('b'));
    const store = new MemoryResumeStore();
    const first = startInformer({ resumeStore: store, kinds: ['Service'] });
    await first.synced;
    const persisted = first.informer('Service').objects();
    await stopInformer(first);
    server.delete('Service', { namespace: 'default', name: 'a' });
    server.compact();
    events = [];
    const resumed = Object.assign(store, { knownObjects: (_kind: KubeKind): RawKubeObject[] => persisted });
    const second = startInformer({ resumeStore: resumed, kinds: ['Service'] });
    await until('relist', () => events.length === 1);
    await second.synced;
    expect(summary(events)).toEqual(['Service DELETED a (relist)']);
  });

  it('relists on a mid-stream ERROR 410 and emits nothing when nothing changed', async () => {
    server.create('Service', svc('a'));
    const informer = startInformer({ kinds: ['Service'] });
    await informer.synced;
    await until('watch open', watching(informer));
    events = [];
    server.clearRequests();
    server.expireWatches();
    await until('relist and re-watch', () => server.requestsOf('watch', 'Service').length === 1);
    expect(server.requests.map((r) => r.verb)).toEqual(['list', 'watch']);
    expect(events).toEqual([]);
    server.create('Service', svc('b'));
    await until('event after relist', () => events.length === 1);
    expect(summary(events)).toEqual(['Service ADDED b']);
  });

  it('relists when the server answers the watch start with HTTP 410', async () => {
    const http410 = await KubeApiServer.start({ expiredWatch: 'http' });
    const config = await writeKubeconfig({ server: http410.url });
    try {
      http410.create('Node', node('n1'));
      http410.create('Node', node('n2'));
      http410.compact();
      const store = new MemoryResumeStore({ Node: '1' });
      const informer = startInformer({
        kubeConfig: await loadKubeConfig({ kubeconfig: config.path }),
        resumeStore: store,
        kinds: ['Node'],
      });
      await until('relist', () => events.length === 2);
      await informer.synced;
      expect(summary(events)).toEqual(['Node ADDED n1 (relist)', 'Node ADDED n2 (relist)']);
      expect(http410.requestsOf('watch', 'Node')[0]!.status).toBe(410);
      expect(store.load('Node')).toBe('3');
    } finally {
      await Promise.all(informers.splice(0).map((i) => i.stop()));
      await http410.stop();
      await config.cleanup();
    }
  });

  it('waits as long as a 429 or 503 Retry-After asks (bounded) before retrying', async () => {
    server.create('Service', svc('a'));
    server.failNext(1, { status: 429, retryAfterSeconds: 7 });
    const slept: number[] = [];
    // Records each retry wait the informer asks for and waits 1 ms, so the test takes no 7 s; the
    // idle watchdog's bound (watchIdleMs, on the same clock) runs in real time.
    const clock = {
      now: () => Date.now(),
      sleep: (ms: number, signal?: AbortSignal) => {
        if (ms === 120_000) return systemClock.sleep(ms, signal);
        slept.push(ms);
        return systemClock.sleep(1, signal);
      },
    };
    const informer = startInformer({ kinds: ['Service'], clock, watchIdleMs: 120_000 });
    await informer.synced;
    expect(slept).toEqual([7000]);
    expect(server.requestsOf('list', 'Service').map((r) => r.status)).toEqual([429, 200]);
    await until('watch open', watching(informer));
    server.failNext(1, { status: 503, retryAfterSeconds: 3600 });
    server.dropConnections();
    server.create('Service', svc('b'));
    await until('event b', () => events.length === 2);
    // The 503's hour is capped at 60 s; the dropped connection itself retried on the backoff.
    expect(slept.slice(1)).toContain(60_000);
    expect(slept.slice(1).filter((ms) => ms > 40)).toEqual([60_000]);
    expect(summary(events)).toEqual(['Service ADDED a (relist)', 'Service ADDED b']);
  });

  it('relists when the server stays behind its resume RV (store restored from a backup)', async () => {
    server.create('Service', svc('a'));
    // Saved state of a cluster whose store has since gone back: RV 50 and an object the server lacks.
    const store = new MemoryResumeStore({ Service: '50' });
    const informer = startInformer({ kinds: ['Service'], resumeStore: store });
    await until('relisted', () => server.requestsOf('list', 'Service').length === 1);
    await until('watching again', watching(informer));
    // Once is a lagging cache (retried after the server's Retry-After); twice, the informer relists.
    expect(server.requestsOf('watch', 'Service').map((r) => r.query.resourceVersion)).toEqual(['50', '50', '2']);
    expect(summary(events)).toEqual(['Service ADDED a (relist)']);
    expect(store.load('Service')).toBe('2');
    expect(informer.informer('Service').health()).toMatchObject({ lists: 1, expired: 1 });
  });

  it('freshList (planner --relist) lists whatever RV was saved and hands over every object, unchanged ones too', async () => {
    const a = server.create('Service', svc('a'));
    server.create('Service', svc('b'));
    // Saved state the server accepts (its current RV), but of another history: a store restored
    // past the saved RV repeats resourceVersions with other content, and lacks z.
    const identity = (name: string, uid: string, rv: string): RawKubeObject => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'default', uid, resourceVersion: rv },
    });
    const store = Object.assign(new MemoryResumeStore({ Service: server.resourceVersion }), {
      knownObjects: () => [identity('a', a.metadata.uid!, a.metadata.resourceVersion!), identity('z', 'uid-z', '1')],
    });
    const informer = startInformer({ kinds: ['Service'], resumeStore: store, identityOnly: true, freshList: true });
    await until('watching', watching(informer));
    // Before: no such option; resumed from the saved RV, nothing listed, nothing delivered.
    expect(server.requestsOf('list', 'Service')).toHaveLength(1);
    expect(summary(events)).toEqual([
      'Service MODIFIED a (relist)', // same uid and resourceVersion: handed over all the same
      'Service ADDED b (relist)',
      'Service DELETED z (relist)',
    ]);
    // Only the first list: a later one (after a 410) diffs by resourceVersion again, nothing to hand over.
    events.length = 0;
    server.compact();
    server.expireWatches();
    await until('relisted', () => server.requestsOf('list', 'Service').length === 2);
    await until('watching again', watching(informer));
    expect(summary(events)).toEqual([]);
  });

  it('retries injected 500s with backoff and recovers', async () => {
    server.create('Service', svc('a'));
    server.failNext(4);
    const problems: string[] = [];
    const informer = startInformer({
      kinds: ['Service'],
      onError: () => queueMicrotask(() => problems.push(informer.problem() ?? 'none')),
    });
    await informer.synced;
    const health = informer.informer('Service').health();
    expect(health.errors).toBe(4);
    // While it failed, problem() named the kind and the error; after recovery lastError is gone.
    expect(problems[0]).toMatch(/^Service: .*500 InternalError/);
    expect(health.lastError).toBeUndefined();
    expect(informer.problem()).toBeUndefined();
    expect(health.consecutiveFailures).toBe(0);
    expect(summary(events)).toEqual(['Service ADDED a (relist)']);
  });

  it('recovers from dropped connections without losing or duplicating events', async () => {
    const informer = startInformer({ kinds: ['Service'] });
    await informer.synced;
    await until('watch open', watching(informer));
    server.create('Service', svc('a'));
    await until('first event', () => events.length === 1);
    server.dropConnections();
    server.create('Service', svc('b'));
    server.update('Service', svc('a', 99));
    await until('events after reconnect', () => events.length === 3);
    expect(summary(events)).toEqual(['Service ADDED a', 'Service ADDED b', 'Service MODIFIED a']);
    const health = informer.informer('Service').health();
    expect(health.errors).toBeGreaterThanOrEqual(1);
    expect(health.relists).toBe(0);
    expect(health.watchesOpened).toBeGreaterThanOrEqual(2);
  });

  it('retries a failing sink from the last saved RV and does not skip the event', async () => {
    let failures = 1;
    const store = new MemoryResumeStore();
    const informer = startInformer({
      kinds: ['Service'],
      resumeStore: store,
      sink: (e) => {
        if (e.object.metadata.name === 'bad' && failures-- > 0) throw new Error('disk full');
        events.push(e);
      },
    });
    await informer.synced;
    await until('watch open', watching(informer));
    server.create('Service', svc('bad'));
    server.create('Service', svc('after'));
    await until('both events', () => events.length === 2);
    expect(summary(events)).toEqual(['Service ADDED bad', 'Service ADDED after']);
    const health = informer.informer('Service').health();
    expect(health.sinkErrors).toBe(1);
    expect(health.lastError).toBeUndefined(); // recovered: the event went through on the retry
  });

  it('honours bookmarks: the resume RV advances with no event', async () => {
    server.create('Service', svc('a'));
    const store = new MemoryResumeStore();
    const informer = startInformer({ kinds: ['Service'], resumeStore: store });
    await informer.synced;
    await until('watch open', watching(informer));
    expect(store.load('Service')).toBe('2');
    expect(server.requestsOf('watch', 'Service')[0]!.query.allowWatchBookmarks).toBe('true');
    // Changes to another kind move the global RV; a Service bookmark carries it.
    server.create('Node', node('n1'));
    server.create('Node', node('n2'));
    await until('bookmark', () => store.load('Service') === '4', 3000);
    expect(informer.informer('Service').health().bookmarks).toBeGreaterThanOrEqual(1);
    expect(events.filter((e) => !e.relist)).toEqual([]);
  });

  it('abandons a watch that delivers nothing (half-open) and re-watches from its RV; reports while it cannot', async () => {
    // Bookmarks every 100 ms (beforeEach) keep a quiet watch alive under a 300 ms bound.
    const informer = startInformer({ kinds: ['Service'], watchIdleMs: 300 });
    await informer.synced;
    await until('watch open', watching(informer));
    server.create('Service', svc('a'));
    await until('event a', () => events.length === 1);
    const kind = informer.informer('Service');
    await until('quiet for > 300 ms, bookmarks only', () => kind.health().bookmarks >= 4);
    expect(kind.health().idleWatches).toBe(0);
    // The connection goes half-open: changes made now reach the client only through a new watch.
    server.silenceWatches();
    server.create('Service', svc('b'));
    server.update('Service', svc('a', 99));
    await until('events after the silent watch is abandoned', () => events.length === 3);
    expect(summary(events)).toEqual(['Service ADDED a', 'Service ADDED b', 'Service MODIFIED a']);
    expect(kind.health()).toMatchObject({ idleWatches: 1, relists: 0, lists: 1 });
    // Re-watched from the RV it had (a's), not relisted: b and the update came through the watch.
    expect(server.requestsOf('watch', 'Service').map((r) => r.query.resourceVersion)).toEqual(['1', '2']);
    // While every new watch stays silent too, the kind reports it, even between re-watches.
    server.silenceWatches({ newWatches: true });
    server.create('Service', svc('c'));
    await until('reported', () => kind.health().idleWatches >= 2);
    expect(informer.problem()).toMatch(/^Service: .*delivered nothing \(no event, no bookmark\) for 300 ms/);
    await until('re-watched, still silent', () => server.requestsOf('watch', 'Service').length >= 4);
    expect(informer.problem()).toMatch(/delivered nothing/);
    server.releaseSilence();
    await until('event c', () => events.length === 4);
    await until('healthy again', () => informer.problem() === undefined);
    expect(summary(events).slice(3)).toEqual(['Service ADDED c']);
    expect(kind.health().relists).toBe(0);
  });

  it('re-watches from its RV when the server ends the watch (timeoutSeconds)', async () => {
    const informer = startInformer({ kinds: ['Node'], watchTimeoutSeconds: 0.2 });
    await informer.synced;
    await until('second watch', () => server.requestsOf('watch', 'Node').length >= 2, 3000);
    const health = informer.informer('Node').health();
    expect(health.errors).toBe(0);
    expect(server.requestsOf('list', 'Node')).toHaveLength(1);
  });

  it('rejects a missing kubeconfig clearly', async () => {
    await expect(loadKubeConfig({ kubeconfig: '/nonexistent/kubeconfig' })).rejects.toThrow(
      /kubeconfig file not found/,
    );
    await expect(loadKubeConfig({ kubeconfig: kubeconfig.path, inCluster: true })).rejects.toThrow(/not both/);
  });
});
