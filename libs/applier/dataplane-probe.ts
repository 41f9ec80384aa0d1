import { connect } from 'node:net';
import type { NodeState, ProbeReport } from '../model/index.ts';
import type { HealthProbe, ProbeOutcome } from './health-verdict.ts';
import { pickProbeTargets, type ProbeTarget } from './probe-targets.ts';

/** Probe settings (applier flags; defaults in DEFAULT_PROBE_SETTINGS and docs/operations.md). */
export interface ProbeSettings {
  /** Virtual servers probed per round (after each apply, and every `intervalMs`). */
  readonly sample: number;
  /** Connections opened per second at most, direct endpoint checks included (token bucket). */
  readonly ratePerSec: number;
  /** How long one connection may take before it counts as failed. */
  readonly timeoutMs: number;
  /** Period of the re-probe of what is programmed, reported in heartbeats (0 = only after applies). */
  readonly intervalMs: number;
}

/**
 * 3 virtual servers per round is enough to catch a revision that breaks forwarding for every
 * service (the failure the gate is for) while costing 6 connections; 10 connections a second caps
 * what a burst of data versions can make the node open; 1 s is generous for a connect on one node
 * or across a LAN; a re-probe every 10 s lets a verdict turn within a typical bake.
 */
export const DEFAULT_PROBE_SETTINGS: ProbeSettings = { sample: 3, ratePerSec: 10, timeoutMs: 1000, intervalMs: 10_000 };

/** Opens one TCP connection; resolves with its connect latency or the reason it failed. */
export type Connector = (
  address: string,
  port: number,
  timeoutMs: number,
) => Promise<{ ok: true; ms: number } | { ok: false; error: string }>;

export const tcpConnect: Connector = (address, port, timeoutMs) =>
  new Promise((resolve) => {
    const t0 = performance.now();
    const s = connect({ host: address, port, timeout: timeoutMs });
    const done = (r: { ok: true; ms: number } | { ok: false; error: string }) => {
      s.destroy();
      resolve(r);
    };
    s.once('connect', () => done({ ok: true, ms: performance.now() - t0 }));
    s.once('timeout', () => done({ ok: false, error: `no answer within ${timeoutMs}ms` }));
    s.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
  });

/** A token bucket: at most `ratePerSec` takes per second, bursts up to that many. */
export class RateBudget {
  private tokens: number;
  private last: number;
  constructor(
    private readonly ratePerSec: number,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
  ) {
    this.tokens = ratePerSec;
    this.last = now();
  }

  /** Waits until a token is free and takes it. */
  async take(): Promise<void> {
    for (;;) {
      const t = this.now();
      this.tokens = Math.min(this.ratePerSec, this.tokens + ((t - this.last) * this.ratePerSec) / 1000);
      this.last = t;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await this.sleep(Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSec));
    }
  }
}

/**
 * The data-path probe: from the applier's own network namespace (the node's), for each sampled
 * virtual server, connect directly to one of its endpoints (reachable at all?) and, if that
 * worked, to the virtual server itself, which only the dataplane can carry to an endpoint. Every
 * connection takes a token from the rate budget, so no burst of applies opens more than
 * `ratePerSec` connections a second.
 */
export class DataplaneProbe implements HealthProbe {
  private round = 0;
  private readonly budget: RateBudget;

  constructor(
    private readonly settings: ProbeSettings,
    private readonly connector: Connector = tcpConnect,
    budget?: RateBudget,
  ) {
    this.budget = budget ?? new RateBudget(settings.ratePerSec);
  }

  async probe(state: NodeState): Promise<ProbeOutcome> {
    const targets = pickProbeTargets(state, this.settings.sample, this.round++);
    const results = await Promise.all(targets.map((t) => this.one(t)));
    const ok = results
      .filter((r) => r.kind === 'ok')
      .map((r) => (r as { ms: number }).ms)
      .sort((a, b) => a - b);
    const failures = results.flatMap((r) =>
      r.kind === 'failed' ? [{ target: r.target.slice(0, 200), error: r.error.slice(0, 500) }] : [],
    );
    const report: ProbeReport = {
      attempted: ok.length + failures.length,
      succeeded: ok.length,
      failed: failures.length,
      unreachable: results.filter((r) => r.kind === 'unreachable').length,
      latencyMs: ok.length
        ? { p50: round2(ok[Math.floor((ok.length - 1) / 2)]!), max: round2(ok[ok.length - 1]!) }
        : null,
      failures: failures.slice(0, 8),
      at: new Date().toISOString(),
    };
    return { kind: 'report', report };
  }

  private async one(
    t: ProbeTarget,
  ): Promise<{ kind: 'ok'; ms: number } | { kind: 'failed'; target: string; error: string } | { kind: 'unreachable' }> {
    await this.budget.take();
    const direct = await this.connector(t.endpoint.address, t.endpoint.port, this.settings.timeoutMs);
    if (!direct.ok) return { kind: 'unreachable' };
    await this.budget.take();
    const via = await this.connector(t.address, t.port, this.settings.timeoutMs);
    return via.ok
      ? { kind: 'ok', ms: via.ms }
      : { kind: 'failed', target: t.key, error: `${via.error} (endpoint ${t.endpoint.text} answers directly)` };
  }
}

const round2 = (ms: number) => Math.round(ms * 100) / 100;

/** For nodes where no probe is possible (dry-run): says why, every time. */
export function noProbe(reason: string): HealthProbe {
  return { probe: async () => ({ kind: 'unavailable', reason }) };
}
