// During the initial list the planner appends its events in batches of 2 000. The informer must
// not wait for such an append: it delivers the rest of its page and asks the API server for the
// next one first, so the server makes that page while the planner appends (issue 15, ingestion).
// Real parts: the test API server, a ClusterInformer, a SQLite log, nats-server. The pages asked
// for are counted as the informer asks for them (its KubeHttp's getJson), not as the server sees
// them: this server runs in the test's own process, so it reads a request only at the event loop's
// next poll, after the append's turn; a real API server has the request by then (it is written
// to the kept-alive socket at the next tick, before the append).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { ClusterInformer, kubeHttpFromConfig, loadKubeConfig, type KubeHttp } from '../../../libs/kube/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { informerSource } from '../../../services/planner/event-source.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { Planner } from '../../../services/planner/planner.ts';
import { KubeApiServer } from '../../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../../support/kubeconfig.ts';
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
    const real = kubeHttpFromConfig(loadKubeConfig({ kubeconfig: kc.path }));
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
});
