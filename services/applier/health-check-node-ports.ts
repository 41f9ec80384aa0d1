import { isIP } from 'node:net';
import { parseCidr, type ProxyConfig, type ServiceEntry } from '../../libs/model/index.ts';
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

/**
 * Where the health check node ports listen (kube-proxy's service health server,
 * newServiceHealthServer): on every address of both families while nodePortAddresses matches
 * every address (none given, or a /0 among them: kube-proxy's MatchAll, and Go listens on both
 * families for "0.0.0.0"), else only on the node port addresses it selects. Those are the ones
 * NodePorts are programmed on (libs/planner renderContext: the Node's addresses inside the CIDRs),
 * so a load balancer finds the health check where it finds the NodePort. `undefined`: every address.
 */
export function healthCheckListenAddresses(config: ProxyConfig, nodePortIPs: readonly string[]): string[] | undefined {
  const cidrs = config.nodePortAddresses.map((c) => parseCidr(c));
  if (cidrs.length === 0 || cidrs.some((c) => c?.prefix === 0)) return undefined;
  return [...nodePortIPs];
}

/** One Service's listeners, by address ('' for every address). */
interface Open {
  readonly port: number;
  readonly listeners: Map<string, HttpListener>;
}

export interface HealthCheckNodePortsStatus {
  readonly serving: readonly {
    readonly service: string;
    readonly port: number;
    readonly localEndpoints: number;
    /** Where it listens; `*`: every address. */
    readonly addresses: readonly string[];
  }[];
  /** Ports this node could not listen on (taken by another process, an address not on this host), with why; retried. */
  readonly failed: readonly { readonly service: string; readonly port: number; readonly error: string }[];
}

const EVERY_ADDRESS = '';

/**
 * kube-proxy's service health server (pkg/proxy/healthcheck/service_health.go): one HTTP server
 * per Service on its healthCheckNodePort, on each address it listens on (healthCheckListenAddresses),
 * answering 200 with the node's local ready endpoint count while it has some and the proxier is
 * healthy, else 503, in kube-proxy's JSON. `sync` moves to a new set (what the node now runs):
 * ports of Services gone are closed, new ones opened, counts replaced, listeners moved when the
 * addresses change; idempotent. A port it cannot listen on (taken by another process) is
 * kube-proxy's way too: logged, reported in `status().failed`, retried at the next sync and every
 * `retryMs`; it never fails what the node programs (the Service's traffic does not depend on it,
 * only the load balancer's choice of nodes).
 */
export class HealthCheckNodePorts {
  private want = new Map<string, HealthCheckPort>();
  private addresses: readonly string[] = [EVERY_ADDRESS];
  private readonly open = new Map<string, Open>();
  private failed = new Map<string, { port: number; error: string }>();
  private chain: Promise<void> = Promise.resolve();
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly o: {
      /** Listen only here whatever `sync` is given (tests: loopback); undefined: where `sync` says. */
      readonly host?: string;
      /** The proxier's health, reported as serviceProxyHealthy; false turns every port to 503. */
      readonly proxierHealthy: () => boolean;
      readonly log?: { info(o: object, m: string): void; warn(o: object, m: string): void };
      readonly retryMs?: number;
    },
  ) {}

  /**
   * Serves `want` from now on, on `addresses` (healthCheckListenAddresses; undefined: every
   * address). Counts change at once (a request after this call sees them); ports open and close
   * in the background, in call order; the promise resolves when they have.
   */
  sync(want: ReadonlyMap<string, HealthCheckPort>, addresses?: readonly string[]): Promise<void> {
    this.want = new Map(want);
    this.addresses = this.o.host !== undefined ? [this.o.host] : addresses ? [...new Set(addresses)] : [EVERY_ADDRESS];
    return this.enqueue();
  }

  status(): HealthCheckNodePortsStatus {
    return {
      serving: [...this.open]
        .filter(([, o]) => o.listeners.size > 0)
        .map(([service, o]) => ({
          service,
          port: o.port,
          localEndpoints: this.want.get(service)?.localEndpoints ?? 0,
          addresses: [...o.listeners.keys()].map((a) => (a === EVERY_ADDRESS ? '*' : a)),
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
    const addresses = new Set(this.addresses);
    for (const [service, o] of [...this.open]) {
      const samePort = this.want.get(service)?.port === o.port;
      for (const [address, listener] of [...o.listeners]) {
        if (samePort && addresses.has(address)) continue;
        o.listeners.delete(address);
        await listener.close();
        this.o.log?.info({ service, port: o.port, address: address || '*' }, 'health check node port closed');
      }
      if (!samePort) this.open.delete(service);
    }
    const failed = new Map<string, { port: number; error: string }>();
    for (const [service, w] of this.want) {
      let o = this.open.get(service);
      if (!o) this.open.set(service, (o = { port: w.port, listeners: new Map() }));
      const errors: string[] = [];
      for (const address of addresses) {
        if (o.listeners.has(address)) continue;
        try {
          const listener = await listenHttp(
            (req, res) => this.answer(service, req.url, res),
            w.port,
            address === EVERY_ADDRESS ? undefined : address,
          );
          o.listeners.set(address, listener);
          this.o.log?.info({ service, port: w.port, address: address || '*' }, 'health check node port open');
        } catch (e) {
          errors.push((e as Error).message); // node's names the address: "listen EADDRINUSE: … 10.0.0.1:31000"
        }
      }
      if (errors.length === 0) continue;
      const error = errors.join('; ');
      if (this.failed.get(service)?.error !== error)
        this.o.log?.warn(
          { service, port: w.port, error },
          'cannot serve the health check node port (another process holds it?); its load balancer sees this node as down; retrying',
        );
      failed.set(service, { port: w.port, error });
    }
    this.failed = failed;
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
