import type { Server } from 'node:http';
import { EventLog } from '../../libs/eventlog/event-log.ts';
import { ClusterInformer, ManifestsSource, loadKubeConfig } from '../../libs/kube/index.ts';
import type { ProxyConfig } from '../../libs/model/index.ts';
import { readTokenFile } from './bearer-auth.ts';
import { informerSource, manifestsSource, type EventSourceFactory } from './event-source.ts';
import { createHttpApi } from './http-api.ts';
import { NatsPlannerBus } from './nats-planner-bus.ts';
import type { BusAuth } from '../../libs/bus/bus-connection.ts';
import { Planner } from './planner.ts';
import { plannerMetrics } from './planner-metrics.ts';

export interface RunPlannerOptions {
  readonly manifests?: string;
  readonly kubeconfig?: string;
  readonly inCluster?: boolean;
  readonly nats: string;
  readonly db: string;
  /** host:port; port 0 picks a free one. */
  readonly http: string;
  readonly tokenFile?: string;
  readonly config: ProxyConfig;
  readonly checkpointEvery?: number;
  readonly debounceMs?: number;
  /** Rescan interval for --manifests (fs.watch can miss changes). */
  readonly pollMs?: number;
  /** NATS credentials (user/password, creds or nkey seed file, TLS files). */
  readonly natsAuth?: BusAuth;
}

export interface RunningPlanner {
  readonly planner: Planner;
  readonly url: string;
  stop(): Promise<void>;
}

/** Builds the real planner: SQLite log, NATS bus, kube or manifests source, HTTP API. */
export async function runPlanner(o: RunPlannerOptions): Promise<RunningPlanner> {
  const tokens = o.tokenFile ? readTokenFile(o.tokenFile) : undefined;
  const log = await EventLog.open({ file: o.db });
  let bus: NatsPlannerBus | undefined;
  let server: Server | undefined;
  let planner: Planner | undefined;
  try {
    bus = await NatsPlannerBus.open({ url: o.nats, auth: o.natsAuth });
    const source: EventSourceFactory = o.manifests
      ? (sink, hooks) => manifestsSource((m) => new ManifestsSource({ dir: o.manifests!, ...m, pollIntervalMs: o.pollMs ?? 2000, debounceMs: 20 }), sink, hooks)
      : (sink) => {
        const kubeConfig = loadKubeConfig({ kubeconfig: o.kubeconfig, inCluster: o.inCluster });
        // The informer resumes from the resourceVersions the log saved after each appended event.
        return informerSource(new ClusterInformer({ kubeConfig, sink, resumeStore: log.resumeStore() }));
      };
    const metrics = plannerMetrics();
    planner = new Planner({ log, bus, source, initialConfig: o.config, checkpointEvery: o.checkpointEvery, debounceMs: o.debounceMs, hooks: metrics.hooks });
    await planner.start();
    server = createHttpApi({ planner, registry: metrics.registry, tokens });
    const [host, port] = splitAddr(o.http);
    await new Promise<void>((resolve, reject) => { server!.once('error', reject); server!.listen(port, host, resolve); });
    const addr = server.address() as { port: number };
    const p = planner;
    const s = server;
    const b = bus;
    return {
      planner: p,
      url: `http://${host}:${addr.port}`,
      stop: async () => {
        await new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections(); });
        await p.stop();
        await b.close();
        log.close();
      },
    };
  } catch (e) {
    server?.close();
    await planner?.stop().catch(() => {});
    await bus?.close().catch(() => {});
    log.close();
    throw e;
  }
}

function splitAddr(a: string): [string, number] {
  const i = a.lastIndexOf(':');
  const host = i > 0 ? a.slice(0, i) : '127.0.0.1';
  const port = Number(i >= 0 ? a.slice(i + 1) : a);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--http ${a}: expected host:port`);
  return [host, port];
}
