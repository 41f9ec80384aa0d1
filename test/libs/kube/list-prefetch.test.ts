import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ClusterInformer,
  kubeHttpFromConfig,
  ListPrefetch,
  loadKubeConfig,
  MemoryResumeStore,
  type KubeEvent,
  type KubeHttp,
} from '../../../libs/kube/index.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';

let kube: KubeApiServer;
let kc: WrittenKubeconfig;
let http: KubeHttp;
const informers: ClusterInformer[] = [];
const prefetches: ListPrefetch[] = [];

const svc = (name: string) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default' },
  spec: { type: 'ClusterIP', clusterIP: '10.96.0.1', ports: [{ name: 'http', protocol: 'TCP', port: 80 }] },
});
const node = (name: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name } });

beforeEach(async () => {
  kube = await KubeApiServer.start();
  kc = await writeKubeconfig({ server: kube.url });
  http = kubeHttpFromConfig(await loadKubeConfig({ kubeconfig: kc.path }));
  for (let i = 0; i < 45; i++) kube.create('Service', svc(`s-${i}`));
  for (let i = 0; i < 3; i++) kube.create('Node', node(`n-${i}`));
});
afterEach(async () => {
  for (const p of prefetches.splice(0)) p.drop();
  for (const i of informers.splice(0)) await i.stop();
  await kc.cleanup();
  await kube.stop();
});

/** An informer (page size 10) whose events go to `events`; over `viaHttp` when given. */
function informer(events: string[], viaHttp?: KubeHttp, resume?: MemoryResumeStore): ClusterInformer {
  const i = new ClusterInformer({
    http: viaHttp ?? http,
    pageSize: 10,
    resumeStore: resume,
    sink: (e: KubeEvent) => {
      events.push(`${e.kind} ${e.type} ${e.object.metadata.name} ${e.resourceVersion}`);
    },
  });
  informers.push(i);
  return i;
}

const lists = (kind: 'Service' | 'Node' | 'EndpointSlice') => kube.requestsOf('list', kind).length;

describe('ListPrefetch: the first LIST fetched before its informer exists', () => {
  it('an informer reading the pages fetched ahead delivers what listing itself would have, and lists nothing twice', async () => {
    const prefetch = new ListPrefetch(http, { pageSize: 10, maxPagesAhead: 2 });
    prefetches.push(prefetch);
    // fetched ahead while no informer exists: two pages of Services (at most 2 ahead), Nodes and slices
    await expect.poll(() => [lists('Service'), lists('Node'), lists('EndpointSlice')]).toEqual([2, 1, 1]);
    const rv = kube.resourceVersion;
    const ahead: string[] = [];
    const a = informer(ahead, prefetch.http());
    a.start();
    await a.synced;
    // 45 Services in pages of 10: five list requests in all, as the informer alone makes
    expect(lists('Service')).toBe(5);
    expect(lists('Node')).toBe(1);
    expect(lists('EndpointSlice')).toBe(1);
    expect(prefetch.stats).toEqual({ fetched: 7, taken: 7, missed: 0 });
    await a.stop();

    // the same list read by an informer on its own, at the same resourceVersion (nothing changed)
    expect(kube.resourceVersion).toBe(rv);
    const own: string[] = [];
    const b = informer(own);
    b.start();
    await b.synced;
    expect(ahead.length).toBe(48);
    expect([...ahead].sort()).toEqual([...own].sort());
  });

  it('a change made after the pages were fetched reaches the informer through its watch', async () => {
    const prefetch = new ListPrefetch(http, { pageSize: 10, maxPagesAhead: 8 });
    prefetches.push(prefetch);
    await expect.poll(() => lists('Service')).toBe(5);
    kube.create('Service', svc('late'));
    kube.delete('Service', { name: 's-3', namespace: 'default' });
    const events: string[] = [];
    const i = informer(events, prefetch.http());
    i.start();
    await i.synced;
    // the list is the one fetched ahead (s-3 in it, late not), the watch from its RV brings both changes
    await expect
      .poll(() => events.filter((e) => / (late|s-3) /.test(e)).map((e) => e.split(' ').slice(1, 3).join(' ')))
      .toEqual(['ADDED s-3', 'ADDED late', 'DELETED s-3']);
    expect(lists('Service')).toBe(5);
  });

  it('a kind the informer resumes with a watch, or one dropped, is listed as usual and its pages fetched ahead are never read', async () => {
    const prefetch = new ListPrefetch(http, { pageSize: 10 });
    prefetches.push(prefetch);
    await expect.poll(() => [lists('Service'), lists('Node'), lists('EndpointSlice')]).toEqual([5, 1, 1]);
    // Nodes resume from a saved resourceVersion (a watch, no list); the rest of the prefetch is dropped
    const resume = new MemoryResumeStore({ Node: kube.resourceVersion });
    prefetch.drop();
    kube.create('Node', node('n-late'));
    const events: string[] = [];
    const i = informer(events, prefetch.http(), resume);
    i.start();
    await i.synced;
    await expect.poll(() => events.some((e) => e.startsWith('Node ADDED n-late'))).toBe(true);
    // Services and slices listed again by the informer itself; no Node list at all
    expect(lists('Service')).toBe(10);
    expect(lists('EndpointSlice')).toBe(2);
    expect(lists('Node')).toBe(1);
    expect(events.filter((e) => e.startsWith('Service ADDED')).length).toBe(45);
    expect(events.filter((e) => e.startsWith('Node ')).length).toBe(1);
    expect(prefetch.stats.taken).toBe(0);
  });

  it('a page that failed fails the informer request it answers; the informer lists again on its own', async () => {
    kube.failNext(1, { status: 500, match: (e) => e.verb === 'list' && e.kind === 'Node' });
    const prefetch = new ListPrefetch(http, { pageSize: 10 });
    prefetches.push(prefetch);
    await expect.poll(() => kube.requests.filter((r) => r.kind === 'Node' && r.status === 500).length).toBe(1);
    const events: string[] = [];
    const errors: string[] = [];
    const i = new ClusterInformer({
      http: prefetch.http(),
      pageSize: 10,
      backoff: { initialMs: 1, maxMs: 5 },
      onError: (kind, e) => errors.push(`${kind}: ${(e as Error).message}`),
      sink: (e) => {
        events.push(`${e.kind} ${e.type} ${e.object.metadata.name}`);
      },
    });
    informers.push(i);
    i.start();
    await i.synced;
    expect(errors.length).toBe(1);
    expect(errors[0]).toMatch(/^Node: .*500/);
    expect(lists('Node')).toBe(2);
    expect(events.filter((e) => e.startsWith('Node ADDED')).length).toBe(3);
    expect(events.length).toBe(48);
  });
});
