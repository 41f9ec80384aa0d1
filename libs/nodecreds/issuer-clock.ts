import { ServerClock } from '../bus/index.ts';
import type { KubeHttp } from '../kube/index.ts';

/**
 * The credential issuer's time (probe12 L13). A node credential's `exp` is `iat + ttl` on the
 * issuer's clock, and nats-server checks it with its own: an issuer an hour behind minted 1 h
 * credentials that were expired on arrival (and one ttl/2 behind, credentials that expired before
 * the node renewed them). The issuer cannot read the NATS server's clock (its role has no JetStream
 * API; nats-server 2.9 stamps nothing else it can see) but asks the API server about every request
 * (the Node lookup), and the API server's `Date` header is the clock that stamped the token it is
 * checking, on a cluster whose control plane runs NTP like its NATS server. Within the planners'
 * bound (SERVER_CLOCK_BOUND_MS, 30 s) the issuer's own clock is used; beyond it, the API server's,
 * so a freshly minted credential is valid for its whole lifetime and the issuer says so once.
 */
export class IssuerClock {
  private readonly clock: ServerClock;
  private said: string | undefined;

  constructor(
    private readonly log: (line: string) => void = () => {},
    private readonly wall: () => number = () => Date.now(),
  ) {
    this.clock = new ServerClock(undefined, wall);
  }

  /** A KubeRequest's onServerDate for a request sent now. */
  learnFrom(): (serverMs: number) => void {
    const sentMs = this.wall();
    return (serverMs) => {
      this.clock.sample(sentMs, serverMs, this.wall());
      const c = this.clock.correctionMs();
      const line =
        c === 0
          ? undefined
          : `credential issuer: this host's clock is ${Math.round(Math.abs(c) / 1000)} s ${c < 0 ? 'ahead of' : 'behind'} the API server's: node credentials are stamped by the API server's time (fix this host's NTP)`;
      if (line !== undefined && this.said === undefined) this.log(line);
      else if (line === undefined && this.said !== undefined)
        this.log("credential issuer: this host's clock is back within 30 s of the API server's");
      this.said = line;
    };
  }

  /** Asks the API server once (GET /version), so the first request is already stamped right. */
  async learn(http: KubeHttp): Promise<void> {
    await http.getJson({ path: '/version', idleTimeoutMs: 10_000, onServerDate: this.learnFrom() });
  }

  now(): Date {
    return this.clock.now();
  }
}
