// During the initial list the planner appends its events in batches of 2 000. The informer must
// not wait for such an append: it delivers the rest of its page and asks the API server for the
// next one first, so the server makes that page while the planner appends (issue 15, ingestion).
// Real parts: the test API server, a ClusterInformer, a SQLite log, nats-server. The pages asked
// for are counted as the informer asks for them (its KubeHttp's getJson), not as the server sees
// them: this server runs in the test's own process, so it reads a request only at the event loop's
// next poll, after the append's turn; a real API server has the request by then (it is written
// to the kept-alive socket at the next tick, before the append).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import Database from 'better-sqlite3';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { ClusterInformer, kubeHttpFromConfig, loadKubeConfig, type KubeHttp } from '../../../libs/kube/index.ts';
import { DEFAULT_PROXY_CONFIG, type WatchEvent } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { EventBatcher } from '../../../services/planner/event-batcher.ts';
import { informerSource } from '../../../services/planner/event-source.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { Planner } from '../../../services/planner/planner.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
import { nodeEvent } from '../../libs/eventlog/support/node-event.ts';
import { plannerEnv, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
let kube: KubeApiServer;
let kc: WrittenKubeconfig;
const stops: (() => unknown)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
  kube = await KubeApiServer.start();
  kc = await writeKubeconfig({ server: kube.url });
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of stops.splice(0).reverse()) await Promise.resolve(s()).catch(() => undefined);
  await kc.cleanup();
  await kube.stop();
  await env.cleanup();
});

describe('the initial list and its appends overlap', () => {
  it("a full batch's append runs after the informer asked for its next page; everything is logged and versioned", async () => {
    const services = 2600; // pages of 500: the first batch of 2 000 fills with page 4, page 6 is the last
    for (let i = 0; i < services; i++) {
      kube.create('Service', {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: `s${i}`, namespace: 'default' },
        spec: { type: 'ClusterIP', clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ port: 80, protocol: 'TCP' }] },
      });
    }
    const log = await EventLog.open({ file: env.db });
    stops.push(() => log.close());
    const bus = await NatsPlannerBus.open({ nc: env.nc });
    stops.push(() => bus.close());
    const real = kubeHttpFromConfig(await loadKubeConfig({ kubeconfig: kc.path }));
    let pagesAsked = 0;
    const http: KubeHttp = {
      getJson: (request) => {
        pagesAsked += 1;
        return real.getJson(request);
      },
      watch: (request) => real.watch(request),
    };
    const pagesAskedAtAppend: number[] = [];
    const append = log.appendPrepared.bind(log);
    vi.spyOn(log, 'appendPrepared').mockImplementation((rows) => {
      pagesAskedAtAppend.push(pagesAsked);
      return append(rows);
    });
    const planner = new Planner({
      log,
      bus,
      initialConfig: DEFAULT_PROXY_CONFIG,
      debounceMs: 10,
      source: (sink) => informerSource(new ClusterInformer({ http, sink, kinds: ['Service'], pageSize: 500 })),
    });
    stops.push(() => planner.stop());
    await planner.start();
    await planner.synced;
    // Before, the sink waited for the append of the batch page 4 filled: page 5 was asked for after it.
    expect(pagesAskedAtAppend[0]).toBe(5);
    expect(pagesAskedAtAppend).toEqual([5, 6]); // the first batch, then the rest before version 1
    expect(log.lastSeq()).toBe(services);
    expect(new Set(log.events().map((e) => e.name)).size).toBe(services);
    expect(kube.requestsOf('list', 'Service')).toHaveLength(6);
    expect(log.latestVersion()?.version).toBe(1);
    expect(planner.lastError).toBeUndefined();
  }, 30_000);

  it('a resume point saved while more than a batch is queued is written only with the batch that empties the queue', async () => {
    // The sink no longer waits for a full batch, so a queue can hold more than one batch when the
    // informer saves a resume point (it saves once its sink returned): written with the first
    // batch, a crash before the next one committed would resume past events never logged.
    const log = await EventLog.open({ file: env.db });
    stops.push(() => log.close());
    const axis = DataAxis.restore(log);
    const store = log.resumeStore();
    let chain: Promise<unknown> = Promise.resolve();
    let flushes = 0;
    const batcher = new EventBatcher<WatchEvent>({
      serial: (fn) => {
        const run = chain.then(fn);
        chain = run.catch(() => undefined);
        return run;
      },
      maxBatch: 3,
      retryMs: 60_000,
      onError: () => {},
      flush: (events, emptiesQueue) => {
        if (++flushes === 2) throw new Error('the process died here'); // the second batch never commits
        axis.ingest(events, { resumePoints: emptiesQueue });
      },
    });
    stops.push(() => batcher.stop());
    for (let i = 1; i <= 5; i++) expect(batcher.push(nodeEvent(`n${i}`, i))).toBeUndefined();
    store.save('Node', '5'); // the list ended at resourceVersion 5: every event of it is queued
    await batcher.drain();
    expect(flushes).toBe(2);
    // What a restart would read: events n1-n3 only, and no resume point (it lists again, nothing lost).
    const db = new Database(env.db, { readonly: true });
    try {
      expect(db.prepare('SELECT name FROM events ORDER BY seq').all()).toEqual([
        { name: 'n1' },
        { name: 'n2' },
        { name: 'n3' },
      ]);
      expect(db.prepare('SELECT kind, resource_version FROM resume_points').all()).toEqual([]);
    } finally {
      db.close();
    }
    // The batch that empties the queue carries it.
    await batcher.drain();
    expect(log.events().map((e) => e.name)).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    const again = new Database(env.db, { readonly: true });
    try {
      expect(again.prepare('SELECT kind, resource_version FROM resume_points').all()).toEqual([
        { kind: 'Node', resource_version: '5' },
      ]);
    } finally {
      again.close();
    }
  });
});
