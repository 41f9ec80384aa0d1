import type { NodeTarget } from '../../libs/model/index.ts';
import type { AppliedState } from '../../libs/applier/index.ts';
import { listenHttp, parseListenAddress, writeJson, type HttpListener } from './http-endpoint.ts';

/** kube-proxy's default: 2 × its 30 s sync period (cmd/kube-proxy: NewProxyHealthServer(addr, 2*SyncPeriod)). */
export const DEFAULT_HEALTHZ_TIMEOUT_MS = 60_000;
/** kube-proxy's --healthz-bind-address default; cloud load balancers probe :10256/healthz (KEP-3836). */
export const DEFAULT_HEALTHZ_BIND_ADDRESS = '0.0.0.0:10256';

/** The node runs exactly what it is asked to (the /readyz condition; also what ends a pending change here). */
export function isOnTarget(applied: AppliedState | undefined, target: NodeTarget | undefined): boolean {
  return (
    !!applied && !!target && applied.version === target.version && applied.configRevision === target.configRevision
  );
}

/** Where the applier learned that its dataplane does not forward (see ProxierHealth.dataplaneFault). */
export type DataplaneFaultSource = 'drift' | 'probe';

export interface ProxierVerdict {
  /** No change has waited longer than the timeout (kube-proxy's IsHealthy, /livez). */
  readonly healthy: boolean;
  /** /healthz: healthy, the dataplane not known broken, and the node still one to send traffic to. */
  readonly healthz: boolean;
  /** No fault of the dataplane is known now (a drift signal or a probe that blamed it, not yet repaired). */
  readonly dataplaneOk: boolean;
  readonly nodeEligible: boolean;
  readonly reason: string;
  readonly lastUpdated: string | null;
  readonly currentTime: string;
}

/**
 * The one home of "is this applier keeping up with what it is asked", with kube-proxy's meaning
 * (pkg/proxy/healthcheck/proxy_health.go): a change is queued when the node learns of a target it
 * does not run yet (or a resync finds the kernel off what it applied) and updated when an apply
 * (ACK) or a clean resync lands; the node is unhealthy once a queued change has waited longer than
 * `timeoutMs`. Not unhealthy merely because nothing happens: with NATS or the planner gone the
 * node keeps running what it applied (fail-static), as kube-proxy keeps its rules without an API
 * server. Feeds the :10256 server below and every health check node port's `serviceProxyHealthy`.
 *
 * One step past kube-proxy: a dataplane the applier KNOWS does not forward (its nftables table or
 * a base chain deleted, or the data-path probe failing through it for every virtual server it
 * tried while their endpoints answer directly: verdictSaysDataplaneDown) makes /healthz (and the health check node ports) 503 at once, until a resync repairs
 * it or a probe passes (probe7 C1). kube-proxy's healthz only times out a pending sync (60 s),
 * because its stale rules still forward; rules known gone do not, and a load balancer that keeps
 * sending to the node meanwhile loses every connection. /livez stays as kube-proxy's: a restart
 * would not repair faster than the resync already under way.
 */
export class ProxierHealth {
  private pendingSince: number | undefined;
  private pendingWhat = '';
  private lastUpdated: number | undefined;
  private eligible = { ok: true, reason: '' };
  private readonly faults = new Map<DataplaneFaultSource, string>();

  constructor(
    private readonly timeoutMs: number = DEFAULT_HEALTHZ_TIMEOUT_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A change to program arrived (kube-proxy's QueuedUpdate): the oldest one is kept. */
  queued(what: string): void {
    if (this.pendingSince !== undefined) return;
    this.pendingSince = this.now();
    this.pendingWhat = what;
  }

  /** What was asked is programmed (kube-proxy's Updated). */
  updated(): void {
    this.pendingSince = undefined;
    this.pendingWhat = '';
    this.lastUpdated = this.now();
  }

  /**
   * Whether the node may take traffic at all: kube-proxy answers 503 on /healthz (not /livez) for a
   * Node being deleted, so a load balancer drains it before it goes.
   */
  nodeEligible(ok: boolean, reason: string): void {
    this.eligible = { ok, reason: ok ? '' : reason };
  }

  /** The dataplane does not forward, as `source` found (`why`); the first reason per source is kept. */
  dataplaneFault(source: DataplaneFaultSource, why: string): void {
    if (!this.faults.has(source)) this.faults.set(source, why);
  }

  /** `source` finds the dataplane forwarding again (a clean resync or apply; a probe that passed). */
  dataplaneRepaired(source: DataplaneFaultSource): void {
    this.faults.delete(source);
  }

  verdict(): ProxierVerdict {
    const now = this.now();
    const late = this.pendingSince !== undefined && now - this.pendingSince >= this.timeoutMs;
    const healthy = !late;
    const fault = this.faults.values().next().value;
    const reason = late
      ? `${this.pendingWhat} not programmed for ${Math.round((now - this.pendingSince!) / 1000)}s (timeout ${Math.round(this.timeoutMs / 1000)}s)`
      : fault !== undefined
        ? `dataplane not forwarding: ${fault}; repairing`
        : this.eligible.reason;
    return {
      healthy,
      healthz: healthy && fault === undefined && this.eligible.ok,
      dataplaneOk: fault === undefined,
      nodeEligible: this.eligible.ok,
      reason,
      // kube-proxy's compatibility rule: a healthy proxier reports lastUpdated = now
      lastUpdated: healthy
        ? new Date(now).toISOString()
        : this.lastUpdated === undefined
          ? null
          : new Date(this.lastUpdated).toISOString(),
      currentTime: new Date(now).toISOString(),
    };
  }
}

/**
 * kube-proxy's proxier health server: `/healthz` (503 when late or the node is being deleted) and
 * `/livez` (503 only when late), JSON bodies as kube-proxy's plus `reason`. A port taken by
 * someone else is retried every `retryMs` (kube-proxy retries every 5 s and keeps proxying), never
 * fatal; `onListenError` says why it is not up yet. `started`: the first attempt is over.
 */
export function serveProxierHealth(o: {
  address: string;
  health: ProxierHealth;
  onListening?: (port: number) => void;
  onListenError?: (error: string) => void;
  retryMs?: number;
}): { readonly started: Promise<void>; port(): number | undefined; close(): Promise<void> } {
  const { host, port } = parseListenAddress(o.address);
  let listener: HttpListener | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const handler = (req: { url?: string }, res: import('node:http').ServerResponse) => {
    const url = (req.url ?? '/').split('?')[0];
    if (url !== '/healthz' && url !== '/livez') return void res.writeHead(404).end('not found\n');
    const v = o.health.verdict();
    const ok = url === '/healthz' ? v.healthz : v.healthy;
    writeJson(res, ok ? 200 : 503, {
      lastUpdated: v.lastUpdated,
      currentTime: v.currentTime,
      ...(url === '/healthz' ? { nodeEligible: v.nodeEligible } : {}),
      ...(ok ? {} : { reason: v.reason }),
    });
  };
  const attempt = async () => {
    timer = undefined;
    try {
      // Go listens on both families for "0.0.0.0"; so does node without a host
      const l = await listenHttp(handler, port, host === '0.0.0.0' ? undefined : host);
      if (closed) return void (await l.close());
      listener = l;
      o.onListening?.(l.port);
    } catch (e) {
      o.onListenError?.(`proxier health server on ${o.address}: ${(e as Error).message}`);
      if (!closed) timer = setTimeout(() => void attempt(), o.retryMs ?? 5000).unref();
    }
  };
  const started = attempt();
  return {
    started,
    port: () => listener?.port,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await started;
      await listener?.close();
    },
  };
}
