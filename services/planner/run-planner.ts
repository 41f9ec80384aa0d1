import type { Server } from 'node:http';
import { EventLog } from '../../libs/eventlog/index.ts';
import { ClusterInformer, ManifestsSource, loadKubeConfig } from '../../libs/kube/index.ts';
import type { ProxyConfig } from '../../libs/model/index.ts';
import { watchTokenFile, type TokenFileWatch } from './bearer-auth.ts';
import { checkOpenApi, parseListenAddress } from './listen-address.ts';
import { informerSource, knownObjectsFromLog, manifestsSource, withKnownObjects, type EventSourceFactory } from './event-source.ts';
import { createHttpApi } from './http-api.ts';
import { consoleRoutes } from '../console/console-routes.ts';
import { NatsPlannerBus } from './nats-planner-bus.ts';
import { hostname } from 'node:os';
import path from 'node:path';
import { defaultSigningKeyFile, loadOrCreateSigningKey } from '../../libs/bus/index.ts';
import { versionAnchor } from '../../libs/eventlog/index.ts';
import type { BusAuth } from '../../libs/bus/index.ts';
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
  /** Serve the API without tokens on a non-loopback address (refused otherwise). */
  readonly insecureOpenApi?: boolean;
  /** How often the token file's stat is polled for changes (default 1000 ms). */
  readonly tokenFilePollMs?: number;
  /** Where notes about the token file go (default stderr). */
  readonly say?: (line: string) => void;
  readonly config: ProxyConfig;
  readonly checkpointEvery?: number;
  readonly debounceMs?: number;
  /** Rescan interval for --manifests (fs.watch can miss changes). */
  readonly pollMs?: number;
  /** --max-manifest-bytes: larger manifest files are refused. */
  readonly maxManifestBytes?: number;
  /** NATS credentials (user/password, creds or nkey seed file, TLS files). */
  readonly natsAuth?: BusAuth;
  /** Ed25519 private key (PEM), created when missing; default beside the log. FILE.pub = public key. */
  readonly signingKey?: string;
  /** Told each time a NATS connection attempt fails at start (the planner waits, never exits). */
  readonly onBusWaiting?: (what: string) => void;
  /** One-planner lease TTL on NATS (default 15 s). */
  readonly leaseTtlMs?: number;
  /** Copies of every stream and bucket in the NATS cluster (default 1). */
  readonly replicas?: number;
}

export interface RunningPlanner {
  readonly planner: Planner;
  readonly url: string;
  stop(): Promise<void>;
}

/** Builds the real planner: SQLite log, NATS bus, kube or manifests source, HTTP API. */
export async function runPlanner(o: RunPlannerOptions): Promise<RunningPlanner> {
  const listen = parseListenAddress(o.http);
  checkOpenApi(listen, o);
  const say = o.say ?? ((line: string) => process.stderr.write(`planner: ${line}\n`));
  const tokens: TokenFileWatch | undefined = o.tokenFile ? watchTokenFile(o.tokenFile, {
    intervalMs: o.tokenFilePollMs,
    onReload: (n) => say(`token file ${o.tokenFile} reloaded: ${n} token${n === 1 ? '' : 's'}`),
    onError: (e) => say(`${e.message}; keeping the tokens in force`),
  }) : undefined;
  // Writes only when ready: the API address is bound before the log is opened, so a busy or
  // unusable address stops the planner before it appends, publishes or moves any target.
  let planner: Planner | undefined;
  const metrics = plannerMetrics({ sourceProblem: () => planner?.sourceProblem() });
  let serving = false;
  const server: Server = createHttpApi({
    planner: lateBound(() => planner, { isSynced: false }),
    registry: metrics.registry, tokens: tokens && (() => tokens.current()), started: () => serving,
    // The console's data routes run only once serving (non-public routes answer 503 before).
    routes: consoleRoutes({ planner: () => planner!, log: () => log }),
  });
  try {
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(listen.port, listen.host, resolve); });
  } catch (e) {
    tokens?.close();
    throw new Error(`--http ${o.http}: cannot listen: ${(e as Error).message}`);
  }
  let log: EventLog;
  try {
    log = await EventLog.open({ file: o.db });
  } catch (e) {
    server.close();
    tokens?.close();
    throw e;
  }
  let bus: NatsPlannerBus | undefined;
  try {
    const signer = loadOrCreateSigningKey(o.signingKey ?? defaultSigningKeyFile(o.db));
    bus = await NatsPlannerBus.open({
      url: o.nats, auth: o.natsAuth, signer, anchorOf: (v) => versionAnchor(log, v),
      leaseId: `${hostname()}:${path.resolve(o.db)}`, leaseTtlMs: o.leaseTtlMs, onWaiting: o.onBusWaiting, replicas: o.replicas,
    });
    // Sources start from the objects the log holds (read when the planner makes the source, after it restored).
    const source: EventSourceFactory = o.manifests
      ? (sink, hooks) => manifestsSource((m) => new ManifestsSource({
        dir: o.manifests!, ...m, known: knownObjectsFromLog(log), pollIntervalMs: o.pollMs ?? 2000, debounceMs: 20,
        maxManifestBytes: o.maxManifestBytes,
      }), sink, hooks)
      : (sink) => {
        const kubeConfig = loadKubeConfig({ kubeconfig: o.kubeconfig, inCluster: o.inCluster });
        // The informer resumes from the resourceVersions the log saved after each appended event.
        const resumeStore = withKnownObjects(log.resumeStore(), knownObjectsFromLog(log));
        return informerSource(new ClusterInformer({ kubeConfig, sink, resumeStore }));
      };
    planner = new Planner({ log, bus, source, initialConfig: o.config, checkpointEvery: o.checkpointEvery, debounceMs: o.debounceMs, hooks: metrics.hooks });
    await planner.start();
    const started = planner;
    bus.onReset(() => void started.republish());
    serving = true;
    const { host } = listen;
    const addr = server.address() as { port: number };
    const p = planner;
    const s = server;
    const b = bus;
    return {
      planner: p,
      url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`,
      stop: async () => {
        tokens?.close();
        await new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections(); });
        await p.stop();
        await b.close();
        log.close();
      },
    };
  } catch (e) {
    server.close();
    await planner?.stop().catch(() => {});
    await bus?.close().catch(() => {});
    log.close();
    tokens?.close();
    throw e;
  }
}

/**
 * The planner as the API sees it while it is being built: `before` answers until it exists (the
 * API lets only the probes through until then), afterwards every member is the planner's own.
 */
function lateBound<T extends object>(get: () => T | undefined, before: Partial<T>): T {
  return new Proxy({} as T, {
    get: (_t, k) => {
      const target = get();
      if (!target) return (before as Record<PropertyKey, unknown>)[k];
      const v = Reflect.get(target, k) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
