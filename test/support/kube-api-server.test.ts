// The test apiserver is itself tested: raw HTTP checks of the apiserver semantics it
// claims, and @kubernetes/client-node's own clients/informer run against it.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  makeInformer,
  VersionApi,
  type V1Service,
} from '@kubernetes/client-node';
import { KubeApiServer, type KubeObject } from './kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from './kubeconfig.ts';

const svc = (name: string, labels: Record<string, string> = {}, namespace = 'default'): KubeObject => ({
  metadata: { name, namespace, labels },
  spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});

type Json = Record<string, any>;

async function getJson(server: KubeApiServer, path: string): Promise<{ status: number; body: Json }> {
  const res = await fetch(server.url + path);
  return { status: res.status, body: (await res.json()) as Json };
}

/** Opens a watch and collects events until `count` arrived or the server ends the stream. */
async function watchEvents(server: KubeApiServer, path: string, count: number, timeoutMs = 5000) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const res = await fetch(server.url + path, { signal: controller.signal });
  const events: Json[] = [];
  let ended = false;
  try {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buffer.slice(0, nl)) as Json);
        buffer = buffer.slice(nl + 1);
      }
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return { status: res.status, headers: res.headers, events, ended };
}

describe('KubeApiServer (raw HTTP)', () => {
  let server: KubeApiServer;
  beforeEach(async () => {
    server = await KubeApiServer.start({ bookmarkIntervalMs: 50 });
  });
  afterEach(async () => {
    await server.stop();
  });

  it('listens on 127.0.0.1 with an ephemeral port', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.port).toBeGreaterThan(0);
  });

  it('serves XList with a global resourceVersion and per-object metadata', async () => {
    server.create('Service', svc('a'));
    server.create('Node', {
      metadata: { name: 'n1' },
      status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] },
    });
    server.create('EndpointSlice', {
      metadata: { name: 'a-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'a' } },
      addressType: 'IPv4',
      endpoints: [],
    });
    const { status, body } = await getJson(server, '/api/v1/services');
    expect(status).toBe(200);
    expect(body.kind).toBe('ServiceList');
    expect(body.apiVersion).toBe('v1');
    expect(body.metadata.resourceVersion).toBe('4');
    expect(body.items).toHaveLength(1);
    const item = body.items[0];
    expect(item.kind).toBeUndefined(); // like the real apiserver, items have no kind
    expect(item.metadata.resourceVersion).toBe('2');
    expect(item.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(item.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const nodes = await getJson(server, '/api/v1/nodes');
    expect(nodes.body.kind).toBe('NodeList');
    expect(nodes.body.items[0].metadata.resourceVersion).toBe('3');
    const slices = await getJson(server, '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices');
    expect(slices.body.kind).toBe('EndpointSliceList');
    expect(slices.body.apiVersion).toBe('discovery.k8s.io/v1');
    expect(slices.body.items.map((i: Json) => i.metadata.name)).toEqual(['a-1']);
  });

  it('filters by namespace and answers single GETs and 404s', async () => {
    server.create('Service', svc('a', {}, 'ns1'));
    server.create('Service', svc('b', {}, 'ns2'));
    const ns1 = await getJson(server, '/api/v1/namespaces/ns1/services');
    expect(ns1.body.items.map((i: Json) => i.metadata.name)).toEqual(['a']);
    const one = await getJson(server, '/api/v1/namespaces/ns2/services/b');
    expect(one.body.kind).toBe('Service');
    const missing = await getJson(server, '/api/v1/namespaces/ns1/services/b');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404 });
    const unknown = await getJson(server, '/api/v1/pods');
    expect(unknown.status).toBe(404);
  });

  it('supports label selectors: =, !=, in, notin, exists, !exists', async () => {
    server.create('Service', svc('a', { app: 'web', tier: 'front' }));
    server.create('Service', svc('b', { app: 'db' }));
    server.create('Service', svc('c', {}));
    const names = async (sel: string) =>
      (await getJson(server, `/api/v1/services?labelSelector=${encodeURIComponent(sel)}`)).body.items.map(
        (i: Json) => i.metadata.name,
      );
    expect(await names('app=web')).toEqual(['a']);
    expect(await names('app==db')).toEqual(['b']);
    expect(await names('app!=web')).toEqual(['b', 'c']);
    expect(await names('app in (web,db)')).toEqual(['a', 'b']);
    expect(await names('app notin (web)')).toEqual(['b', 'c']);
    expect(await names('tier')).toEqual(['a']);
    expect(await names('!app')).toEqual(['c']);
    expect(await names('app,!tier')).toEqual(['b']);
    const bad = await getJson(server, `/api/v1/services?labelSelector=${encodeURIComponent('app in (web')}`);
    expect(bad.status).toBe(400);
    expect(bad.body.kind).toBe('Status');
  });

  it('chunks with limit/continue at the first page RV, and expires compacted tokens with 410', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.create('Service', svc(n));
    const first = await getJson(server, '/api/v1/services?limit=2');
    expect(first.body.items.map((i: Json) => i.metadata.name)).toEqual(['a', 'b']);
    expect(first.body.metadata.remainingItemCount).toBe(3);
    const token = first.body.metadata.continue as string;
    // Changes after the first page must not show up in later pages.
    server.delete('Service', { namespace: 'default', name: 'd' });
    server.create('Service', svc('f'));
    const second = await getJson(server, `/api/v1/services?limit=2&continue=${token}`);
    expect(second.body.items.map((i: Json) => i.metadata.name)).toEqual(['c', 'd']);
    expect(second.body.metadata.resourceVersion).toBe('6');
    const third = await getJson(server, `/api/v1/services?limit=2&continue=${second.body.metadata.continue}`);
    expect(third.body.items.map((i: Json) => i.metadata.name)).toEqual(['e']);
    expect(third.body.metadata.continue).toBeUndefined();
    server.compact();
    const expired = await getJson(server, `/api/v1/services?limit=2&continue=${second.body.metadata.continue}`);
    expect(expired.status).toBe(410);
    expect(expired.body).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
    const garbage = await getJson(server, '/api/v1/services?limit=2&continue=nonsense');
    expect(garbage.status).toBe(400);
  });

  it('streams watch events after the given RV (exclusive) over chunked encoding', async () => {
    const a = server.create('Service', svc('a'));
    server.create('Service', svc('b'));
    const watching = watchEvents(
      server,
      `/api/v1/services?watch=true&resourceVersion=${a.metadata.resourceVersion}`,
      3,
    );
    await new Promise((r) => setTimeout(r, 50));
    server.update('Service', { ...svc('a'), spec: { type: 'ClusterIP', clusterIP: '10.96.0.11', ports: [] } });
    server.create('EndpointSlice', {
      metadata: { name: 'x', namespace: 'default' },
      addressType: 'IPv4',
      endpoints: [],
    });
    server.delete('Service', { namespace: 'default', name: 'b' });
    const { status, headers, events } = await watchEvents(
      server,
      '/api/v1/services?watch=true&resourceVersion=' + a.metadata.resourceVersion,
      3,
    );
    expect(status).toBe(200);
    expect(headers.get('transfer-encoding')).toBe('chunked');
    expect(events.map((e) => [e.type, e.object.metadata.name, e.object.metadata.resourceVersion])).toEqual([
      ['ADDED', 'b', '3'],
      ['MODIFIED', 'a', '4'],
      ['DELETED', 'b', '6'],
    ]);
    expect(events[0]!.object.kind).toBe('Service');
    const live = await watching;
    expect(live.events.slice(0, 3).map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
  });

  it('makes no event and no new RV for an update that changes nothing', () => {
    const a = server.create('Service', svc('a'));
    const again = server.update('Service', svc('a'));
    expect(again.metadata.resourceVersion).toBe(a.metadata.resourceVersion);
    expect(server.resourceVersion).toBe('2');
  });

  it('keeps status on update and changes it only through patchStatus', () => {
    server.create('Service', svc('a'));
    const patched = server.patchStatus(
      'Service',
      { namespace: 'default', name: 'a' },
      { loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } },
    );
    expect(patched.metadata.resourceVersion).toBe('3');
    const updated = server.update('Service', { ...svc('a', { x: 'y' }), status: {} });
    expect(updated.status).toEqual({ loadBalancer: { ingress: [{ ip: '1.2.3.4' }] } });
    expect(() =>
      server.update('Service', { ...svc('a'), metadata: { ...svc('a').metadata, resourceVersion: '1' } }),
    ).toThrow(/modified/);
    expect(() => server.create('Service', svc('a'))).toThrow(/already exists/);
    expect(() => server.create('Service', { metadata: { name: 'nons' } })).toThrow(/namespace is required/);
  });

  it('watch from RV "" and "0" starts with synthetic ADDED for the current state', async () => {
    server.create('Service', svc('a'));
    server.create('Service', svc('b'));
    for (const rv of ['', '0']) {
      const { events } = await watchEvents(server, `/api/v1/services?watch=true&resourceVersion=${rv}`, 2);
      expect(events.map((e) => [e.type, e.object.metadata.name])).toEqual([
        ['ADDED', 'a'],
        ['ADDED', 'b'],
      ]);
    }
  });

  it('turns objects entering/leaving a watched selector into ADDED/DELETED', async () => {
    server.create('Service', svc('a', { app: 'web' }));
    const watching = watchEvents(server, `/api/v1/services?watch=true&resourceVersion=2&labelSelector=app%3Dweb`, 2);
    await new Promise((r) => setTimeout(r, 50));
    server.update('Service', svc('a', { app: 'db' }));
    server.update('Service', svc('a', { app: 'web' }));
    const { events } = await watching;
    expect(events.map((e) => e.type)).toEqual(['DELETED', 'ADDED']);
  });

  it('sends BOOKMARKs with only the current global RV when allowed', async () => {
    server.create('Service', svc('a'));
    server.create('Node', { metadata: { name: 'n1' } });
    const { events } = await watchEvents(
      server,
      '/api/v1/services?watch=true&resourceVersion=2&allowWatchBookmarks=true',
      1,
    );
    expect(events[0]).toEqual({
      type: 'BOOKMARK',
      object: { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: '3' } },
    });
    const without = await watchEvents(server, '/api/v1/services?watch=true&resourceVersion=2', 1, 300).catch(
      (e: Error) => e,
    );
    // No bookmarks requested: nothing arrives and the client-side abort ends the read.
    expect(without).toBeInstanceOf(Error);
  });

  it('ends the watch cleanly after timeoutSeconds', async () => {
    const started = Date.now();
    const { ended, events } = await watchEvents(
      server,
      '/api/v1/services?watch=true&resourceVersion=0&timeoutSeconds=0.2',
      1,
    );
    expect(ended).toBe(true);
    expect(events).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('answers an expired watch RV with HTTP 200 and an ERROR 410 Expired event (like the cacher)', async () => {
    server.create('Service', svc('a'));
    server.create('Service', svc('b'));
    server.compact(3);
    const { status, events, ended } = await watchEvents(server, '/api/v1/services?watch=true&resourceVersion=1', 2);
    expect(status).toBe(200);
    expect(ended).toBe(true);
    expect(events).toEqual([
      {
        type: 'ERROR',
        object: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: 'too old resource version: 1 (3)',
          reason: 'Expired',
          code: 410,
        },
      },
    ]);
    // At the compaction point itself the watch is fine.
    server.create('Service', svc('c'));
    const ok = await watchEvents(server, '/api/v1/services?watch=true&resourceVersion=3', 1);
    expect(ok.events[0]).toMatchObject({ type: 'ADDED', object: { metadata: { name: 'c' } } });
  });

  it('keeps an open watch going across compaction, and expireWatches() ends it with ERROR 410 mid-stream', async () => {
    server.create('Service', svc('a'));
    const watching = watchEvents(server, '/api/v1/services?watch=true&resourceVersion=2', 3);
    await new Promise((r) => setTimeout(r, 50));
    server.create('Service', svc('b'));
    server.compact();
    await new Promise((r) => setTimeout(r, 20));
    server.expireWatches();
    const { events, ended } = await watching;
    expect(ended).toBe(true);
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'ERROR']);
    expect(events[0]).toMatchObject({ object: { metadata: { name: 'b' } } });
    expect(events[1]!.object).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410 });
  });

  it('can answer an expired watch start with a plain HTTP 410 when configured', async () => {
    const http410 = await KubeApiServer.start({ expiredWatch: 'http' });
    try {
      http410.create('Service', svc('a'));
      http410.create('Service', svc('b'));
      http410.compact();
      const res = await getJson(http410, '/api/v1/services?watch=true&resourceVersion=1');
      expect(res.status).toBe(410);
      expect(res.body).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410 });
    } finally {
      await http410.stop();
    }
  });

  it('reports a too-large watch RV as an ERROR 504 event', async () => {
    const { events } = await watchEvents(server, '/api/v1/services?watch=true&resourceVersion=99', 1);
    expect(events[0]).toMatchObject({ type: 'ERROR', object: { code: 504, reason: 'Timeout' } });
  });

  it('failNext injects Status failures for resource requests only', async () => {
    server.failNext(2, { status: 503 });
    expect((await getJson(server, '/version')).status).toBe(200);
    const first = await getJson(server, '/api/v1/nodes');
    expect(first.status).toBe(503);
    expect(first.body).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable', code: 503 });
    expect((await getJson(server, '/api/v1/nodes')).status).toBe(503);
    expect((await getJson(server, '/api/v1/nodes')).status).toBe(200);
    expect(server.requests.map((r) => [r.verb, r.status])).toEqual([
      ['discovery', 200],
      ['list', 503],
      ['list', 503],
      ['list', 200],
    ]);
  });

  it('dropConnections cuts open watches', async () => {
    const watching = watchEvents(server, '/api/v1/services?watch=true&resourceVersion=0', 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.openWatchCount).toBe(1);
    server.dropConnections();
    const outcome = await watching.then(
      (r) => (r.ended ? 'ended' : 'events'),
      () => 'error',
    );
    expect(['ended', 'error']).toContain(outcome);
    await new Promise((r) => setTimeout(r, 20));
    expect(server.openWatchCount).toBe(0);
  });

  it('stop()/restart() keeps the port and all state', async () => {
    server.create('Service', svc('a'));
    const port = server.port;
    await server.stop();
    await expect(fetch(server.url + '/version')).rejects.toThrow();
    server.create('Service', svc('b'));
    await server.restart();
    expect(server.port).toBe(port);
    const list = await getJson(server, '/api/v1/services');
    expect(list.body.metadata.resourceVersion).toBe('3');
    expect(list.body.items).toHaveLength(2);
  });

  it('slowStream delays each watch event', async () => {
    server.create('Service', svc('a'));
    server.create('Service', svc('b'));
    server.slowStream(100);
    const started = Date.now();
    const { events } = await watchEvents(server, '/api/v1/services?watch=true&resourceVersion=0', 2);
    expect(events).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('requires the bearer token when configured', async () => {
    const secured = await KubeApiServer.start({ token: 's3cret' });
    try {
      expect((await fetch(secured.url + '/api/v1/nodes')).status).toBe(401);
      const ok = await fetch(secured.url + '/api/v1/nodes', { headers: { authorization: 'Bearer s3cret' } });
      expect(ok.status).toBe(200);
      await ok.body?.cancel();
    } finally {
      await secured.stop();
    }
  });
});

describe('KubeApiServer with @kubernetes/client-node', () => {
  let server: KubeApiServer;
  let kubeconfig: WrittenKubeconfig;
  let kc: KubeConfig;
  beforeEach(async () => {
    server = await KubeApiServer.start({ token: 'tok' });
    kubeconfig = await writeKubeconfig({ server: server.url, token: 'tok' });
    kc = new KubeConfig();
    kc.loadFromFile(kubeconfig.path);
  });
  afterEach(async () => {
    await server.stop();
    await kubeconfig.cleanup();
  });

  it('serves the generated API clients (version, core and discovery lists)', async () => {
    server.create('Service', svc('a'));
    server.create('EndpointSlice', {
      metadata: { name: 'a-1', namespace: 'default' },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.1.0.1'] }],
    });
    const version = await kc.makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toMatch(/^v1\./);
    const services = await kc.makeApiClient(CoreV1Api).listServiceForAllNamespaces();
    expect(services.items.map((s) => s.metadata?.name)).toEqual(['a']);
    expect(services.metadata?.resourceVersion).toBe('3');
    const slices = await kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({ namespace: 'default' });
    expect(slices.items[0]?.endpoints?.[0]?.addresses).toEqual(['10.1.0.1']);
  });

  it("makes the library's informer relist on a mid-stream ERROR 410", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    server.create('Service', svc('a'));
    const informer = makeInformer<V1Service>(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
    const errors: unknown[] = [];
    informer.on('error', (e) => errors.push(e));
    try {
      await informer.start();
      for (let i = 0; i < 100 && server.openWatchCount === 0; i++) await new Promise((r) => setTimeout(r, 10));
      server.clearRequests();
      server.expireWatches();
      for (let i = 0; i < 200 && server.requestsOf('watch', 'Service').length === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(server.requests.map((r) => r.verb)).toEqual(['list', 'watch']);
      expect(errors).toEqual([]);
    } finally {
      await informer.stop();
    }
  });

  it("drives the library's own informer: add/update/delete, then 410 → relist reports deletions", async () => {
    const core = kc.makeApiClient(CoreV1Api);
    server.create('Service', svc('a'));
    const informer = makeInformer<V1Service>(kc, '/api/v1/services', () => core.listServiceForAllNamespaces());
    const seen: string[] = [];
    const errors: unknown[] = [];
    informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => seen.push(`update ${o.metadata?.name}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    informer.on('error', (e) => errors.push(e));
    const waitFor = async (text: string) => {
      for (let i = 0; i < 200 && !seen.includes(text); i++) await new Promise((r) => setTimeout(r, 10));
      expect(seen).toContain(text);
    };
    try {
      await informer.start();
      await waitFor('add a');
      await new Promise((r) => setTimeout(r, 50)); // let the watch open
      server.create('Service', svc('b'));
      await waitFor('add b');
      server.update('Service', svc('a', { changed: 'yes' }));
      await waitFor('update a');
      server.delete('Service', { namespace: 'default', name: 'b' });
      await waitFor('delete b');

      // Disconnect, delete behind the informer's back, compact past its RV, come back.
      await server.stop();
      server.delete('Service', { namespace: 'default', name: 'a' });
      server.create('Service', svc('c'));
      server.compact();
      await server.restart();
      for (let i = 0; i < 200 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(errors.length).toBeGreaterThan(0); // the library stops on a non-410 error
      server.clearRequests();
      await informer.start(); // resumes from its old RV → ERROR 410 → relist
      await waitFor('delete a');
      await waitFor('add c');
      expect(server.requestsOf('watch', 'Service')[0]?.query.resourceVersion).toBe('5');
      expect(server.requestsOf('list', 'Service').length).toBeGreaterThanOrEqual(1);
    } finally {
      await informer.stop();
    }
  });
});
