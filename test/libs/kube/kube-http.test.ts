// The informer's HTTP client against the test apiserver: its connections (issue 15 item 4).

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterInformer, kubeHttpFromConfig, loadKubeConfig, type KubeEvent } from '../../../libs/kube/index.ts';
import { KubeApiServer, type KubeObject as ServerObject } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';

const svc = (i: number): ServerObject => ({
  metadata: { name: `svc-${i}`, namespace: 'default' },
  spec: { type: 'ClusterIP', clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ port: 80, protocol: 'TCP' }] },
});
const slice = (i: number): ServerObject => ({
  metadata: { name: `svc-${i}-a`, namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
  addressType: 'IPv4',
  endpoints: [{ addresses: [`10.1.${i >> 8}.${i & 255}`], conditions: { ready: true } }],
});

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('kubeHttpFromConfig connections', () => {
  let server: KubeApiServer;
  let kubeconfig: WrittenKubeconfig;
  const informers: ClusterInformer[] = [];

  beforeEach(async () => {
    server = await KubeApiServer.start({ token: 'secret' });
    kubeconfig = await writeKubeconfig({ server: server.url, token: 'secret' });
    for (let i = 0; i < 60; i++) {
      server.create('Service', svc(i));
      server.create('EndpointSlice', slice(i));
    }
  });
  afterEach(async () => {
    await Promise.all(informers.splice(0).map((i) => i.stop()));
    await server.stop();
    await kubeconfig.cleanup();
  });

  it('lists every page of a paged LIST over one kept connection', async () => {
    const http = kubeHttpFromConfig(await loadKubeConfig({ kubeconfig: kubeconfig.path }));
    const before = server.connectionsAccepted;
    let pages = 0;
    let names = 0;
    let cont: string | undefined;
    do {
      const page = (await http.getJson({
        path: '/api/v1/services',
        query: cont ? { limit: '5', continue: cont } : { limit: '5' },
      })) as { items: unknown[]; metadata: { continue?: string } };
      pages += 1;
      names += page.items.length;
      cont = page.metadata.continue || undefined;
    } while (cont);
    expect(names).toBe(60);
    expect(pages).toBe(12);
    // The library's agent closed each socket after its response: one connection per page (12).
    expect(server.connectionsAccepted - before).toBe(1);
  });

  it('an informer lists and watches every kind on at most one connection per kind', async () => {
    const events: KubeEvent[] = [];
    const informer = new ClusterInformer({
      kubeConfig: await loadKubeConfig({ kubeconfig: kubeconfig.path }),
      sink: (e) => {
        events.push(e);
      },
      pageSize: 5,
    });
    informers.push(informer);
    const before = server.connectionsAccepted;
    informer.start();
    await informer.synced;
    expect(events.filter((e) => e.kind === 'Service')).toHaveLength(60);
    expect(events.filter((e) => e.kind === 'EndpointSlice')).toHaveLength(60);
    // A change after the list arrives by the watch that took over the list's connection.
    await until('every kind watching', () => server.openWatchCount === 3);
    server.create('Service', svc(60));
    await until('the new Service by watch', () => events.some((e) => e.object.metadata.name === 'svc-60'));
    // 12 + 12 + 1 pages and 3 watches: 28 connections with one per request; each kind makes one
    // request at a time, so kept connections need at most three.
    expect(server.connectionsAccepted - before).toBeLessThanOrEqual(3);
  });
});
