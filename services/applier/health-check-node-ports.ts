import { isIP } from 'node:net';
import type { ServiceEntry } from '../../libs/model/index.ts';
import { listenHttp, writeJson, type HttpListener } from './http-endpoint.ts';

/** One Service's health check node port and what it reports. */
export interface HealthCheckPort {
  readonly port: number;
  readonly localEndpoints: number;
}

/**
 * The health check node ports a node serves for the cluster data it runs, by service key
 * ("namespace/name"). kube-proxy's rules: a Service needs one when it has a healthCheckNodePort and
 * externalTrafficPolicy Local (serviceport.go: NeedsHealthCheck; the API server sets the port only
 * for such LoadBalancers); it reports the node's distinct ready endpoint IPs (endpointsmap.go
 * LocalReadyEndpoints: terminating endpoints do not count, so a draining pod turns the node away,
 * and one IP behind two ports is one endpoint). Dual stack: the larger of the two families' counts
 * (kube-proxy's per-family proxiers each report their own family, so one dual-stack pod is 1, not 2).
 * O(services) per call, O(endpoints) only for the few Services with a port.
 */
export function healthCheckPorts(services: Iterable<ServiceEntry>, node: string): Map<string, HealthCheckPort> {
  const out = new Map<string, HealthCheckPort>();
  for (const svc of services) {
    if (svc.healthCheckNodePort === 0 || svc.externalTrafficPolicy !== 'Local') continue;
    const byFamily = [new Set<string>(), new Set<string>()];
    for (const p of svc.ports)
      for (const ep of p.endpoints)
        if (ep.nodeName === node && ep.ready) byFamily[isIP(ep.ip) === 6 ? 1 : 0]!.add(ep.ip);
    out.set(svc.key, {
      port: svc.healthCheckNodePort,
      localEndpoints: Math.max(byFamily[0]!.size, byFamily[1]!.size),
    });
  }
  return out;
}

interface Open {
  readonly port: number;
  readonly listener: HttpListener;
}

export interface HealthCheckNodePortsStatus {
  readonly serving: readonly { readonly service: string; readonly port: number; readonly localEndpoints: number }[];
  /** Ports this node could not listen on (taken by another process), with why; retried. */
  readonly failed: readonly { readonly service: string; readonly port: number; readonly error: string }[];
}

/**
 * kube-proxy's service health server (pkg/proxy/healthcheck/service_health.go): one HTTP server
 * per Service on its healthCheckNodePort, on every node address, answering 200 with the node's
 * local ready endpoint count while it has some and the proxier is healthy, else 503, in kube-proxy's
 * JSON. `sync` moves to a new set (what the node now runs): ports of Services gone are closed, new
 * ones opened, counts replaced; idempotent. A port it cannot listen on (taken by another process)
 * is kube-proxy's way too: logged, reported in `status().failed`, retried at the next sync and
 * every `retryMs`; it never fails what the node programs (the Service's traffic does not depend on
 * it, only the load balancer's choice of nodes).
 */
export class HealthCheckNodePorts {
  private want = new Map<string, HealthCheckPort>();
  private readonly open = new Map<string, Open>();
  private readonly failed = new Map<string, { port: number; error: string }>();
  private chain: Promise<void> = Promise.resolve();
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly o: {
      /** Where to listen; undefined: every address of both families (kube-proxy: all node IPs). */
      readonly host?: string;
      /** The proxier's health, reported as serviceProxyHealthy; false turns every port to 503. */
      readonly proxierHealthy: () => boolean;
      readonly log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
      readonly retryMs?: number;
    },
  ) {}

  /**
   * Serves `want` from now on. Counts change at once (a request after this call sees them); ports
   * open and close in the background, in call order; the promise resolves when they have.
   */
  sync(want: ReadonlyMap<string, HealthCheckPort>): Promise<void> {
    this.want = new Map(want);
    return this.enqueue();
  }

  status(): HealthCheckNodePortsStatus {
    return {
      serving: [...this.open].map(([service, o]) => ({
        service,
        port: o.port,
        localEndpoints: this.want.get(service)?.localEndpoints ?? 0,
      })),
      failed: [...this.failed].map(([service, f]) => ({ service, ...f })),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.want = new Map();
    await this.enqueue();
  }

  private enqueue(): Promise<void> {
    this.chain = this.chain.then(() => this.reconcile());
    return this.chain;
  }

  private async reconcile(): Promise<void> {
    for (const [service, o] of [...this.open]) {
      if (this.want.get(service)?.port === o.port) continue;
      this.open.delete(service);
      await o.listener.close();
      this.o.log?.info({ service, port: o.port }, 'health check node port closed');
    }
    for (const [service, f] of [...this.failed])
      if (this.want.get(service)?.port !== f.port) this.failed.delete(service);
    for (const [service, w] of this.want) {
      if (this.open.has(service)) continue;
      try {
        const listener = await listenHttp((req, res) => this.answer(service, req.url, res), w.port, this.o.host);
        this.open.set(service, { port: w.port, listener });
        this.failed.delete(service);
        this.o.log?.info({ service, port: w.port }, 'health check node port open');
      } catch (e) {
        const error = (e as Error).message;
        if (this.failed.get(service)?.error !== error)
          this.o.log?.warn(
            { service, port: w.port, error },
            'cannot serve the health check node port (another process holds it?); its load balancer sees this node as down; retrying',
          );
        this.failed.set(service, { port: w.port, error });
      }
    }
    if (this.failed.size > 0 && !this.retry && !this.closed)
      this.retry = setTimeout(() => {
        this.retry = undefined;
        void this.enqueue();
      }, this.o.retryMs ?? 10_000).unref();
  }

  private answer(service: string, _url: string | undefined, res: import('node:http').ServerResponse): void {
    // kube-proxy answers every path on the port the same way (load balancers probe / or /healthz)
    const count = this.want.get(service)?.localEndpoints ?? 0;
    const proxyHealthy = this.o.proxierHealthy();
    const slash = service.indexOf('/');
    writeJson(
      res,
      count > 0 && proxyHealthy ? 200 : 503,
      {
        service: { namespace: service.slice(0, slash), name: service.slice(slash + 1) },
        localEndpoints: count,
        serviceProxyHealthy: proxyHealthy,
      },
      { 'x-load-balancing-endpoint-weight': String(count) },
    );
  }
}
